"""The ping log's hourly partitions: created ahead of need, dropped after the
venue's ping retention."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from services.location.store import LocationStore, partition_for

log = logging.getLogger("venue.location.pinglog")

# Hours of partitions kept ready beyond "now".
AHEAD_HOURS = 3
# A partition is dropped one hour after its rows passed the retention, so that a
# batch checked just before the boundary still finds its partition.
DROP_MARGIN = timedelta(hours=1)


class PingLog:
    def __init__(self, store: LocationStore, retention: timedelta) -> None:
        self._store = store
        self.retention = retention
        self._known: set[datetime] = set()
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        self._known = {p.lower for p in await self._store.partitions()}

    def covers(self, oldest: datetime, newest: datetime) -> bool:
        lower = partition_for(oldest).lower
        while lower <= newest:
            if lower not in self._known:
                return False
            lower += timedelta(hours=1)
        return True

    async def ensure(self, oldest: datetime, newest: datetime) -> None:
        """Every partition rows observed in [oldest, newest] go to exists."""
        if self.covers(oldest, newest):
            return
        async with self._lock:
            lower = partition_for(oldest).lower
            while lower <= newest:
                if lower not in self._known:
                    part = partition_for(lower)
                    await self._store.create_partition(part)
                    self._known.add(lower)
                    log.info("ping partition created", extra={"partition": part.name})
                lower += timedelta(hours=1)

    async def maintain(self, now: datetime) -> list[str]:
        """Create the partitions of the next hours; drop those past retention.
        Returns the names dropped."""
        await self.ensure(now - timedelta(hours=1), now + timedelta(hours=AHEAD_HOURS))
        cutoff = now - self.retention - DROP_MARGIN
        dropped: list[str] = []
        async with self._lock:
            for part in await self._store.partitions():
                if part.upper <= cutoff:
                    self._known.discard(part.lower)
                    await self._store.drop_partition(part)
                    dropped.append(part.name)
                    log.info("ping partition dropped", extra={"partition": part.name})
        return dropped
