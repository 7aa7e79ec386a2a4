"""Following identity's event stream: the directory, and the privacy purges.

The directory is memory only, so the stream is read from its start at every
boot (MemoryCursor) and the service serves only once it has caught up.

A withdrawn location consent or an erasure also removes what the database
holds about the guest: their tracks (which unlinks their pings at once), their
trail, their moves in the event table; their pings are queued for the purger.
This runs once per event: the newest purged event's cursor is stored with the
purge, and replayed events up to it are skipped. It runs after the directory
has applied the event (so nothing new is decided under the old consent) and
with the write gate closed (so nothing decided before lands after).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import asyncpg

from services.location.directory import Directory
from services.location.gate import WriteGate
from services.location.publisher import Publisher
from services.location.store import LocationStore
from services.platform.clock import VenueClock
from services.platform.events import ORIGIN, Cursor, MemoryCursor, StreamConsumer
from venue.identity.v1 import identity_pb2 as ipb

log = logging.getLogger("venue.location.follower")

PRIVACY_CURSOR = "identity-privacy"

Event = ipb.WatchIdentityEventsResponse
Opener = Callable[[str], AsyncIterator[Event]]


def privacy_subject(event: Event) -> str:
    """The guest whose stored location data this event removes, or ''."""
    which = event.WhichOneof("event")
    if which == "guest_erased":
        return event.guest_erased.guest_id
    if which == "consent_changed" and not event.consent_changed.consent.location_tracking:
        return event.consent_changed.guest_id
    return ""


class IdentityFollower:
    def __init__(
        self,
        open_stream: Opener,
        directory: Directory,
        store: LocationStore,
        pool: asyncpg.Pool,
        gate: WriteGate,
        publisher: Publisher,
        clock: VenueClock,
        log_span: tuple[timedelta, timedelta],
    ) -> None:
        self._open = open_stream
        self._directory = directory
        self._store = store
        self._pool = pool
        self._gate = gate
        self._publisher = publisher
        self._clock = clock
        # How far back and ahead of now a guest's pings may lie in the log.
        self._log_back, self._log_ahead = log_span
        self._privacy_cursor = ORIGIN
        self.cursor = ORIGIN
        self.handled = 0
        self.purged = 0
        self._streaming = False
        self._opened_at = 0.0
        self._last_event_at = 0.0
        self._advanced = asyncio.Event()

    async def load(self) -> None:
        stored = await self._pool.fetchval(
            "SELECT cursor FROM stream_cursors WHERE consumer = $1", PRIVACY_CURSOR
        )
        self._privacy_cursor = Cursor.decode(stored or "")

    def consumer(self) -> StreamConsumer[Event]:
        return StreamConsumer(
            "location-identity", self._stream, self._handle, lambda e: e.cursor, MemoryCursor()
        )

    async def _stream(self, cursor: str) -> AsyncIterator[Event]:
        stream = self._open(cursor)
        self._opened_at = time.monotonic()
        self._streaming = True
        try:
            async for event in stream:
                yield event
        finally:
            self._streaming = False

    async def _handle(self, event: Event, _: asyncpg.Connection | None) -> None:
        self._directory.apply(event)
        cursor = Cursor.decode(event.cursor)
        subject = privacy_subject(event)
        if subject and cursor > self._privacy_cursor:
            await self._purge(subject, event.cursor)
            self._privacy_cursor = cursor
        self.cursor = cursor
        self.handled += 1
        self._last_event_at = time.monotonic()
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def _purge(self, guest_id: str, cursor: str) -> None:
        now: datetime = self._clock.now()
        async with self._gate.exclusive():
            self._publisher.forget(guest_id)
            async with self._pool.acquire() as conn, conn.transaction():
                tracks = await self._store.forget_guest(
                    conn, guest_id, now - self._log_back, now + self._log_ahead
                )
                await conn.execute(
                    "INSERT INTO stream_cursors (consumer, cursor) VALUES ($1, $2) "
                    "ON CONFLICT (consumer) DO UPDATE SET cursor = EXCLUDED.cursor, "
                    "updated_at = now()",
                    PRIVACY_CURSOR,
                    cursor,
                )
        self.purged += 1
        log.info("guest's location data removed", extra={"guest_id": guest_id, "tracks": tracks})

    async def caught_up(self, quiet: float = 0.5, timeout: float = 120.0) -> bool:
        """Wait until the stream is open and has been quiet for `quiet` seconds:
        the replay is over. False if that did not happen within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            since = max(self._opened_at, self._last_event_at)
            if self._streaming and time.monotonic() - since >= quiet:
                return True
            await asyncio.sleep(0.05)
        return False
