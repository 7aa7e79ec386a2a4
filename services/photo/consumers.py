"""What photo follows of other services' streams.

- access: allowed boarding taps at the rides with a camera (the linker's
  evidence), kept in `boarding_taps` and handed to the linker;
- identity: parties, photo-linking consent and erasure, kept in `guests`.

Both store their cursor in the same transaction as their effect (TableCursor),
and both handle an event twice safely.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import asyncpg

from services.photo.catalog import Catalog
from services.photo.linker import Linker
from services.photo.linking import Tap
from services.photo.store import PhotoStore
from services.platform.events import StreamConsumer, TableCursor
from services.platform.server import Runtime
from venue.access.v1 import access_pb2, access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2, identity_pb2_grpc

ACCESS_CONSUMER = "access-boarding-taps"
IDENTITY_CONSUMER = "identity-guests"


def boarding_tap(event: access_pb2.TapRecorded, catalog: Catalog) -> tuple[str, Tap] | None:
    """(access point, tap) for a boarding tap photo links by; None for the rest."""
    if event.access_point_kind != access_pb2.ACCESS_POINT_KIND_RIDE_BOARDING:
        return None
    if event.access_point_id not in catalog.boarding_points:
        return None
    if not event.tap_id or not event.guest_id or not event.party_id:
        return None
    at = event.tapped_at.ToDatetime(tzinfo=UTC)
    return event.access_point_id, Tap(event.tap_id, event.guest_id, event.party_id, at.timestamp())


async def on_tap(
    event: access_pb2.TapRecorded,
    conn: asyncpg.Connection,
    store: PhotoStore,
    linker: Linker,
    catalog: Catalog,
) -> bool:
    found = boarding_tap(event, catalog)
    if found is None:
        return False
    point, tap = found
    kept = await store.record_tap(
        conn,
        tap.tap_id,
        point,
        tap.guest_id,
        tap.party_id,
        event.tapped_at.ToDatetime(tzinfo=UTC),
    )
    if kept:
        linker.tap(point, tap)
    return kept


async def on_identity(
    event: identity_pb2.WatchIdentityEventsResponse,
    conn: asyncpg.Connection,
    store: PhotoStore,
    linker: Linker,
) -> None:
    which = event.WhichOneof("event")
    if which == "guest_created":
        created = event.guest_created
        await store.upsert_guest(
            conn, created.guest_id, created.party_id, created.consent.photo_linking
        )
    elif which == "guest_updated":
        await store.upsert_guest(
            conn, event.guest_updated.guest_id, event.guest_updated.party_id, None
        )
    elif which == "consent_changed":
        changed = event.consent_changed
        await store.upsert_guest(conn, changed.guest_id, None, changed.consent.photo_linking)
    elif which == "party_changed":
        await store.party_changed(
            conn, event.party_changed.party_id, list(event.party_changed.member_guest_ids)
        )
    elif which == "guest_erased":
        await store.erase_guest(conn, event.guest_erased.guest_id)
        linker.forget_guest(event.guest_erased.guest_id)


def access_consumer(
    runtime: Runtime, store: PhotoStore, linker: Linker, catalog: Catalog
) -> StreamConsumer[Any]:
    stub = access_pb2_grpc.AccessServiceStub(runtime.clients.channel("access"))

    def open_stream(cursor: str) -> AsyncIterator[access_pb2.WatchAccessEventsResponse]:
        request = access_pb2.WatchAccessEventsRequest(
            start=common_pb2.StreamCursor(cursor=cursor),
            kinds=[access_pb2.ACCESS_EVENT_KIND_TAP_RECORDED],
            attraction_ids=catalog.linked_attractions,
        )
        return stub.WatchAccessEvents(request).__aiter__()

    async def handle(
        event: access_pb2.WatchAccessEventsResponse, conn: asyncpg.Connection | None
    ) -> None:
        assert conn is not None
        if event.WhichOneof("event") == "tap_recorded":
            await on_tap(event.tap_recorded, conn, store, linker, catalog)

    return StreamConsumer(
        ACCESS_CONSUMER,
        open_stream,
        handle,
        lambda e: e.cursor,
        TableCursor(runtime.pool, ACCESS_CONSUMER),
        runtime.pool,
        clock=runtime.settings.clock,
    )


def identity_consumer(runtime: Runtime, store: PhotoStore, linker: Linker) -> StreamConsumer[Any]:
    stub = identity_pb2_grpc.IdentityServiceStub(runtime.clients.channel("identity"))

    def open_stream(cursor: str) -> AsyncIterator[identity_pb2.WatchIdentityEventsResponse]:
        request = identity_pb2.WatchIdentityEventsRequest(
            start=common_pb2.StreamCursor(cursor=cursor)
        )
        return stub.WatchIdentityEvents(request).__aiter__()

    async def handle(
        event: identity_pb2.WatchIdentityEventsResponse, conn: asyncpg.Connection | None
    ) -> None:
        assert conn is not None
        await on_identity(event, conn, store, linker)

    return StreamConsumer(
        IDENTITY_CONSUMER,
        open_stream,
        handle,
        lambda e: e.cursor,
        TableCursor(runtime.pool, IDENTITY_CONSUMER),
        runtime.pool,
        clock=runtime.settings.clock,
    )
