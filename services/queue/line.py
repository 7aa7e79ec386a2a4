"""The twin of one attraction's line: who is in it, how fast the ride loads, and
what it has learned from the taps so far. Pure: every time is venue seconds
passed in by the caller.

Facts come from three taps. A guest taps in at the standby entrance, walks the
queue and waits; return-time and virtual-queue guests tap at the merge point
near the load; every rider taps at boarding. Riders of one vehicle tap within
moments of each other, so boarding taps fall into clusters, one per dispatch.

What the line learns:
- the ride's real loading rate, from dispatches made while guests were still
  waiting (a ride with a short line loads what arrives, not what it can);
- the dispatch interval, from the gaps between those dispatches;
- the walk from the entrance to the load, from guests who met an empty line;
- how many guests board without having tapped in (a scanner missed them) and
  how many leave the line unseen (passed by guests who came later);
- the share of riders who came by return time or virtual queue;
- how wrong its own posted waits were, guest by guest.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from services.queue.learning import (
    DecayingRate,
    DispatchInterval,
    Residuals,
    ServiceRate,
    Share,
    WalkTime,
)


@dataclass(frozen=True, slots=True)
class LineSpec:
    """What the venue file says about one line (nameplate figures are priors)."""

    attraction_id: str
    queue_zone: str
    standby_point: str
    merge_point: str | None
    boarding_point: str
    nameplate_per_hour: float
    vehicle_capacity: int
    dispatch_interval: float
    walk_standby: float
    walk_return: float
    return_share: float
    return_time: bool
    virtual_queue: bool

    @property
    def nameplate_rate(self) -> float:
        """Riders per second at the nameplate capacity."""
        return self.nameplate_per_hour / 3600.0


@dataclass(slots=True)
class Entry:
    """A guest in the standby line."""

    tap_id: str
    at: float
    # The line ahead when they joined (standby and merge), for walk learning.
    ahead: int
    # What the twin would have posted at that moment: before and after its
    # correction from recent residuals.
    raw: float | None
    posted: float | None


@dataclass(slots=True)
class Cluster:
    """Boarding taps of one dispatch."""

    start: float
    last: float
    riders: int = 0
    returners: int = 0


@dataclass(frozen=True, slots=True)
class Boarded:
    """A standby guest who boarded: the twin's measured wait for them."""

    guest_id: str
    entered_at: float
    boarded_at: float
    posted: float | None


@dataclass(frozen=True, slots=True)
class Boarding:
    """What one boarding tap told the line."""

    standby: Boarded | None
    left_unseen: list[str]


@dataclass
class LineTwin:
    spec: LineSpec
    # Standby guests by guest id; their entry times and ids in entry order.
    standby: dict[str, Entry] = field(default_factory=dict)
    _times: list[float] = field(default_factory=list)
    _ids: list[str] = field(default_factory=list)
    # Return-time and virtual-queue guests between merge and boarding.
    returning: dict[str, float] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    cluster: Cluster | None = None
    _prev_start: float | None = None
    _prev_saturated: bool = False
    # Durations of unannounced stops found so far (for the venue's repair model).
    stalls: list[float] = field(default_factory=list)
    last_boarding_at: float | None = None

    # Stops of the ride: (start, end or None while stopped).
    stops: list[tuple[float, float | None]] = field(default_factory=list)

    occupancy: int | None = None
    occupancy_at: float | None = None

    entered: int = 0
    boarded_standby: int = 0
    boarded_return: int = 0
    boarded_untapped: int = 0
    left_seen: int = 0
    left_unseen: int = 0
    recent: deque[Boarded] = field(default_factory=lambda: deque(maxlen=20))
    # Standby entries per 15-minute slot of the day (key: slot start, seconds).
    entries_by_slot: dict[int, int] = field(default_factory=dict)

    service: ServiceRate = field(init=False)
    interval: DispatchInterval = field(init=False)
    walk: WalkTime = field(init=False)
    untapped: Share = field(init=False)
    unseen_leavers: Share = field(init=False)
    return_riders: Share = field(init=False)
    residuals: Residuals = field(init=False)
    arrivals: DecayingRate = field(init=False)
    merges: DecayingRate = field(init=False)

    def __post_init__(self) -> None:
        spec = self.spec
        self.service = ServiceRate(
            spec.nameplate_rate, prior_seconds=max(3 * spec.dispatch_interval, 180.0)
        )
        self.interval = DispatchInterval(spec.dispatch_interval)
        self.walk = WalkTime(spec.walk_standby)
        self.untapped = Share()
        self.unseen_leavers = Share()
        self.return_riders = Share(window=300)
        self.residuals = Residuals()
        self.arrivals = DecayingRate(tau=900.0)
        self.merges = DecayingRate(tau=900.0)

    # --- derived figures --------------------------------------------------------

    @property
    def dispatch_interval(self) -> float:
        return self.interval.value

    @property
    def service_rate(self) -> float:
        """Riders per second while loading from a waiting line."""
        return self.service.rate

    @property
    def riders_per_dispatch(self) -> float:
        return self.service_rate * self.dispatch_interval

    @property
    def last_dispatch_at(self) -> float | None:
        return self.cluster.start if self.cluster is not None else None

    @property
    def stopped_since(self) -> float | None:
        if self.stops and self.stops[-1][1] is None:
            return self.stops[-1][0]
        return None

    def untapped_in_line(self) -> float:
        """Guests in the standby line who did not tap in.

        Evidence first: only when boardings show guests arriving untapped does
        the queue zone's occupancy count; a reader's range bleeding past the
        zone's edge must not inflate the wait when every rider tapped in.
        """
        share = self.untapped.value if self.untapped.count >= 10 else 0.0
        if share < 0.02:
            return 0.0
        tapped = len(self.standby)
        from_boardings = tapped * share / (1.0 - min(share, 0.9))
        if self.occupancy is None:
            return from_boardings
        excess = max(0.0, self.occupancy - tapped - len(self.returning))
        return 0.5 * (from_boardings + min(excess, 3.0 * from_boardings + 5.0))

    def guest_weight(self) -> float:
        """What one tapped standby guest stands for in the line ahead: untapped
        guests spread among them, less those who will leave unseen."""
        tapped = len(self.standby)
        scale = 1.0 + (self.untapped_in_line() / tapped if tapped else 0.0)
        stay = 1.0 - (self.unseen_leavers.value if self.unseen_leavers.count >= 20 else 0.0)
        return scale * max(stay, 0.5)

    def standby_times(self) -> list[float]:
        """Entry times of the standby line, oldest first (shared: do not modify)."""
        return self._times

    def line_length(self) -> int:
        return round(len(self.standby) + self.untapped_in_line())

    def measured_wait(self) -> float | None:
        """Mean actual wait of the last few standby riders."""
        if not self.recent:
            return None
        last = list(self.recent)[-10:]
        return sum(b.boarded_at - b.entered_at for b in last) / len(last)

    def stalled_since(self, t: float) -> float | None:
        """An unannounced stop: guests waiting at the load and no dispatch for
        well over the interval. Returns when loading stopped."""
        if self.stopped_since is not None or self.cluster is None:
            return None
        quiet = t - self.cluster.last
        if quiet < max(4 * self.dispatch_interval, 120.0):
            return None
        if self._waiting_at_load(t - 2 * self.dispatch_interval) < 1:
            return None
        return self.cluster.last

    # --- taps ---------------------------------------------------------------

    def tap_standby(
        self, guest: str, at: float, tap_id: str, raw: float | None, posted: float | None
    ) -> None:
        self.seen.add(tap_id)
        current = self.standby.get(guest)
        if current is not None and at - current.at < 120.0:
            return  # tapped twice at the entrance: still the first entry
        if current is not None:
            # Tapped in again long after: they had left and came back.
            self._drop_standby(guest)
            self.left_seen += 1
        self.returning.pop(guest, None)
        ahead = len(self.standby) + len(self.returning)
        self.standby[guest] = Entry(tap_id, at, ahead, raw, posted)
        index = bisect.bisect_right(self._times, at)
        self._times.insert(index, at)
        self._ids.insert(index, guest)
        self.entered += 1
        self.arrivals.add(at)
        slot = int(at // 900) * 900
        self.entries_by_slot[slot] = self.entries_by_slot.get(slot, 0) + 1

    def tap_merge(self, guest: str, at: float, tap_id: str) -> None:
        self.seen.add(tap_id)
        if guest in self.standby:
            # Left standby for the return line without riding from standby.
            self._drop_standby(guest)
            self.left_seen += 1
        if guest not in self.returning:
            self.returning[guest] = at
            self.merges.add(at)

    def tap_boarding(self, guest: str, at: float, tap_id: str) -> Boarding:
        """A rider boarded: which standby guest (if any), and who left unseen."""
        self.seen.add(tap_id)
        self._join_cluster(at)
        assert self.cluster is not None
        self.cluster.riders += 1
        self.last_boarding_at = max(at, self.last_boarding_at or at)
        if guest in self.returning:
            del self.returning[guest]
            self.cluster.returners += 1
            self.boarded_return += 1
            self.return_riders.observe(True)
            self.untapped.observe(False)
            return Boarding(None, [])
        self.return_riders.observe(False)
        entry = self.standby.get(guest)
        if entry is None:
            self.boarded_untapped += 1
            self.untapped.observe(True)
            return Boarding(None, [])
        self.untapped.observe(False)
        self._drop_standby(guest)
        self.boarded_standby += 1
        self.unseen_leavers.observe(False)
        boarded = Boarded(guest, entry.at, at, entry.posted)
        self.recent.append(boarded)
        undisturbed = not self._stopped_between(entry.at, at)
        if undisturbed and entry.raw is not None:
            self.residuals.observe((at - entry.at) - entry.raw)
        self._learn_walk(entry, undisturbed)
        return Boarding(boarded, self._prune_passed(entry.at))

    def _learn_walk(self, entry: Entry, undisturbed: bool) -> None:
        """A guest who met an empty line and boarded right after a dispatch that
        left without them was still walking at that dispatch. (Without a
        dispatch seen just before, a long wait could as well be a stop.)"""
        assert self.cluster is not None
        start, prev = self.cluster.start, self._prev_start
        if not undisturbed or entry.ahead >= max(1.0, 0.5 * self.riders_per_dispatch):
            return
        if prev is None or not start - 1.5 * self.dispatch_interval <= prev < start:
            return
        self.walk.observe(max(prev - entry.at, 0.0), start - entry.at)

    def remove(self, guest: str) -> bool:
        """The guest was seen elsewhere (another line, the exit): they left."""
        if guest in self.standby:
            self._drop_standby(guest)
            self.left_seen += 1
            return True
        return self.returning.pop(guest, None) is not None

    def observe_occupancy(self, count: int, at: float) -> None:
        if self.occupancy_at is None or at >= self.occupancy_at:
            self.occupancy = count
            self.occupancy_at = at

    # --- ride status ----------------------------------------------------------

    def stop(self, at: float) -> None:
        if self.stopped_since is None:
            self.stops.append((at, None))

    def resume(self, at: float) -> float | None:
        """The ride runs again; returns how long it was stopped."""
        since = self.stopped_since
        if since is None:
            return None
        self.stops[-1] = (since, at)
        return at - since

    # --- internals ----------------------------------------------------------

    def _drop_standby(self, guest: str) -> None:
        entry = self.standby.pop(guest)
        index = bisect.bisect_left(self._times, entry.at)
        while index < len(self._times) and self._times[index] == entry.at:
            if self._ids[index] == guest:
                del self._times[index]
                del self._ids[index]
                return
            index += 1

    def _prune_passed(self, entered_at: float) -> list[str]:
        """Guests who joined well before a rider who just boarded, and are still
        'in line', have left: the line is first in, first out."""
        tolerance = max(120.0, 1.5 * self.dispatch_interval)
        gone: list[str] = []
        while self._times and self._times[0] < entered_at - tolerance:
            guest = self._ids[0]
            self._drop_standby(guest)
            self.left_unseen += 1
            self.unseen_leavers.observe(True)
            gone.append(guest)
        return gone

    def _waiting_at_load(self, t: float) -> int:
        """Guests who should have reached the load point by `t` and are still in line."""
        walk = 0.8 * self.walk.value + 5.0
        standby = bisect.bisect_left(self._times, t - walk)
        walk_return = 0.8 * self.spec.walk_return + 5.0
        merged = sum(1 for m in self.returning.values() if m < t - walk_return)
        return standby + merged

    def _join_cluster(self, at: float) -> None:
        gap = max(1.5, min(0.5 * self.dispatch_interval, 30.0))
        cluster = self.cluster
        if cluster is not None and abs(at - cluster.last) <= gap:
            cluster.last = max(cluster.last, at)
            return
        if cluster is not None:
            self._finish(cluster, at)
        self.cluster = Cluster(at, at)

    def _finish(self, cluster: Cluster, next_at: float) -> None:
        """A dispatch is complete (the next one began at `next_at`): learn from it."""
        prev = self._prev_start
        interval = self.dispatch_interval
        if prev is not None and self._prev_saturated:
            gap = cluster.start - prev
            if gap <= 3.0 * interval and not self._stopped_between(prev, cluster.start):
                # Loaded from a waiting line: what the ride really does.
                self.service.observe(cluster.riders, gap)
                self.interval.observe(gap)
        needed = max(1, round(0.1 * self.riders_per_dispatch))
        saturated = self._waiting_at_load(cluster.start) >= needed
        quiet = next_at - cluster.last
        if (
            saturated
            and quiet > max(4.0 * interval, 120.0)
            and not self._stopped_between(cluster.last, next_at)
        ):
            # Guests waited and nothing loaded: a stop nobody announced.
            self.stops.append((cluster.last, next_at))
            self.stalls.append(quiet)
        self._prev_saturated = saturated
        self._prev_start = cluster.start

    def _stopped_between(self, start: float, end: float) -> bool:
        for begin, finish in reversed(self.stops):
            if (finish is None or finish > start) and begin < end:
                return True
            if finish is not None and finish <= start:
                break
        return False
