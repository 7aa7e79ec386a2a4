"""Access follows identity's stream twice:

- into the band map (memory, replayed from the start at every boot), which the
  hot paths read (see bands.py);
- into its own tables (a stored cursor, handled in the transaction that stores
  it): an erased guest's entitlements are revoked and their taps and presence
  forgotten; a guest who moved to another party takes their entitlements along.
  Both handlers are safe to run twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

import asyncpg

from services.access.bands import BandDirectory
from services.access.store import AccessStore
from services.platform.events import EventHub, MemoryCursor, StreamConsumer, TableCursor
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc

Event = ipb.WatchIdentityEventsResponse


def _request(cursor: str) -> ipb.WatchIdentityEventsRequest:
    return ipb.WatchIdentityEventsRequest(start=common_pb2.StreamCursor(cursor=cursor))


def band_map_feed(
    stub: identity_pb2_grpc.IdentityServiceAsyncStub, directory: BandDirectory
) -> StreamConsumer[Event]:
    async def open_stream(cursor: str) -> AsyncIterator[Event]:
        directory.stream_opened(resuming=bool(cursor))
        try:
            async for event in stub.WatchIdentityEvents(_request(cursor)):
                yield event
        finally:
            directory.stream_closed()

    async def handle(event: Event, _: asyncpg.Connection | None) -> None:
        directory.apply(event)

    return StreamConsumer(
        "access-band-map", open_stream, handle, lambda e: e.cursor, MemoryCursor()
    )


def identity_changes(
    stub: identity_pb2_grpc.IdentityServiceAsyncStub,
    store: AccessStore,
    pool: asyncpg.Pool,
    hub: EventHub,
    now: Callable[[], datetime],
) -> StreamConsumer[Event]:
    def open_stream(cursor: str) -> AsyncIterator[Event]:
        return stub.WatchIdentityEvents(_request(cursor)).__aiter__()

    async def handle(event: Event, conn: asyncpg.Connection | None) -> None:
        assert conn is not None
        which = event.WhichOneof("event")
        if which == "guest_erased":
            if await store.erase_guest(conn, event.guest_erased.guest_id, now()):
                hub.poke()
        elif which == "party_changed":
            change = event.party_changed
            await store.move_to_party(conn, change.party_id, list(change.member_guest_ids))

    return StreamConsumer(
        "access-identity-changes",
        open_stream,
        handle,
        lambda e: e.cursor,
        TableCursor(pool, "identity"),
        pool,
    )
