"""The shared venue clock, in the world's day seconds."""

from __future__ import annotations

import asyncio
import time

from services.platform.clock import VenueClock
from sim.frame import DayFrame


class VenueTime:
    def __init__(self, clock: VenueClock, frame: DayFrame) -> None:
        self.clock = clock
        self.frame = frame
        # Day seconds at the clock's anchor: now = base + (wall - anchor) * speed.
        self._base = clock.start.timestamp() - frame.midnight

    @property
    def speed(self) -> float:
        return self.clock.speed

    def now(self) -> float:
        return self._base + (time.time() - self.clock.anchor) * self.clock.speed

    def wall_until(self, t: float) -> float:
        return (t - self.now()) / self.clock.speed

    async def sleep_until(self, t: float) -> None:
        delay = self.wall_until(t)
        if delay > 0:
            await asyncio.sleep(delay)
