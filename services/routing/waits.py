"""What routing knows about lines: the queue service's forecasts, statuses and posted
waits, kept in memory from its event stream, and the join-time windows the planner
plans with.

Times are POSIX seconds of venue time. A forecast is a run of 15-minute slots, each
the expected standby wait for a guest joining during the slot and the expected
status. Outside the forecast's slots the nearest slot holds (a forecast that stops
at 17:00 says nothing better about 18:00 than the 17:00 slot does).

When no forecast is known for an attraction (the queue service has not published
one yet, or the plan is for another day) the wait is estimated from capacity alone:
a standby line half as long as its queue area holds, served at the standby share of
the nameplate capacity,

    estimate = 0.5 * queue zone capacity / (hourly capacity * standby share) hours,

kept between 5 and 90 minutes. It uses only the venue definition's physical facts,
never `venue.demand`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from services.venue_model import Poi, Venue

SLOT_SECONDS = 15 * 60
ESTIMATE_MIN_SECONDS = 5 * 60
ESTIMATE_MAX_SECONDS = 90 * 60
# A ride reported down with no expected reopening is planned as down this long;
# the itinerary service replans when it reopens.
DOWN_ASSUMED_SECONDS = 30 * 60


class Status(Enum):
    OPEN = "open"
    DOWN = "down"
    CLOSED = "closed"


class WaitSource(Enum):
    FORECAST = "forecast"
    ESTIMATE = "estimate"
    # A booked return line, a reservation or a performance: the wait is known.
    FIXED = "fixed"


@dataclass(frozen=True, slots=True)
class Slot:
    start: float
    wait_seconds: float
    operating: bool


@dataclass(frozen=True, slots=True)
class Forecast:
    computed_at: float
    slots: tuple[Slot, ...]
    slot_seconds: float = SLOT_SECONDS


@dataclass(frozen=True, slots=True)
class StatusReport:
    status: Status
    since: float
    reopen_at: float | None
    # CLOSED for the venue's scheduled hours: the opening hours already say so.
    scheduled: bool


@dataclass(frozen=True, slots=True)
class PostedWait:
    seconds: float | None
    at: float


@dataclass(frozen=True, slots=True)
class Segment:
    """Join times [start, end) with the same wait; end == start is one instant
    (a performance)."""

    start: float
    end: float
    wait_seconds: float
    source: WaitSource


@dataclass
class QueueBook:
    """Latest forecast, status and posted wait per attraction; newer facts win."""

    forecasts: dict[str, Forecast] = field(default_factory=dict)
    statuses: dict[str, StatusReport] = field(default_factory=dict)
    posted: dict[str, PostedWait] = field(default_factory=dict)

    def apply_forecast(self, attraction_id: str, forecast: Forecast) -> bool:
        known = self.forecasts.get(attraction_id)
        if known is not None and known.computed_at > forecast.computed_at:
            return False
        self.forecasts[attraction_id] = forecast
        return True

    def apply_status(self, attraction_id: str, report: StatusReport) -> bool:
        known = self.statuses.get(attraction_id)
        if known is not None and known.since > report.since:
            return False
        self.statuses[attraction_id] = report
        return True

    def apply_posted(self, attraction_id: str, posted: PostedWait) -> bool:
        known = self.posted.get(attraction_id)
        if known is not None and known.at > posted.at:
            return False
        self.posted[attraction_id] = posted
        return True

    def operating_at(self, attraction_id: str, at: float) -> bool:
        """Not known to be down or closed (outside scheduled hours) at `at`."""
        return not any(a <= at < b for a, b in self.blocked(attraction_id))

    def blocked(self, attraction_id: str) -> list[tuple[float, float]]:
        report = self.statuses.get(attraction_id)
        if report is None or report.status is Status.OPEN:
            return []
        if report.status is Status.DOWN:
            until = report.reopen_at
            if until is None or until <= report.since:
                until = report.since + DOWN_ASSUMED_SECONDS
            return [(report.since, until)]
        if report.scheduled:
            return []
        return [(report.since, math.inf)]

    def standby_segments(
        self, venue: Venue, poi: Poi, opens: float, closes: float, lo: float, hi: float
    ) -> list[Segment]:
        """When a guest can join the standby line of `poi` in [lo, hi), and the wait.

        `opens`/`closes` are the attraction's hours on the plan's day.
        """
        lo, hi = max(lo, opens), min(hi, closes)
        if lo >= hi:
            return []
        estimate = estimated_wait_seconds(venue, poi)
        forecast = self.forecasts.get(poi.id)
        pieces: list[Segment] = []
        if forecast is None or not forecast.slots:
            pieces.append(Segment(lo, hi, estimate, WaitSource.ESTIMATE))
        else:
            pieces = _from_forecast(forecast, lo, hi, estimate, self.statuses.get(poi.id))
        for a, b in self.blocked(poi.id):
            pieces = cut(pieces, a, b)
        return pieces


def _from_forecast(
    forecast: Forecast, lo: float, hi: float, estimate: float, status: StatusReport | None
) -> list[Segment]:
    slots = forecast.slots
    # Reopened after the forecast was made: its DOWN slots are stale from then on.
    reopened = (
        status.since
        if status is not None
        and status.status is Status.OPEN
        and status.since > forecast.computed_at
        else math.inf
    )
    out: list[Segment] = []
    bounds = [s.start for s in slots[1:]]
    for k, slot in enumerate(slots):
        a = -math.inf if k == 0 else slot.start
        b = math.inf if k == len(slots) - 1 else bounds[k]
        a, b = max(a, lo), min(b, hi)
        if a >= b:
            continue
        if slot.operating:
            out.append(Segment(a, b, slot.wait_seconds, WaitSource.FORECAST))
        elif b > reopened:
            out.append(Segment(max(a, reopened), b, estimate, WaitSource.ESTIMATE))
    return out


def cut(pieces: Sequence[Segment], a: float, b: float) -> list[Segment]:
    out: list[Segment] = []
    for p in pieces:
        if p.end <= a or p.start >= b:
            out.append(p)
            continue
        if p.start < a:
            out.append(Segment(p.start, a, p.wait_seconds, p.source))
        if p.end > b:
            out.append(Segment(b, p.end, p.wait_seconds, p.source))
    return out


def estimated_wait_seconds(venue: Venue, poi: Poi) -> float:
    """The capacity-only estimate of the module docstring."""
    queue = poi.queue
    if queue is None:
        return 0.0
    share = 1.0
    if queue.return_time or queue.virtual_queue:
        share = 1.0 - venue.rules.return_time_capacity_share
    line = 0.5 * venue.zone(queue.queue_zone).capacity
    hours = line / max(queue.hourly_capacity * share, 1.0)
    return min(ESTIMATE_MAX_SECONDS, max(ESTIMATE_MIN_SECONDS, hours * 3600.0))
