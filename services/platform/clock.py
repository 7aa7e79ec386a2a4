"""The venue clock: venue time runs at a configured speed from a shared anchor.

Every process of a suite gets the same three numbers (the venue instant at the
anchor, the wall-clock anchor, and the speed), so they all agree on venue time
without talking to each other, and a day can run at 60x for simulation and 1x in
a real venue. Domain logic takes times as arguments; only the edges of the system
(servicers, background loops) ask the clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class VenueClock:
    # Venue time at the anchor instant.
    start: datetime
    # Wall-clock Unix time of the anchor.
    anchor: float
    # Venue seconds per wall second.
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("venue clock start must carry a time zone")
        if self.speed <= 0:
            raise ValueError("venue clock speed must be positive")

    def now(self) -> datetime:
        return self.at_wall(time.time())

    def at_wall(self, wall: float) -> datetime:
        return self.start + timedelta(seconds=(wall - self.anchor) * self.speed)

    def wall_at(self, venue_time: datetime) -> float:
        """The wall-clock instant at which venue time reaches `venue_time`."""
        return self.anchor + (venue_time - self.start).total_seconds() / self.speed

    def wall_seconds(self, venue_seconds: float) -> float:
        """How long `venue_seconds` of venue time last on the wall clock."""
        return venue_seconds / self.speed

    @classmethod
    def real_time(cls) -> VenueClock:
        now = time.time()
        return cls(start=datetime.fromtimestamp(now, UTC), anchor=now, speed=1.0)
