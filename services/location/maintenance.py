"""Background upkeep: the ping log's partitions, expiry of trails, events,
batch acks and history, reader health, and the purge of unlinked pings.

Everything runs on venue time and in short statements: deletes go in bounded
chunks, and the purger sizes its time slices so each statement stays brief.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from services.location.pinglog import PingLog
from services.location.store import GUEST_ZONE_CHANGED, OCCUPANCY_CHANGED, LocationStore
from services.platform.clock import VenueClock

log = logging.getLogger("venue.location.maintenance")

# Wall seconds between rounds of upkeep.
ROUND_SECONDS = 2.0
# Occupancy is anonymous; its history serves queue learning and reports.
HISTORY_RETENTION = timedelta(days=90)
# Purge statements aim at this duration (seconds) by sizing their time slice.
PURGE_TARGET_S = 0.1
PURGE_MIN_SLICE = timedelta(seconds=10)
PURGE_MAX_SLICE = timedelta(hours=1)


class Maintenance:
    def __init__(
        self,
        store: LocationStore,
        pinglog: PingLog,
        clock: VenueClock,
        trail_retention: timedelta,
        reader_last_ms: npt.NDArray[np.int64],
        reader_no: npt.NDArray[np.int16],
    ) -> None:
        self._store = store
        self._pinglog = pinglog
        self._clock = clock
        self._trail_retention = trail_retention
        self._reader_last_ms = reader_last_ms
        self._reader_no = reader_no
        self._saved_last = reader_last_ms.copy()
        self._slice = timedelta(minutes=5)

    async def run(self) -> None:
        while True:
            try:
                await self.round(self._clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("upkeep round failed; retrying", exc_info=True)
            await asyncio.sleep(ROUND_SECONDS)

    async def round(self, now: datetime) -> None:
        await self._pinglog.maintain(now)
        trail_cutoff = now - self._trail_retention
        await self._store.expire_visits(trail_cutoff)
        await self._store.expire_events(GUEST_ZONE_CHANGED, trail_cutoff)
        await self._store.expire_events(OCCUPANCY_CHANGED, now - self._pinglog.retention)
        await self._store.expire_batches(now - self._pinglog.retention)
        await self._store.expire_minutes(now - HISTORY_RETENTION)
        await self.save_readers()

    async def save_readers(self) -> None:
        changed = np.flatnonzero(self._reader_last_ms != self._saved_last)
        if changed.size == 0:
            return
        latest = self._reader_last_ms[changed].copy()
        await self._store.save_reader_pings(
            [
                (int(self._reader_no[i]), datetime.fromtimestamp(int(ms) / 1000, UTC))
                for i, ms in zip(changed.tolist(), latest.tolist(), strict=True)
            ]
        )
        self._saved_last[changed] = latest

    async def purge(self, budget_s: float = 1.0) -> int:
        """Delete unlinked pings for about `budget_s` seconds; returns rows deleted."""
        deleted = 0
        spent = 0.0
        while spent < budget_s:
            pending = await self._store.pending_purges()
            if not pending:
                break
            start = min(next_at for _, next_at, _ in pending)
            end = start + self._slice
            tracks = [t for t, next_at, until in pending if next_at <= start < until]
            rows, seconds = await self._store.purge_chunk(tracks, start, end)
            deleted += rows
            spent += seconds
            # Keep each statement short whatever the log's density.
            if seconds > 2 * PURGE_TARGET_S:
                self._slice = max(PURGE_MIN_SLICE, self._slice / 2)
            elif seconds < PURGE_TARGET_S / 2:
                self._slice = min(PURGE_MAX_SLICE, self._slice * 2)
            await asyncio.sleep(seconds)  # at most half the time spent purging
        return deleted

    async def run_purger(self) -> None:
        while True:
            try:
                await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("ping purge failed; retrying", exc_info=True)
            await asyncio.sleep(ROUND_SECONDS)
