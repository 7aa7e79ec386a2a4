"""Venue time as the world counts it: seconds since local midnight of the day played.

Floats of seconds keep the event heap cheap; devices turn them back into instants
(`instant`, `epoch_ms`) when they report what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class DayFrame:
    day: date
    tz: ZoneInfo
    midnight: float  # Unix seconds of local midnight

    @classmethod
    def of(cls, day: date, timezone: str) -> DayFrame:
        tz = ZoneInfo(timezone)
        return cls(day, tz, datetime.combine(day, time(0), tz).timestamp())

    def at_clock(self, minute_of_day: float) -> float:
        """Day seconds of a local time of day (minutes after midnight, DST-aware)."""
        local = datetime.combine(self.day, time(0), self.tz) + timedelta(minutes=minute_of_day)
        return datetime.fromtimestamp(local.timestamp(), self.tz).timestamp() - self.midnight

    def instant(self, seconds: float) -> datetime:
        return datetime.fromtimestamp(self.midnight + seconds, self.tz)

    def epoch(self, seconds: float) -> float:
        return self.midnight + seconds

    def epoch_ms(self, seconds: float) -> int:
        return round((self.midnight + seconds) * 1000)

    def seconds_of(self, instant: datetime) -> float:
        return instant.timestamp() - self.midnight

    def label(self, seconds: float) -> str:
        return self.instant(seconds).strftime("%H:%M")
