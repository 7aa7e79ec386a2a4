"""The forecast: the standby wait for a guest joining in each 15-minute slot of
the coming hours. Pure.

The line is projected forward minute by minute as a fluid: standby guests
arrive at the forecast arrival rate while the standby entrance is open; the
ride serves at its learned rate while it runs (not before a stop's expected
end); return guests merge as booked and take up to the venue's share. A guest
joining at `t` boards when the standby riders served since `t` reach the line
that was ahead of them, so a slot's wait is read off the projection's
cumulative service.

Where the arrival rate comes from (never from the venue file's demand block,
which only the simulated world may read): the rate learned in the last
quarter hour, scaled by where the park's population is heading (gate taps),
with any excess over the ride's capacity fading out over the hour (guests
look at the board and go elsewhere, so lines do not grow forever).

The first slot is tied to the posted wait: the gap between the exact estimate
and the fluid one fades over half an hour. Intervals come from the errors the
twin measured on its own earlier forecasts.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from services.queue.estimate import ReturnArrivals
from services.queue.schedule import CLOSED, DOWN, OPEN

SLOT = 900.0
STEP = 60.0
# After the last slot the projection runs on until its last joiners board.
TAIL = 6 * 3600.0
Z80 = 1.2816
# Joining times averaged per slot.
SAMPLES = 5
# A line this long (seconds of service) marks a ride in demand.
POPULAR_LINE = 900.0
# Time constant (s) over which a line's present growth or shrinking fades.
FADE = 1200.0


@dataclass(frozen=True, slots=True)
class Projection:
    """The inputs of one attraction's forecast at `t`."""

    t: float
    line: float  # standby guests now (weighted: untapped in, unseen leavers out)
    returning: float  # return guests between merge and load
    future_returns: ReturnArrivals
    rate: float  # riders per second while loading from a line
    interval: float
    walk: float
    return_share: float
    opens_at: float
    closes_at: float
    resume_at: float | None  # stopped until then (None: running)
    anchor: float | None  # a past dispatch: the ride's cycle, while it keeps it
    closed_for_day: bool
    posted_raw: float | None  # the exact estimate now, to tie the first slot to
    correction: float
    # Expected stop time per second of waiting (the venue's stop risk).
    stop_factor: float
    arrival_rate: Callable[[float], float]  # forecast standby arrivals per second


@dataclass(frozen=True, slots=True)
class SlotForecast:
    start: float
    wait: float
    low: float
    high: float
    status: int


def slot_start(t: float) -> float:
    return math.floor(t / SLOT) * SLOT


def arrival_model(
    now_rate: float,
    standby_capacity: float,
    line_seconds: float,
    population_ratio: Callable[[float], float],
    t: float,
    fade: float = FADE,
) -> Callable[[float], float]:
    """Arrivals per second at a future instant.

    Arrivals beyond what the ride serves fade with time constant `fade`: a
    line growing now is joined by fewer once the board shows it long. Fewer
    arrivals than it serves fade back only at a ride with a long line (a
    dip in a popular ride's crowd), not at a quiet one (`line_seconds` is the
    line now, in seconds of service). What remains follows the population.
    """
    popular = min(max(line_seconds / POPULAR_LINE, 0.0), 1.0)
    settled = (
        standby_capacity
        if now_rate >= standby_capacity
        else now_rate + popular * (standby_capacity - now_rate)
    )

    def rate(at: float) -> float:
        ahead = max(at - t, 0.0)
        return population_ratio(ahead) * (settled + (now_rate - settled) * math.exp(-ahead / fade))

    return rate


def _discrete(p: Projection) -> bool:
    """Long cycles are projected dispatch by dispatch on the ride's own cycle:
    a theatre's whole audience boards at once, which a fluid cannot show."""
    return p.interval >= STEP and (p.anchor is not None or p.resume_at is not None)


def _steps(p: Projection, limit: float) -> list[float]:
    """The instants the projection serves the line at, after `p.t`."""
    if not _discrete(p):
        count = math.ceil((limit - p.t) / STEP)
        return [p.t + (k + 1) * STEP for k in range(count)]
    start = p.resume_at if p.resume_at is not None and p.resume_at > p.t else None
    if start is None:
        assert p.anchor is not None
        start = p.anchor + math.ceil((p.t - p.anchor) / p.interval - 1e-9) * p.interval
        start = max(start, p.t)
    count = max(math.ceil((limit - start) / p.interval), 0) + 1
    return [start + k * p.interval for k in range(count)]


def _run(p: Projection, end: float) -> tuple[list[float], list[float], list[float]]:
    """From `p.t`: instants, standby riders served by then, and the standby
    line just after. Runs past `end` until the line has drained."""
    times = [p.t]
    served = [0.0]
    lengths = [max(p.line, 0.0)]
    line = lengths[0]
    returning = max(p.returning, 0.0)
    total = 0.0
    share = min(max(p.return_share, 0.0), 1.0)
    discrete = _discrete(p)
    now = p.t
    for at in _steps(p, end + TAIL):
        # Arrivals since the last step (while the entrance is open) ...
        entering = p.opens_at <= now < p.closes_at and not p.closed_for_day and now < end
        line += p.arrival_rate(now) * (at - now) if entering else 0.0
        returning += p.future_returns.between(now, at)
        # ... then what the ride loads (a dispatch, or a minute's worth).
        running = not p.closed_for_day and (p.resume_at is None or at >= p.resume_at)
        capacity = p.rate * (p.interval if discrete else at - now) if running else 0.0
        take_return = min(returning, share * capacity)
        take_standby = min(line, capacity - take_return)
        take_return += min(returning - take_return, capacity - take_return - take_standby)
        returning -= take_return
        line -= take_standby
        total += take_standby
        now = at
        times.append(at)
        served.append(total)
        lengths.append(line)
        if at >= end and line <= 1e-9:
            break
    return times, served, lengths


def project(p: Projection, slots: int, errors: ForecastErrors) -> list[SlotForecast]:
    """Forecasts for `slots` slots, the first being the one containing `p.t`."""
    first = slot_start(p.t)
    times, served, lengths = _run(p, first + slots * SLOT)
    discrete = _discrete(p)

    def grid(at: float) -> float:
        """The ride's first dispatch at or after `at`, on its cycle."""
        assert p.anchor is not None
        return p.anchor + max(math.ceil((at - p.anchor) / p.interval - 1e-9), 0) * p.interval

    def wait_at(t: float) -> float | None:
        """Wait of a guest joining at `t`; None if not served in view."""
        i = max(min(bisect.bisect_right(times, t) - 1, len(times) - 1), 0)
        ahead = lengths[i]
        since = times[i]
        if p.opens_at <= since < p.closes_at and not p.closed_for_day and t > since:
            # Joined since the step: ahead too.
            ahead += p.arrival_rate(since) * (t - since)
        if discrete:
            # The dispatch that reaches the guest's place, once they are at the load.
            j = bisect.bisect_left(served, served[i] + ahead + 1.0 - 1e-9, lo=i + 1)
            j = max(j, bisect.bisect_left(times, t + p.walk, lo=i + 1))
            return times[j] - t if j < len(times) else None
        target = served[i] + ahead
        j = bisect.bisect_left(served, target - 1e-9, lo=i)
        if j >= len(served):
            return None
        if j > i and served[j] > served[j - 1]:
            fraction = (target - served[j - 1]) / (served[j] - served[j - 1])
            done = times[j - 1] + fraction * (times[j] - times[j - 1])
        else:
            done = times[j]
        # Everyone ahead has boarded at `done`; the guest takes the next
        # dispatch once at the load and the ride runs: on the ride's cycle
        # while it keeps it, else half a cycle on average.
        ready = max(done, t + p.walk, p.resume_at or 0.0)
        if p.anchor is not None and p.resume_at is None:
            return grid(ready) - t
        return ready - t + p.interval / 2

    anchor = 0.0
    if p.posted_raw is not None:
        fluid_now = wait_at(p.t)
        if fluid_now is not None:
            anchor = p.posted_raw - fluid_now

    return [_slot(p, first + k * SLOT, anchor, wait_at, times[-1], errors) for k in range(slots)]


def _slot(
    p: Projection,
    start: float,
    anchor: float,
    wait_at: Callable[[float], float | None],
    last: float,
    errors: ForecastErrors,
) -> SlotForecast:
    middle = max(start + SLOT / 2, p.t)
    status = _status(p, middle)
    if status == CLOSED:
        return SlotForecast(start, 0.0, 0.0, 0.0, CLOSED)
    # The mean over guests joining across the slot (a long cycle makes the
    # wait swing within it).
    points = [start + (i + 0.5) * SLOT / SAMPLES for i in range(SAMPLES)]
    points = [x for x in points if x >= p.t] or [middle]
    found = [wait_at(x) for x in points]
    horizon = middle - p.t
    waits = [f for f in found if f is not None]
    fluid = sum(waits) / len(waits) if len(waits) == len(found) else last - middle
    wait = max(fluid + anchor * math.exp(-horizon / 1800.0) + p.correction, 0.0)
    wait *= 1.0 + p.stop_factor
    spread = Z80 * errors.rms(horizon)
    return SlotForecast(start, wait, max(wait - spread, 0.0), wait + spread, status)


def _status(p: Projection, t: float) -> int:
    if p.closed_for_day or not p.opens_at <= t < p.closes_at:
        return CLOSED
    if p.resume_at is not None and t < p.resume_at:
        return DOWN
    return OPEN


HORIZON_BUCKETS = (900.0, 1800.0, 3600.0, 7200.0, math.inf)


@dataclass
class ForecastErrors:
    """Errors of the twin's own earlier forecasts, by how far ahead they looked.

    Pooled over the venue's attractions. The prior (2 minutes plus a tenth of
    the horizon) holds until a bucket has seen a few dozen guests.
    """

    window: int = 400
    _squares: list[deque[float]] = field(init=False)
    _absolute: list[deque[float]] = field(init=False)

    def __post_init__(self) -> None:
        self._squares = [deque(maxlen=self.window) for _ in HORIZON_BUCKETS]
        self._absolute = [deque(maxlen=self.window) for _ in HORIZON_BUCKETS]

    @staticmethod
    def _bucket(horizon: float) -> int:
        return bisect.bisect_right(HORIZON_BUCKETS[:-1], max(horizon, 0.0))

    def observe(self, horizon: float, error: float) -> None:
        b = self._bucket(horizon)
        self._squares[b].append(error * error)
        self._absolute[b].append(abs(error))

    def rms(self, horizon: float) -> float:
        b = self._bucket(horizon)
        prior = 120.0 + 0.1 * max(horizon, 0.0)
        seen = self._squares[b]
        weight = 30.0
        mean_square = (sum(seen) + prior * prior * weight) / (len(seen) + weight)
        return math.sqrt(mean_square)

    def mean_absolute(self, horizon: float) -> tuple[float, int]:
        """The measured mean absolute error of forecasts this far ahead, and how many."""
        seen = self._absolute[self._bucket(horizon)]
        return (sum(seen) / len(seen) if seen else 0.0), len(seen)
