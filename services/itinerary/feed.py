"""Each guest's nudge feed, on the platform's event hub.

Feed events are rows of the itinerary's event table keyed by guest. A
subscription replays the guest's rows after its cursor from the table, then
follows live. Live events are routed by key as the hub reads them (one dict
lookup per event), so ten thousand open apps cost no more per event than one;
the hub's own fan-out would hand every event to every subscriber.

Hand-over without loss or repeat: the subscription registers for live events
first, notes the hub's tail, replays from the table up to that tail (every event
up to it is committed and visible), then takes live events past the last one it
replayed. A subscriber that stops reading is cut off (its app reconnects with
its cursor and loses nothing) rather than buffering without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

from services.itinerary.messages import FEED_KINDS
from services.platform import events
from services.platform.errors import Unavailable
from services.platform.events import Cursor, EventHub, StoredEvent

PAGE = 500
MAX_BACKLOG = 2000


class _Sub:
    __slots__ = ("overflow", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[StoredEvent] = asyncio.Queue()
        self.overflow = False


class Feeds:
    def __init__(self, hub: EventHub, pool: asyncpg.Pool) -> None:
        self._hub = hub
        self._pool = pool
        self._subs: dict[str, set[_Sub]] = {}
        hub.on_event(self._route)

    def _route(self, event: StoredEvent) -> None:
        if event.kind not in FEED_KINDS:
            return
        for sub in self._subs.get(event.key, ()):
            if sub.queue.qsize() >= MAX_BACKLOG:
                sub.overflow = True
            else:
                sub.queue.put_nowait(event)

    @property
    def guests_subscribed(self) -> int:
        return sum(1 for subs in self._subs.values() if subs)

    @property
    def subscriptions(self) -> int:
        return sum(len(subs) for subs in self._subs.values())

    async def follow(
        self, guest_id: str, after: Cursor | None, since: datetime | None
    ) -> AsyncIterator[StoredEvent]:
        """The guest's feed events after `after` (None: only new ones), those
        replayed from the table no older than `since`; then live, until the
        caller stops."""
        sub = _Sub()
        self._subs.setdefault(guest_id, set()).add(sub)
        try:
            upto = self._hub.tail
            pos = upto if after is None else after
            while pos < upto:
                rows = await events.read_after(
                    self._pool, pos, PAGE, FEED_KINDS, key=guest_id, upto=upto
                )
                for event in rows:
                    if since is None or event.occurred_at >= since:
                        yield event
                if len(rows) < PAGE:
                    break
                pos = rows[-1].cursor
            pos = max(pos, upto)
            while True:
                if sub.overflow:
                    raise Unavailable("feed fell behind; reconnect with your cursor")
                event = await sub.queue.get()
                if event.cursor <= pos:
                    continue
                pos = event.cursor
                yield event
        finally:
            subs = self._subs.get(guest_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[guest_id]
