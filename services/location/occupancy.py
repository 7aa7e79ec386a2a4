"""Zone occupancy: what to publish after each tick, and the per-minute history.

Counts are anonymous: they come from placement as numbers per zone, nothing else.
Publishing is coalesced by the tick: a zone whose count moved several times
between two ticks is published once, with its latest count.

History keeps, per zone and venue minute, the time-weighted mean count and the
largest count seen, so that any bucket of whole minutes can be answered exactly
(mean of the minutes' means, max of their maxima).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MINUTE_MS = 60_000
# A tick that spans more than this (a paused process) records only the last hour.
MAX_MINUTES_PER_TICK = 60

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ZoneCount:
    zone: int
    count: int
    capacity: int

    @property
    def density(self) -> float:
        return density(self.count, self.capacity)


@dataclass(frozen=True, slots=True)
class MinuteRow:
    zone: int
    minute_ms: int
    mean_count: float
    max_count: int
    capacity: int


def density(count: int, capacity: int) -> float:
    return count / capacity if capacity > 0 else 0.0


class Occupancy:
    def __init__(self, capacity: I64) -> None:
        self.capacity = capacity
        zones = capacity.shape[0]
        self.counts = np.zeros(zones, dtype=np.int64)
        self.as_of_ms = 0
        # -1: nothing published yet, so the first tick publishes every zone.
        self._published = np.full(zones, -1, dtype=np.int64)
        self._minute = -1
        self._from = 0
        self._area = np.zeros(zones, dtype=np.float64)  # count x ms within the minute
        self._peak = np.zeros(zones, dtype=np.int64)

    def update(self, counts: I64, now_ms: int) -> tuple[list[ZoneCount], list[MinuteRow]]:
        """New counts as of `now_ms`: the changes to publish and finished minutes."""
        rows = self._integrate(now_ms)
        self.counts = counts
        self.as_of_ms = now_ms
        np.maximum(self._peak, counts, out=self._peak)
        changed = np.flatnonzero(counts != self._published)
        self._published[changed] = counts[changed]
        capacity = self.capacity
        return [ZoneCount(z, int(counts[z]), int(capacity[z])) for z in changed.tolist()], rows

    def _integrate(self, now_ms: int) -> list[MinuteRow]:
        """Add the counts held since the last update to the minutes they span."""
        rows: list[MinuteRow] = []
        if self._minute < 0:
            self._minute = now_ms - now_ms % MINUTE_MS
            self._from = now_ms
            return rows
        t = self.as_of_ms
        newest = now_ms - now_ms % MINUTE_MS - (MAX_MINUTES_PER_TICK - 1) * MINUTE_MS
        while t < now_ms:
            end = min(now_ms, self._minute + MINUTE_MS)
            self._area += self.counts * float(end - t)
            t = end
            if end < self._minute + MINUTE_MS:
                break
            self._finish_minute(rows, end)
            if self._minute < newest:
                # A long pause: the minutes in between are not recorded.
                self._minute = self._from = t = newest
        return rows

    def _finish_minute(self, rows: list[MinuteRow], end_ms: int) -> None:
        covered = end_ms - self._from
        if covered > 0:
            means = self._area / covered
            for zone in range(self.capacity.shape[0]):
                rows.append(
                    MinuteRow(
                        zone,
                        self._minute,
                        float(means[zone]),
                        int(self._peak[zone]),
                        int(self.capacity[zone]),
                    )
                )
        self._minute = self._from = end_ms
        self._area[:] = 0.0
        self._peak[:] = self.counts
