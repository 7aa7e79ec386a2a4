"""Applies a stream's events concurrently across keys (parties), in order within
each key, and tells up to which event everything has been applied.

A consumer that applies one event at a time waits on every database round trip
in turn: a boarding group called for a hundred parties at once queues behind
itself for seconds. Events of different parties do not depend on each other,
so they run side by side (at most `width` at once, which also holds the stream
back when the service cannot keep up); events of one party run in arrival
order. The cursor saved for the stream is the watermark: the last event that
it and every event before it have been applied, so a restart replays what was
still in flight (handlers are idempotent) and loses nothing. An event that
still fails after a few retries is logged and passed over, where the serial
consumer would stall the whole stream behind it; but not while the failure is
the database or a service being down (a restart): passing over then would lose
every event of those seconds, so such an event is retried until it applies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
import grpc

from services.platform.events import CursorStore
from services.platform.interceptors import map_exception

log = logging.getLogger("venue.itinerary.lanes")

ATTEMPTS = 4
MAX_RETRY_S = 5.0


def _unavailable(err: Exception) -> bool:
    """The database or a service down: what a retry later fixes."""
    mapped = map_exception(err)
    return mapped is not None and mapped.code == grpc.StatusCode.UNAVAILABLE


class Lanes:
    def __init__(self, name: str, width: int = 8, retry_s: float = 0.2) -> None:
        self._name = name
        self._slots = asyncio.Semaphore(width)
        self._retry_s = retry_s
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._order: collections.deque[tuple[str, asyncio.Task[None]]] = collections.deque()
        self.watermark = ""
        self.failed = 0

    @property
    def in_flight(self) -> int:
        return len(self._order)

    async def submit(self, key: str, cursor: str, work: Callable[[], Awaitable[None]]) -> None:
        """Start `work` after the key's earlier events; returns once it has a
        slot (not when it is done)."""
        await self._slots.acquire()
        before = self._tails.get(key)
        task = asyncio.create_task(self._run(before, work), name=f"{self._name}-lane")
        self._tails[key] = task
        self._order.append((cursor, task))
        task.add_done_callback(lambda t: self._done(key, t))

    async def _run(
        self, before: asyncio.Task[None] | None, work: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            if before is not None:
                with contextlib.suppress(Exception):
                    await before
            attempt = waits = 0
            while True:
                try:
                    await work()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    if _unavailable(err):
                        # Not this event's fault: wait for the database to return.
                        await asyncio.sleep(min(self._retry_s * 2**waits, MAX_RETRY_S))
                        waits = min(waits + 1, 8)
                        continue
                    attempt += 1
                    if attempt == ATTEMPTS:
                        # Given up after a few retries (the event itself fails):
                        # the stream goes on rather than stalling every party
                        # behind one event.
                        self.failed += 1
                        log.warning(
                            "event not applied after retries",
                            extra={"consumer": self._name},
                            exc_info=True,
                        )
                        return
                    await asyncio.sleep(self._retry_s * 2 ** (attempt - 1))
        finally:
            self._slots.release()

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]
        while self._order and self._order[0][1].done():
            self.watermark = self._order.popleft()[0]

    async def drain(self) -> None:
        """Wait for everything submitted so far."""
        tasks = [t for _, t in self._order]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class WatermarkCursor:
    """The cursor store a lane consumer hands its StreamConsumer: it keeps the
    lanes' watermark rather than the newest event submitted."""

    def __init__(self, lanes: Lanes, store: CursorStore) -> None:
        self._lanes = lanes
        self._store = store

    async def load(self) -> str:
        return await self._store.load()

    async def save(self, cursor: str, conn: asyncpg.Connection | None = None) -> None:
        if self._lanes.watermark:
            await self._store.save(self._lanes.watermark)
