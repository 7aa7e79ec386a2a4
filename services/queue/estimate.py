"""The posted wait: how long a guest who taps in at the standby entrance now will
wait until they board. Pure.

The line is played forward dispatch by dispatch, as the ride will run it:
- the ride dispatches every `interval` seconds on the grid its last dispatch
  set (or from the moment it restarts after a stop), loading `rate * interval`
  riders (the learned, not the nameplate, load);
- a standby guest can board only once they have walked the queue to the load;
  everyone who tapped in before the new guest is ahead of them (first in,
  first out), each counted with the line's guest weight (untapped guests in,
  unseen leavers out);
- return-time and virtual-queue guests at the load take up to the venue's
  return share of each dispatch (and whatever standby leaves unused); those who
  will merge while the new guest waits are counted from the bookings;
- the new guest boards in the dispatch where the standby riders served reach
  their place in line.

Short intervals are stepped a few dispatches at a time (a quarter minute at
most) and the boarding dispatch found inside the last step.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

MACRO_STEP = 15.0


@dataclass(frozen=True, slots=True)
class ReturnArrivals:
    """Return-time and called virtual-queue guests expected to merge, spread
    evenly over each (start, end, guests) segment."""

    segments: tuple[tuple[float, float, float], ...] = ()

    def between(self, start: float, end: float) -> float:
        if end <= start:
            return 0.0
        total = 0.0
        for seg_start, seg_end, guests in self.segments:
            overlap = min(end, seg_end) - max(start, seg_start)
            if overlap > 0 and seg_end > seg_start:
                total += guests * overlap / (seg_end - seg_start)
        return total

    def rate_at(self, t: float) -> float:
        """Expected merges per second at `t`."""
        return sum(
            guests / (end - start)
            for start, end, guests in self.segments
            if start <= t < end and end > start
        )


NO_RETURNS = ReturnArrivals()


@dataclass(frozen=True, slots=True)
class LineView:
    """Everything the estimate needs, copied out of the twin at one instant."""

    t: float
    # Standby entry times, oldest first.
    standby: Sequence[float]
    # What each tapped standby guest counts for.
    weight: float
    # Merge times of return guests not yet boarded, oldest first.
    returning: Sequence[float]
    future_returns: ReturnArrivals
    # Riders per second while loading from a waiting line.
    rate: float
    interval: float
    walk_standby: float
    walk_return: float
    return_share: float
    # A past dispatch (sets the grid's phase); None before the first one.
    anchor: float | None
    # When loading resumes after a stop; None while running.
    resume_at: float | None = None


def _first_dispatch(view: LineView, interval: float) -> float:
    t = view.t
    if view.resume_at is not None and view.resume_at > t:
        return view.resume_at
    if view.anchor is None:
        # Phase unknown: on average half an interval away.
        return t + interval / 2
    if view.anchor >= t:
        return view.anchor
    return view.anchor + math.ceil((t - view.anchor) / interval - 1e-9) * interval


def standby_wait(view: LineView) -> float:  # noqa: PLR0915 - one hot loop, kept inline
    """Seconds a guest tapping in at `view.t` will wait to board."""
    t = view.t
    interval = max(view.interval, 0.5)
    per_dispatch = max(view.rate, 0.0) * interval
    if per_dispatch <= 1e-9:
        return math.inf
    group = max(1, int(MACRO_STEP // interval))
    step = group * interval
    capacity = group * per_dispatch
    return_cap = min(max(view.return_share, 0.0), 1.0) * capacity
    walk = view.walk_standby
    walk_return = view.walk_return
    future = view.future_returns
    has_future = bool(future.segments)

    standby = view.standby
    tapped = bisect.bisect_right(standby, t)
    weight = view.weight
    ahead = tapped * weight
    needed = ahead + 1.0
    ready = t + walk
    # Once the last guest ahead (and the new one) can be at the load, only
    # capacity matters: from then on the line can be jumped over.
    all_ready = max(ready, (standby[tapped - 1] + walk) if tapped else ready)
    merged = sorted(view.returning)
    expected_returns = len(merged) + (future.between(t, t + 86400.0) if has_future else 0.0)
    limit = int((needed + expected_returns) / max(capacity - return_cap, 1e-9))
    limit += int((walk + (view.resume_at or t) - t) / step) + 8

    tau = _first_dispatch(view, interval) + (group - 1) * interval
    served = 0.0
    served_return = 0.0
    for _ in range(limit):
        if tau >= all_ready:
            available = ahead + 1.0
        else:
            cutoff = tau - walk
            available = min(bisect.bisect_right(standby, cutoff), tapped) * weight
            if tau >= ready:
                available += 1.0
        back = tau - walk_return
        at_load = float(bisect.bisect_right(merged, back)) if merged else 0.0
        if has_future:
            at_load += future.between(t, back)
        want_return = max(at_load - served_return, 0.0)
        take_return = want_return if want_return < return_cap else return_cap
        room = capacity - take_return
        want = available - served
        take = max(want if want < room else room, 0.0)
        spare = room - take
        if spare > 0.0 and want_return > take_return:
            take_return += min(want_return - take_return, spare)
        before = served
        served += take
        served_return += take_return
        if tau >= ready and served >= needed - 1e-9:
            return _boarding(tau, before, take, needed, group, interval, ready) - t
        if tau >= all_ready and served_return >= at_load - 1e-9:
            # Everyone ahead is at the load and no return guest is waiting:
            # each step now serves standby at capacity less the returns merging.
            inflow = 0.0
            if has_future:
                inflow = future.between(back, back + step)
            per_step = capacity - min(inflow, return_cap)
            horizon = _next_change(future, back) if has_future else math.inf
            steps = math.ceil((needed - served) / per_step - 1e-9)
            if steps <= 0:
                steps = 1
            if back + steps * step <= horizon or not has_future:
                before = served + (steps - 1) * per_step
                tau += steps * step
                return _boarding(tau, before, per_step, needed, group, interval, ready) - t
        tau += step
    return tau - t


def _next_change(future: ReturnArrivals, at: float) -> float:
    """The next segment boundary after `at` (where the merge rate changes)."""
    after = [edge for seg in future.segments for edge in seg[:2] if edge > at]
    return min(after) if after else math.inf


def _boarding(
    tau: float, before: float, take: float, needed: float, group: int, interval: float, ready: float
) -> float:
    """The dispatch, inside the step ending at `tau`, that reached the new guest."""
    if group == 1 or take <= 0:
        return tau
    fraction = min(max((needed - before) / take, 0.0), 1.0)
    board = tau - (group - max(1, math.ceil(fraction * group))) * interval
    if board < ready:
        # The first dispatch of the step after the guest reaches the load.
        board = tau - math.floor((tau - ready) / interval) * interval
    return board
