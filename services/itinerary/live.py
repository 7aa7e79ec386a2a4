"""The live venue as the itinerary sees it: each line's status and posted wait,
each attraction's forecast (queue's stream), each walked zone's crowding
(location's stream). In memory, rebuilt at start from snapshots and then kept
current by the streams; no I/O here.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# queue.v1.AttractionStatus, by number.
STATUS_UNKNOWN, OPEN, DOWN, CLOSED = 0, 1, 2, 3
SLOT = timedelta(minutes=15)


@dataclass(slots=True)
class LineState:
    status: int = STATUS_UNKNOWN
    posted_wait_s: float | None = None
    status_since: datetime | None = None
    expected_reopen_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def operating(self) -> bool:
        return self.status in (STATUS_UNKNOWN, OPEN)


@dataclass(slots=True)
class Forecast:
    starts: list[datetime] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    computed_at: datetime | None = None

    def slot(self, at: datetime) -> int | None:
        index = bisect.bisect_right(self.starts, at) - 1
        if index < 0 or at >= self.starts[index] + SLOT:
            return None
        return index

    def wait_at(self, at: datetime) -> float | None:
        index = self.slot(at)
        return None if index is None else self.waits[index]

    def status_at(self, at: datetime) -> int:
        index = self.slot(at)
        return STATUS_UNKNOWN if index is None else self.statuses[index]


@dataclass(frozen=True, slots=True)
class WaitJump:
    """A posted wait far above what was forecast for now."""

    attraction_id: str
    posted_s: float
    forecast_s: float


@dataclass(frozen=True, slots=True)
class WaitDrop:
    """A posted wait far below what was forecast for now."""

    attraction_id: str
    posted_s: float
    forecast_s: float


# Thresholds: a jump of 15 minutes and half again, a drop to 60% and 10 minutes.
JUMP_MIN_S = 15 * 60.0
JUMP_RATIO = 1.5
DROP_RATIO = 0.6
DROP_MIN_S = 10 * 60.0


def is_jump(posted_s: float, forecast_s: float) -> bool:
    return posted_s >= forecast_s + JUMP_MIN_S and posted_s >= forecast_s * JUMP_RATIO


def is_drop(posted_s: float, forecast_s: float) -> bool:
    return forecast_s - posted_s >= DROP_MIN_S and posted_s <= forecast_s * DROP_RATIO


class LiveVenue:
    def __init__(self) -> None:
        self.lines: dict[str, LineState] = {}
        self.forecasts: dict[str, Forecast] = {}
        # zone -> (count, capacity, density, as_of)
        self.occupancy: dict[str, tuple[int, int, float, datetime]] = {}

    def line(self, attraction_id: str) -> LineState:
        return self.lines.setdefault(attraction_id, LineState())

    def posted_wait(self, attraction_id: str) -> float | None:
        line = self.lines.get(attraction_id)
        return None if line is None else line.posted_wait_s

    def forecast_wait(self, attraction_id: str, at: datetime) -> float | None:
        forecast = self.forecasts.get(attraction_id)
        return None if forecast is None else forecast.wait_at(at)

    def apply_wait(
        self, attraction_id: str, posted_s: float | None, at: datetime
    ) -> WaitJump | WaitDrop | None:
        """Record a posted wait; say whether it moved far from the forecast."""
        line = self.line(attraction_id)
        if line.updated_at is not None and at < line.updated_at:
            return None  # an older report than the one we hold
        line.posted_wait_s = posted_s
        line.updated_at = at
        if posted_s is None:
            return None
        expected = self.forecast_wait(attraction_id, at)
        if expected is None:
            return None
        if is_jump(posted_s, expected):
            return WaitJump(attraction_id, posted_s, expected)
        if is_drop(posted_s, expected):
            return WaitDrop(attraction_id, posted_s, expected)
        return None

    def apply_status(
        self,
        attraction_id: str,
        status: int,
        at: datetime,
        expected_reopen_at: datetime | None = None,
    ) -> bool:
        """Record a status; True when it changed."""
        line = self.line(attraction_id)
        if line.status_since is not None and at < line.status_since:
            return False
        changed = line.status != status
        if changed:
            line.status = status
            line.status_since = at
        line.expected_reopen_at = expected_reopen_at
        if status != OPEN:
            line.posted_wait_s = None
        return changed

    def apply_forecast(
        self,
        attraction_id: str,
        slots: list[tuple[datetime, float, int]],
        computed_at: datetime | None,
    ) -> None:
        current = self.forecasts.get(attraction_id)
        if (
            current is not None
            and computed_at
            and current.computed_at
            and computed_at < current.computed_at
        ):
            return
        ordered = sorted(slots)
        self.forecasts[attraction_id] = Forecast(
            [s[0] for s in ordered], [s[1] for s in ordered], [s[2] for s in ordered], computed_at
        )

    def apply_occupancy(
        self, zone_id: str, count: int, capacity: int, density: float, at: datetime
    ) -> None:
        current = self.occupancy.get(zone_id)
        if current is not None and at < current[3]:
            return
        self.occupancy[zone_id] = (count, capacity, density, at)

    def density(self, zone_id: str) -> float:
        current = self.occupancy.get(zone_id)
        return 0.0 if current is None else current[2]
