"""What the twin follows: access's taps and pass changes, location's queue-zone
counts (both with their cursor in queue's own table), and identity's parties
and erasures (in memory, replayed from the start at every boot).

Access and location events are handled in batches: whatever has arrived
while the previous batch was being stored goes into the next transaction, so
the twin keeps up with a whole park's taps at one commit per batch, while a
lone tap is still handled the moment it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.platform.clock import VenueClock
from services.platform.events import MemoryCursor, StreamConsumer, TableCursor
from services.queue.bookdesk import BookingDesk
from services.queue.live import LiveTwin
from services.queue.parties import PartyDirectory
from venue.access.v1 import access_pb2 as apb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.location.v1 import location_pb2 as lpb
from venue.location.v1 import location_pb2_grpc

E = TypeVar("E")
MAX_BATCH = 500
PASS_KINDS = frozenset({apb.ENTITLEMENT_KIND_RETURN_TIME, apb.ENTITLEMENT_KIND_VIRTUAL_QUEUE})


@dataclass
class Batch(Generic[E]):
    """Events that arrived together, handled in one transaction."""

    events: list[E]
    cursor: str
    occurred_at: Timestamp = field(default_factory=Timestamp)
    traceparent: str = ""


class _End:
    pass


async def batched(stream: AsyncIterator[E], max_size: int = MAX_BATCH) -> AsyncIterator[Batch[E]]:
    """Group a stream's events into batches of what is already there."""
    queue: asyncio.Queue[E | BaseException | _End] = asyncio.Queue(maxsize=4 * max_size)

    async def pump() -> None:
        try:
            async for event in stream:
                await queue.put(event)
            await queue.put(_End())
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # handed to the consumer, which reconnects
            await queue.put(err)

    reader = asyncio.create_task(pump(), name="stream-reader")
    try:
        while True:
            items = [await queue.get()]
            while len(items) < max_size and not queue.empty():
                items.append(queue.get_nowait())
            events: list[E] = []
            ended: BaseException | _End | None = None
            for item in items:
                if isinstance(item, (BaseException, _End)):
                    ended = item
                    break
                events.append(item)
            if events:
                last = events[-1]
                yield Batch(
                    events,
                    getattr(last, "cursor", ""),
                    getattr(last, "occurred_at", Timestamp()),
                    getattr(last, "traceparent", ""),
                )
            if isinstance(ended, BaseException):
                raise ended
            if ended is not None:
                return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


AccessHandler = Callable[
    [Batch[apb.WatchAccessEventsResponse], asyncpg.Connection | None], Awaitable[None]
]
LocationHandler = Callable[
    [Batch[lpb.WatchLocationEventsResponse], asyncpg.Connection | None], Awaitable[None]
]


def access_handler(live: LiveTwin, desk: BookingDesk) -> AccessHandler:
    """Taps into the twin (and the store), passes used or revoked into bookings."""

    async def handle(
        batch: Batch[apb.WatchAccessEventsResponse], conn: asyncpg.Connection | None
    ) -> None:
        assert conn is not None
        taps: list[apb.TapRecorded] = []
        revoked: list[str] = []
        for event in batch.events:
            which = event.WhichOneof("event")
            if which == "tap_recorded":
                taps.append(event.tap_recorded)
            elif which == "entitlement_changed":
                change = event.entitlement_changed
                if (
                    change.change == apb.ENTITLEMENT_CHANGE_REVOKED
                    and change.entitlement.kind in PASS_KINDS
                ):
                    revoked.append(change.entitlement.entitlement_id)
        events, used = await live.apply_taps(conn, taps)
        await desk.on_access(conn, used, revoked, live.now())
        await live.store.append_events(conn, events)

    return handle


def access_feed(
    channel: grpc.aio.Channel,
    pool: asyncpg.Pool,
    handle: AccessHandler,
    clock: VenueClock,
) -> StreamConsumer[Batch[apb.WatchAccessEventsResponse]]:
    stub: access_pb2_grpc.AccessServiceAsyncStub = access_pb2_grpc.AccessServiceStub(channel)

    def open_stream(cursor: str) -> AsyncIterator[Batch[apb.WatchAccessEventsResponse]]:
        request = apb.WatchAccessEventsRequest(
            start=common_pb2.StreamCursor(cursor=cursor),
            kinds=[apb.ACCESS_EVENT_KIND_TAP_RECORDED, apb.ACCESS_EVENT_KIND_ENTITLEMENT_CHANGED],
        )
        return batched(stub.WatchAccessEvents(request).__aiter__())

    return StreamConsumer(
        "queue-access",
        open_stream,
        handle,
        lambda b: b.cursor,
        TableCursor(pool, "access"),
        pool,
        clock,
    )


def location_handler(live: LiveTwin) -> LocationHandler:
    """Queue-zone counts into the twin (and the store)."""

    async def handle(
        batch: Batch[lpb.WatchLocationEventsResponse], conn: asyncpg.Connection | None
    ) -> None:
        assert conn is not None
        changes = [
            (event.occupancy_changed, event.occurred_at.ToNanoseconds() / 1e9)
            for event in batch.events
            if event.WhichOneof("event") == "occupancy_changed"
        ]
        events = await live.apply_occupancy(conn, changes)
        await live.store.append_events(conn, events)

    return handle


def location_feed(
    channel: grpc.aio.Channel,
    pool: asyncpg.Pool,
    zones: list[str],
    handle: LocationHandler,
    clock: VenueClock,
) -> StreamConsumer[Batch[lpb.WatchLocationEventsResponse]]:
    stub: location_pb2_grpc.LocationServiceAsyncStub = location_pb2_grpc.LocationServiceStub(
        channel
    )

    def open_stream(cursor: str) -> AsyncIterator[Batch[lpb.WatchLocationEventsResponse]]:
        # Counts are absolute: a fresh start needs only the ones from now on.
        request = lpb.WatchLocationEventsRequest(
            start=common_pb2.StreamCursor(cursor=cursor, from_now=not cursor),
            kinds=[lpb.LOCATION_EVENT_KIND_OCCUPANCY_CHANGED],
            zone_ids=zones,
        )
        return batched(stub.WatchLocationEvents(request).__aiter__())

    return StreamConsumer(
        "queue-location",
        open_stream,
        handle,
        lambda b: b.cursor,
        TableCursor(pool, "location"),
        pool,
        clock,
    )


def identity_feed(
    channel: grpc.aio.Channel,
    parties: PartyDirectory,
    desk: BookingDesk,
    clock: VenueClock,
) -> StreamConsumer[ipb.WatchIdentityEventsResponse]:
    stub: identity_pb2_grpc.IdentityServiceAsyncStub = identity_pb2_grpc.IdentityServiceStub(
        channel
    )

    def open_stream(cursor: str) -> AsyncIterator[ipb.WatchIdentityEventsResponse]:
        request = ipb.WatchIdentityEventsRequest(start=common_pb2.StreamCursor(cursor=cursor))
        return stub.WatchIdentityEvents(request).__aiter__()

    async def handle(event: ipb.WatchIdentityEventsResponse, _: asyncpg.Connection | None) -> None:
        erased = parties.apply(event)
        if erased is not None:
            # Safe to repeat at every boot: an erased guest has nothing left to erase.
            await desk.erase(erased, clock.now().timestamp())

    return StreamConsumer(
        "queue-identity", open_stream, handle, lambda e: e.cursor, MemoryCursor(), None, clock
    )
