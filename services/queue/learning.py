"""Small online estimators the line twin learns with. Pure: times are venue
seconds (floats) passed in, never read from a clock.

Each starts from a prior (the venue's nameplate figures or a stated default)
worth a few observations, so the twin answers sensibly at opening and follows
the data as soon as there is some.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class DecayingRate:
    """Events per second, an exponentially weighted count with time constant `tau`.

    The estimate at `t` is sum(exp(-(t - t_i) / tau)) / tau over past events:
    unbiased for a steady Poisson stream and quick to follow a change.
    """

    tau: float
    _mass: float = 0.0
    _at: float | None = None
    # The first event's time: before `tau` has passed the estimate divides by
    # the time observed instead, so a fresh day does not read as a slow one.
    _since: float | None = None

    def add(self, t: float, weight: float = 1.0) -> None:
        self._decay_to(t)
        self._mass += weight
        if self._since is None:
            self._since = t

    def rate(self, t: float) -> float:
        if self._at is None or self._since is None:
            return 0.0
        mass = self._mass * math.exp(-max(t - self._at, 0.0) / self.tau)
        observed = max(t - self._since, 1.0)
        window = self.tau * (1.0 - math.exp(-observed / self.tau))
        return mass / max(window, 1.0)

    def _decay_to(self, t: float) -> None:
        if self._at is not None and t > self._at:
            self._mass *= math.exp(-(t - self._at) / self.tau)
        if self._at is None or t > self._at:
            self._at = t


@dataclass
class ServiceRate:
    """Riders per second while the line is saturated (the ride's real capacity).

    Observations are (riders, seconds) of stretches where the ride loaded with a
    line waiting; older ones fade with `memory` seconds of saturated time. The
    prior is the nameplate rate worth `prior_seconds`.
    """

    nameplate: float
    prior_seconds: float
    memory: float = 2700.0
    _riders: float = field(init=False)
    _seconds: float = field(init=False)
    samples: int = 0

    def __post_init__(self) -> None:
        self._riders = self.nameplate * self.prior_seconds
        self._seconds = self.prior_seconds

    def observe(self, riders: float, seconds: float) -> None:
        if seconds <= 0:
            return
        fade = math.exp(-seconds / self.memory)
        self._riders = self._riders * fade + riders
        self._seconds = self._seconds * fade + seconds
        self.samples += 1

    @property
    def rate(self) -> float:
        return self._riders / self._seconds


@dataclass
class DispatchInterval:
    """Seconds between dispatches, the median of recent saturated gaps.

    Gaps far from the current estimate (an empty dispatch in between, a stop)
    are left out; the nameplate interval holds until there are enough gaps.
    """

    nameplate: float
    window: int = 15
    value: float = field(init=False)
    _gaps: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self._gaps = deque(maxlen=self.window)
        self.value = self.nameplate

    def observe(self, gap: float) -> None:
        if 0.4 * self.value <= gap <= 2.5 * self.value:
            self._gaps.append(gap)
            if len(self._gaps) >= 5:
                ordered = sorted(self._gaps)
                self.value = ordered[len(ordered) // 2]


@dataclass
class WalkTime:
    """Seconds from the standby tap to the load point when nobody is ahead.

    A guest who met an empty line boarded at the first dispatch after their
    walk: their walk lies in (boarded - interval - entered, boarded - entered].
    Each such guest moves the estimate into that interval (and no further), so
    it settles on a value every observation agrees with.
    """

    prior: float
    alpha: float = 0.15
    value: float = field(init=False)
    samples: int = 0

    def __post_init__(self) -> None:
        self.value = self.prior

    def observe(self, lower: float, upper: float) -> None:
        if upper <= 0 or upper < lower:
            return
        target = min(max(self.value, lower), upper)
        self.value += self.alpha * (target - self.value)
        self.samples += 1


@dataclass
class Share:
    """A share (0..1) of recent outcomes, counted over the last `window` ones."""

    window: int = 200
    prior: float = 0.0
    prior_weight: float = 5.0
    _hits: deque[bool] = field(init=False)
    _count: int = 0

    def __post_init__(self) -> None:
        self._hits = deque(maxlen=self.window)

    def observe(self, hit: bool) -> None:
        if len(self._hits) == self.window and self._hits[0]:
            self._count -= 1
        self._hits.append(hit)
        self._count += hit

    @property
    def value(self) -> float:
        return (self._count + self.prior * self.prior_weight) / (
            len(self._hits) + self.prior_weight
        )

    @property
    def count(self) -> int:
        return len(self._hits)


@dataclass
class Residuals:
    """Recent (actual - predicted) waits; the shrunk median is the correction.

    Shrinking toward zero by n / (n + shrink) keeps a handful of odd guests
    from moving the posted wait; the median ignores the few whose wait a
    stop inflated.
    """

    window: int = 31
    shrink: float = 8.0
    _values: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self._values = deque(maxlen=self.window)

    def observe(self, residual: float) -> None:
        self._values.append(residual)

    @property
    def correction(self) -> float:
        n = len(self._values)
        if n == 0:
            return 0.0
        ordered = sorted(self._values)
        median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
        return median * n / (n + self.shrink)


@dataclass
class RepairTimes:
    """How long stops last, for the expected rest of a stop already `elapsed` long.

    Pooled over every attraction of the venue (stops are rare at any one ride).
    Until real stops are seen, a broad prior: stops of 10, 20, 30 and 45 minutes.
    """

    prior: tuple[float, ...] = (600.0, 1200.0, 1800.0, 2700.0)
    _seen: deque[float] = field(default_factory=lambda: deque(maxlen=200))

    def observe(self, duration: float) -> None:
        if duration > 0:
            self._seen.append(duration)

    def remaining(self, elapsed: float) -> float:
        samples = [*self.prior, *self._seen, *self._seen]  # data counts double
        longer = [d for d in samples if d > elapsed]
        if not longer:
            # Longer than anything seen: expect about half as long again.
            return max(elapsed * 0.5, 300.0)
        return sum(longer) / len(longer) - elapsed

    @property
    def count(self) -> int:
        return len(self._seen)


@dataclass
class StopRisk:
    """How often rides stop while running, pooled over the venue: stops per
    second of opening time. A weak prior (one stop in a hundred ride-hours) holds
    until the day has shown its own."""

    prior_stops: float = 0.5
    prior_seconds: float = 50 * 3600.0
    stops: int = 0

    def observe_stop(self) -> None:
        self.stops += 1

    def rate(self, ride_seconds: float) -> float:
        return (self.stops + self.prior_stops) / (max(ride_seconds, 0.0) + self.prior_seconds)
