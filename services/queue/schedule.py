"""Venue days, opening hours and an attraction's status. Pure.

A venue day starts at 04:00 local time, so a day that runs past midnight
stays one day. An attraction is OPEN within its opening hours and CLOSED
(scheduled hours) outside them, unless ops said otherwise today: DOWN, CLOSED
or OPEN (an early opening) hold until ops change them or the attraction's
scheduled closing, whichever comes first. Ops decisions do not carry over to
the next day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from venue.queue.v1 import queue_pb2 as pb

OPEN = pb.ATTRACTION_STATUS_OPEN
DOWN = pb.ATTRACTION_STATUS_DOWN
CLOSED = pb.ATTRACTION_STATUS_CLOSED
SCHEDULED = pb.STATUS_REASON_SCHEDULED_HOURS
DAY_BOUNDARY_HOUR = 4


@dataclass(frozen=True)
class VenueCalendar:
    timezone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def venue_date(self, t: float) -> date:
        local = datetime.fromtimestamp(t, UTC).astimezone(self.tz)
        return (local - timedelta(hours=DAY_BOUNDARY_HOUR)).date()

    def day_start(self, t: float) -> float:
        day = self.venue_date(t)
        start = datetime.combine(day, time(DAY_BOUNDARY_HOUR), self.tz)
        return start.timestamp()

    def at_minute(self, day: date, minute: float) -> float:
        """The instant `minute` minutes after local midnight of venue day `day`."""
        midnight = datetime.combine(day, time(0), self.tz)
        # Minutes are counted on the local wall clock; fine outside DST changes,
        # which venues do not open across.
        return (midnight + timedelta(minutes=minute)).timestamp()

    def hours_on(self, t: float, opens: int, closes: int) -> tuple[float, float]:
        day = self.venue_date(t)
        return self.at_minute(day, opens), self.at_minute(day, closes)


@dataclass(frozen=True, slots=True)
class OpsStatus:
    """What ops last set for an attraction."""

    status: int
    reason: int
    note: str
    since: float
    expected_reopen: float | None


@dataclass(frozen=True, slots=True)
class Status:
    status: int
    reason: int
    note: str
    since: float
    expected_reopen: float | None

    def same_as(self, other: Status | None) -> bool:
        return other is not None and (
            self.status,
            self.reason,
            self.note,
            self.expected_reopen,
        ) == (
            other.status,
            other.reason,
            other.note,
            other.expected_reopen,
        )


def effective_status(
    ops: OpsStatus | None, opens_at: float, closes_at: float, day_start: float, t: float
) -> Status:
    """The status at `t` from today's hours and ops' last decision."""
    in_hours = opens_at <= t < closes_at
    # Scheduled closing ends any decision made before it.
    if ops is not None and ops.since >= day_start and not (t >= closes_at > ops.since):
        return Status(ops.status, ops.reason, ops.note, ops.since, ops.expected_reopen)
    if in_hours:
        return Status(OPEN, pb.STATUS_REASON_UNSPECIFIED, "", opens_at, None)
    since = closes_at if t >= closes_at else day_start
    return Status(CLOSED, SCHEDULED, "", since, None)
