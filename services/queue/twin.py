"""The venue's twin: every line, ride status, the park's population, and what
is learned across attractions (how long stops last, how good forecasts are).
Pure: fed facts and times, never reading a clock or a database.

Handling a fact twice changes nothing: each line keeps the ids of the taps it
has applied, and the store keeps the same facts keyed by tap id, so a replayed
stream or a restart (which replays the day's facts in their original order)
comes back to the same state.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.queue.estimate import NO_RETURNS, LineView, ReturnArrivals, standby_wait
from services.queue.forecast import (
    SLOT,
    ForecastErrors,
    Projection,
    SlotForecast,
    arrival_model,
    project,
    slot_start,
)
from services.queue.learning import DecayingRate, RepairTimes, StopRisk
from services.queue.line import Boarded, LineSpec, LineTwin
from services.queue.schedule import (
    CLOSED,
    DOWN,
    OPEN,
    SCHEDULED,
    OpsStatus,
    Status,
    VenueCalendar,
    effective_status,
)


class TapKind(enum.IntEnum):
    ENTRY = 1
    EXIT = 2
    STANDBY = 3
    MERGE = 4
    BOARDING = 5


@dataclass(frozen=True, slots=True)
class TapFact:
    """An allowed tap, as the access stream reports it."""

    tap_id: str
    kind: TapKind
    attraction_id: str
    guest_id: str
    at: float
    entitlement_id: str = ""


@dataclass(frozen=True, slots=True)
class Applied:
    new: bool
    # Lines whose figures this tap changed.
    attractions: tuple[str, ...] = ()
    # Standby taps: what the twin would have posted at that moment.
    raw: float | None = None
    posted: float | None = None


@dataclass(frozen=True, slots=True)
class Estimate:
    raw: float | None
    posted: float | None
    status: Status
    computed_at: float
    version: int


@dataclass(frozen=True, slots=True)
class Hours:
    opens: int  # minutes after local midnight
    closes: int


@dataclass
class Population:
    """Guests inside the gates, from entry and exit taps."""

    inside: int = 0
    entries: DecayingRate = field(default_factory=lambda: DecayingRate(tau=1800.0))
    exits: DecayingRate = field(default_factory=lambda: DecayingRate(tau=1800.0))
    fade: float = 5400.0

    def entry(self, t: float) -> None:
        self.inside += 1
        self.entries.add(t)

    def exit(self, t: float) -> None:
        self.inside = max(self.inside - 1, 0)
        self.exits.add(t)

    def ratio(self, t: float, ahead: float) -> float:
        """Expected population `ahead` seconds from `t`, relative to now."""
        if self.inside < 50:
            return 1.0
        net = self.entries.rate(t) - self.exits.rate(t)
        projected = self.inside + net * self.fade * (1.0 - math.exp(-ahead / self.fade))
        return min(max(projected / self.inside, 0.5), 1.6)


SCORED_LEADS = (900.0, 1800.0, 3600.0, 7200.0)


@dataclass
class ForecastSnapshot:
    made_at: float
    first_slot: float
    waits: tuple[float, ...]


@dataclass
class Twin:
    specs: dict[str, LineSpec]
    hours: dict[str, Hours]
    calendar: VenueCalendar
    max_age: float = 10.0

    lines: dict[str, LineTwin] = field(default_factory=dict)
    ops: dict[str, OpsStatus] = field(default_factory=dict)
    known_status: dict[str, Status] = field(default_factory=dict)
    returns: dict[str, ReturnArrivals] = field(default_factory=dict)
    population: Population = field(default_factory=Population)
    repairs: RepairTimes = field(default_factory=RepairTimes)
    stop_risk: StopRisk = field(default_factory=StopRisk)
    errors: ForecastErrors = field(default_factory=ForecastErrors)
    # Posted minus actual wait of recent standby riders, all lines together.
    posted_errors: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    # Which line each guest stands in (standby or return).
    where: dict[str, str] = field(default_factory=dict)
    seen_gate_taps: set[str] = field(default_factory=set)
    day_start: float | None = None

    _versions: dict[str, int] = field(default_factory=dict)
    _status_versions: dict[str, int] = field(default_factory=dict)
    _estimates: dict[str, Estimate] = field(default_factory=dict)
    _snapshots: dict[str, deque[ForecastSnapshot]] = field(default_factory=dict)
    _hazard: tuple[float, float] | None = None
    _day_cache: float | None = None
    _hours_cache: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._fresh_lines()

    def _fresh_lines(self) -> None:
        self.lines = {a: LineTwin(spec) for a, spec in self.specs.items()}
        self.where = {}
        self.seen_gate_taps = set()
        self.population = Population()
        self._versions = dict.fromkeys(self.specs, 0)
        self._estimates = {}
        self._snapshots = {a: deque(maxlen=40) for a in self.specs}

    # --- days -------------------------------------------------------------------

    def roll_day(self, t: float) -> bool:
        """Start a new venue day when `t` is past the current one's end."""
        start = self.calendar.day_start(t)
        if self.day_start is not None and start <= self.day_start:
            return False
        first = self.day_start is None
        self.day_start = start
        if not first:
            self._fresh_lines()
            self.returns = {}
            self.known_status = {}
        return True

    def _day_of(self, t: float) -> float:
        """The start of the venue day holding `t` (cached: time zones are slow)."""
        start = self._day_cache
        if start is None or not start <= t < start + 86400.0:
            start = self.calendar.day_start(t)
            self._day_cache = start
            self._hours_cache = {}
        return start

    def hours_of(self, attraction: str, t: float) -> tuple[float, float]:
        self._day_of(t)
        cached = self._hours_cache.get(attraction)
        if cached is None:
            h = self.hours[attraction]
            cached = self.calendar.hours_on(t, h.opens, h.closes)
            self._hours_cache[attraction] = cached
        return cached

    # --- taps ---------------------------------------------------------------

    def seen(self, fact: TapFact) -> bool:
        if fact.kind in (TapKind.ENTRY, TapKind.EXIT):
            return fact.tap_id in self.seen_gate_taps
        line = self.lines.get(fact.attraction_id)
        return line is None or fact.tap_id in line.seen

    def apply(
        self, fact: TapFact, recorded: tuple[float | None, float | None] | None = None
    ) -> Applied:
        """Apply one tap once; a tap seen before changes nothing. `recorded` is the
        (raw, posted) estimate stored with a standby tap when the day is replayed."""
        if self.day_start is None or fact.at >= self.day_start + 86400.0:
            self.roll_day(fact.at)
        if fact.at < (self.day_start or 0.0) or self.seen(fact):
            return Applied(False)
        if fact.kind in (TapKind.ENTRY, TapKind.EXIT):
            return self._gate(fact)
        line = self.lines[fact.attraction_id]
        changed = list(self._leave_lines(fact.guest_id, fact.attraction_id))
        changed.append(fact.attraction_id)
        if fact.kind is TapKind.STANDBY:
            if recorded is None:
                estimate = self.estimate(fact.attraction_id, fact.at, fresh=True)
                recorded = (estimate.raw, estimate.posted)
            raw, posted = recorded
            line.tap_standby(fact.guest_id, fact.at, fact.tap_id, raw, posted)
            self.where[fact.guest_id] = fact.attraction_id
            self._touch(fact.attraction_id)
            return Applied(True, tuple(changed), raw, posted)
        if fact.kind is TapKind.MERGE:
            line.tap_merge(fact.guest_id, fact.at, fact.tap_id)
            self.where[fact.guest_id] = fact.attraction_id
        else:
            self._board(line, fact)
        self._touch(fact.attraction_id)
        return Applied(True, tuple(changed))

    def _gate(self, fact: TapFact) -> Applied:
        self.seen_gate_taps.add(fact.tap_id)
        if fact.kind is TapKind.ENTRY:
            self.population.entry(fact.at)
            return Applied(True)
        self.population.exit(fact.at)
        return Applied(True, self._leave_lines(fact.guest_id, None))

    def _board(self, line: LineTwin, fact: TapFact) -> None:
        attraction = fact.attraction_id
        boarding = line.tap_boarding(fact.guest_id, fact.at, fact.tap_id)
        for guest in (fact.guest_id, *boarding.left_unseen):
            if self.where.get(guest) == attraction:
                del self.where[guest]
        if boarding.standby is not None:
            self._score(attraction, boarding.standby)
        for stall in line.stalls:
            self.repairs.observe(stall)
            self.stop_risk.observe_stop()
        line.stalls.clear()

    def _leave_lines(self, guest: str, here: str | None) -> tuple[str, ...]:
        """A guest seen at a gate or another attraction is no longer in a line elsewhere."""
        current = self.where.get(guest)
        if current is None or current == here:
            return ()
        del self.where[guest]
        if self.lines[current].remove(guest):
            self._touch(current)
            return (current,)
        return ()

    def observe_occupancy(self, attraction: str, count: int, at: float) -> bool:
        line = self.lines[attraction]
        before = line.untapped_in_line()
        line.observe_occupancy(count, at)
        if abs(line.untapped_in_line() - before) > 1e-9:
            self._touch(attraction)
            return True
        return False

    def set_returns(self, attraction: str, arrivals: ReturnArrivals) -> None:
        if self.returns.get(attraction) != arrivals:
            self.returns[attraction] = arrivals
            self._touch(attraction)

    def _touch(self, attraction: str, status: bool = False) -> None:
        self._versions[attraction] = self._versions.get(attraction, 0) + 1
        if status:
            self._status_versions[attraction] = self._status_versions.get(attraction, 0) + 1

    def _score(self, attraction: str, boarded: Boarded) -> None:
        actual = boarded.boarded_at - boarded.entered_at
        if boarded.posted is not None:
            self.posted_errors.append(boarded.posted - actual)
        snapshots = self._snapshots.get(attraction)
        if not snapshots:
            return
        # Score the forecasts made about a quarter, half, one and two hours
        # before the guest joined (the newest made by then).
        for lead in SCORED_LEADS:
            made_by = boarded.entered_at - lead
            for snapshot in reversed(snapshots):
                if snapshot.made_at <= made_by:
                    if made_by - snapshot.made_at <= 600.0:
                        index = int((boarded.entered_at - snapshot.first_slot) // SLOT)
                        if 0 <= index < len(snapshot.waits):
                            horizon = boarded.entered_at - snapshot.made_at
                            self.errors.observe(horizon, snapshot.waits[index] - actual)
                    break

    # --- status ---------------------------------------------------------------

    def status(self, attraction: str, t: float) -> Status:
        opens_at, closes_at = self.hours_of(attraction, t)
        day_start = self._day_of(t)
        return effective_status(self.ops.get(attraction), opens_at, closes_at, day_start, t)

    def set_ops(self, attraction: str, decision: OpsStatus) -> None:
        self.ops[attraction] = decision
        self._touch(attraction, status=True)

    def refresh_status(self, attraction: str, t: float) -> tuple[Status | None, Status] | None:
        """(previous, current) when the status changed since last asked, else None.
        Keeps the line's record of stops in step."""
        current = self.status(attraction, t)
        previous = self.known_status.get(attraction)
        if current.same_as(previous) and previous is not None:
            return None
        self.known_status[attraction] = current
        self._touch(attraction, status=True)
        line = self.lines[attraction]
        stopping = current.status == DOWN or (
            current.status == CLOSED and current.reason != SCHEDULED
        )
        if stopping:
            if line.stopped_since is None and current.status == DOWN:
                self.stop_risk.observe_stop()
            line.stop(current.since)
        else:
            duration = line.resume(min(current.since, t))
            if duration is not None and current.status == OPEN:
                self.repairs.observe(duration)
        self._touch(attraction)
        return previous, current

    def resume_at(self, attraction: str, status: Status, t: float) -> float | None:
        """When loading is expected to resume, for a stopped ride; None if running."""
        line = self.lines[attraction]
        if status.status == DOWN:
            if line.last_boarding_at is not None and line.last_boarding_at > status.since + 1.0:
                return None  # riders are boarding: it runs, whatever the board says
            if status.expected_reopen is not None and status.expected_reopen > t:
                return status.expected_reopen
            return t + self.repairs.remaining(t - status.since)
        stalled = line.stalled_since(t)
        if stalled is not None:
            return t + self.repairs.remaining(t - stalled)
        return None

    # --- estimates ------------------------------------------------------------

    def view(self, attraction: str, t: float, resume_at: float | None) -> LineView:
        line = self.lines[attraction]
        spec = line.spec
        return LineView(
            t=t,
            standby=line.standby_times(),
            weight=line.guest_weight(),
            returning=sorted(line.returning.values()),
            future_returns=self.returns.get(attraction, NO_RETURNS),
            rate=line.service_rate,
            interval=line.dispatch_interval,
            walk_standby=line.walk.value,
            walk_return=spec.walk_return,
            return_share=spec.return_share,
            anchor=line.last_dispatch_at,
            resume_at=resume_at,
        )

    def estimate(self, attraction: str, t: float, fresh: bool = False) -> Estimate:
        """The posted wait at `t` (cached while nothing changed and it is recent)."""
        version = self._versions.get(attraction, 0)
        cached = self._estimates.get(attraction)
        if (
            not fresh
            and cached is not None
            and cached.version == version
            and 0.0 <= t - cached.computed_at < self.max_age
        ):
            return cached
        status = self.status(attraction, t)
        if status.status == CLOSED:
            result = Estimate(None, None, status, t, version)
        else:
            resume_at = self.resume_at(attraction, status, t)
            raw = standby_wait(self.view(attraction, t, resume_at))
            posted = self._posted(attraction, raw, t)
            result = Estimate(raw, posted, status, t, version)
        self._estimates[attraction] = result
        return result

    def _posted(self, attraction: str, raw: float, t: float) -> float:
        """The estimate, corrected by the line's recent residuals and hedged for
        the chance that the ride stops while the guest waits."""
        if not math.isfinite(raw):
            return raw
        correction = self.lines[attraction].residuals.correction
        bound = max(60.0, 0.3 * raw)
        wait = max(raw + min(max(correction, -bound), bound), 0.0)
        return wait * (1.0 + self._stop_delay_factor(t))

    def _stop_delay_factor(self, t: float) -> float:
        """Expected stop time per second of waiting: the venue's stop rate times
        how long a stop lasts."""
        cached = self._hazard
        if cached is not None and abs(t - cached[0]) < 60.0:
            return cached[1]
        ride_seconds = 0.0
        for attraction in self.specs:
            opens_at, closes_at = self.hours_of(attraction, t)
            ride_seconds += max(0.0, min(t, closes_at) - opens_at)
        factor = self.stop_risk.rate(ride_seconds) * self.repairs.remaining(0.0)
        self._hazard = (t, factor)
        return factor

    # --- forecasts --------------------------------------------------------------

    def forecast(self, attraction: str, t: float, slots: int) -> list[SlotForecast]:
        line = self.lines[attraction]
        spec = line.spec
        status = self.status(attraction, t)
        opens_at, closes_at = self.hours_of(attraction, t)
        closed_for_day = status.status == CLOSED and status.reason != SCHEDULED
        resume_at = self.resume_at(attraction, status, t) if status.status != CLOSED else None
        estimate = self.estimate(attraction, t)
        rate = line.service_rate
        share_used = min(line.return_riders.value, spec.return_share)
        standby_capacity = rate * (1.0 - share_used)
        weight = line.guest_weight()
        arrivals = line.arrivals.rate(t) * weight
        line_seconds = len(line.standby) * weight / max(standby_capacity, 1e-9)
        model = arrival_model(
            arrivals,
            standby_capacity,
            line_seconds,
            lambda ahead: self.population.ratio(t, ahead),
            t,
        )
        projection = Projection(
            t=t,
            line=len(line.standby) * weight,
            returning=float(len(line.returning)),
            future_returns=self.returns.get(attraction, NO_RETURNS),
            rate=rate,
            interval=line.dispatch_interval,
            walk=line.walk.value,
            return_share=spec.return_share,
            opens_at=opens_at,
            closes_at=closes_at,
            resume_at=resume_at,
            anchor=line.last_dispatch_at,
            closed_for_day=closed_for_day,
            posted_raw=estimate.raw
            if estimate.raw is not None and math.isfinite(estimate.raw)
            else None,
            correction=line.residuals.correction,
            stop_factor=self._stop_delay_factor(t),
            arrival_rate=model,
        )
        result = project(projection, slots, self.errors)
        snapshots = self._snapshots.setdefault(attraction, deque(maxlen=40))
        if not snapshots or t - snapshots[-1].made_at >= 300.0:
            snapshots.append(ForecastSnapshot(t, slot_start(t), tuple(s.wait for s in result)))
        return result

    # --- figures --------------------------------------------------------------

    def version(self, attraction: str) -> int:
        """Changes with any of the line's figures."""
        return self._versions.get(attraction, 0)

    def status_version(self, attraction: str) -> int:
        """Changes with the attraction's status (ops or the schedule)."""
        return self._status_versions.get(attraction, 0)

    def accuracy(self) -> tuple[float, float, int]:
        """Mean absolute error and bias (posted - actual, seconds) of recent riders."""
        errors = list(self.posted_errors)
        if not errors:
            return 0.0, 0.0, 0
        return (
            sum(abs(e) for e in errors) / len(errors),
            sum(errors) / len(errors),
            len(errors),
        )

    def attractions(self) -> Iterable[str]:
        return self.specs.keys()
