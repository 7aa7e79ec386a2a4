"""Zones, readers, occupancy and its history, and the event stream's filters:
answers, paging, bad input named by field, and who may ask."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.duration_pb2 import Duration

from tests.service.location.conftest import (
    QUEUE_READER_A,
    QUEUE_ZONE,
    VENUE_ID,
    Location,
    now_ms,
)
from tests.support.stubs import bearer, expect_error
from venue.common.v1 import common_pb2
from venue.location.v1 import location_pb2 as pb

LAND = "land.jungle-reach"


def page(size: int = 0, token: str = "") -> common_pb2.PageRequest:
    return common_pb2.PageRequest(page_size=size, page_token=token)


async def test_zones_page_through_the_venue_and_filter_by_kind(location: Location) -> None:
    guest = await location.guest()
    seen: list[pb.Zone] = []
    token = ""
    while True:
        reply = await location.stub.ListZones(
            pb.ListZonesRequest(page=page(40, token)), metadata=bearer(guest.token)
        )
        seen += reply.zones
        token = reply.next_page_token
        if not token:
            break
    ids = [z.zone_id for z in seen]
    assert len(ids) == len(set(ids)) == 118
    queue = next(z for z in seen if z.zone_id == QUEUE_ZONE)
    assert queue.kind == pb.ZONE_KIND_QUEUE
    assert queue.attraction_id == "river-expedition-cruise"
    assert queue.capacity > 0 and queue.parent_zone_id
    queues = await location.stub.ListZones(
        pb.ListZonesRequest(kind=pb.ZONE_KIND_QUEUE, page=page(500)), metadata=bearer(location.ops)
    )
    assert len(queues.zones) == 33
    assert all(z.kind == pb.ZONE_KIND_QUEUE for z in queues.zones)


async def test_readers_list_their_place_range_and_health(location: Location) -> None:
    guest = await location.guest()
    await location.ping_when_known([(guest.band_uid, QUEUE_READER_A, now_ms(), -50)])
    reply = await location.stub.ListReaders(
        pb.ListReadersRequest(zone_id="ride.river-expedition-cruise"),
        metadata=bearer(location.ops),
    )
    readers = {r.reader_id: r for r in reply.readers}
    assert QUEUE_READER_A in readers
    assert all(r.place.zone_id == QUEUE_ZONE for r in readers.values())
    reader = readers[QUEUE_READER_A]
    assert reader.range_m == 12.0
    assert reader.place.node_id == "n.river-expedition-cruise.q1"
    assert reader.last_ping_at.ToMilliseconds() > now_ms() - 60_000
    everything = await location.stub.ListReaders(
        pb.ListReadersRequest(page=page(500)), metadata=bearer(location.ops)
    )
    assert len(everything.readers) == 360


async def test_list_and_zone_requests_name_their_bad_fields(location: Location) -> None:
    ops = bearer(location.ops)
    stub = location.stub
    cases: list[tuple[Awaitable[object], str]] = [
        (stub.ListZones(pb.ListZonesRequest(kind=99), metadata=ops), "kind"),  # type: ignore[arg-type]
        (stub.ListZones(pb.ListZonesRequest(page=page(-1)), metadata=ops), "page.page_size"),
        (
            stub.ListZones(pb.ListZonesRequest(page=page(5, "junk")), metadata=ops),
            "page.page_token",
        ),
        (stub.ListReaders(pb.ListReadersRequest(zone_id="bad id!"), metadata=ops), "zone_id"),
        (stub.GetZoneOccupancy(pb.GetZoneOccupancyRequest(), metadata=ops), "zone_id"),
        (
            stub.ListZoneOccupancy(pb.ListZoneOccupancyRequest(kind=-3), metadata=ops),  # type: ignore[arg-type]
            "kind",
        ),
    ]
    for call, field in cases:
        await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT, field)
    # A token from one list is refused by another.
    zones = await stub.ListZones(pb.ListZonesRequest(page=page(2)), metadata=ops)
    await expect_error(
        stub.ListReaders(pb.ListReadersRequest(page=page(2, zones.next_page_token)), metadata=ops),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page.page_token",
    )
    for call in (
        stub.ListReaders(pb.ListReadersRequest(zone_id="no.such.zone"), metadata=ops),
        stub.GetZoneOccupancy(pb.GetZoneOccupancyRequest(zone_id="no.such.zone"), metadata=ops),
    ):
        await expect_error(call, grpc.StatusCode.NOT_FOUND)


async def test_occupancy_is_for_everyone_readers_for_ops(location: Location) -> None:
    guest = await location.guest()
    _, reader = await location.reader_device(VENUE_ID)
    for token in (guest.token, reader, await location.service_token("routing")):
        reply = await location.stub.GetZoneOccupancy(
            pb.GetZoneOccupancyRequest(zone_id=LAND), metadata=bearer(token)
        )
        assert reply.occupancy.zone_id == LAND
        assert reply.occupancy.capacity > 0
    listed = await location.stub.ListZoneOccupancy(
        pb.ListZoneOccupancyRequest(kind=pb.ZONE_KIND_LAND), metadata=bearer(guest.token)
    )
    assert LAND in {o.zone_id for o in listed.occupancies}
    await expect_error(
        location.stub.ListReaders(pb.ListReadersRequest(), metadata=bearer(guest.token)),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        location.stub.ListZones(pb.ListZonesRequest()), grpc.StatusCode.UNAUTHENTICATED
    )


async def test_a_zone_counts_its_nested_zones(location: Location) -> None:
    guest = await location.guest()
    land_before = await location.count(LAND)
    queue_before = await location.count(QUEUE_ZONE)
    await location.ping_when_known([(guest.band_uid, QUEUE_READER_A, now_ms(), -40)])
    await location.placed_in(guest.guest_id, QUEUE_ZONE)
    await asyncio.sleep(0.4)
    assert await location.count(QUEUE_ZONE) == queue_before + 1
    # The queue lies in the ride's zone, which lies in the land.
    assert await location.count(LAND) == land_before + 1
    reply = await location.stub.GetZoneOccupancy(
        pb.GetZoneOccupancyRequest(zone_id=QUEUE_ZONE), metadata=bearer(location.ops)
    )
    occupancy = reply.occupancy
    assert occupancy.density == occupancy.count / occupancy.capacity
    assert abs(occupancy.as_of.ToMilliseconds() - now_ms()) < 5000


async def test_occupancy_history_buckets_whole_minutes(location: Location) -> None:
    # Yesterday 10:00: inside the 90 days of history location keeps (its upkeep
    # deletes older minutes, and may run between the two pages).
    start = (datetime.now(UTC) - timedelta(days=1)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    rows = [("zone.history", start + timedelta(minutes=m), float(m), m * 2, 500) for m in range(12)]
    await location.db.executemany(
        "INSERT INTO occupancy_minutes (zone_id, minute, mean_count, max_count, capacity) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(LAND, *r[1:]) for r in rows],
    )
    request = pb.GetOccupancyHistoryRequest(
        zone_id=LAND,
        period=common_pb2.TimeRange(),
        bucket=Duration(seconds=300),
        page=page(2),
    )
    request.period.start.FromDatetime(start)
    request.period.end.FromDatetime(start + timedelta(hours=1))
    ops = bearer(location.ops)
    first = await location.stub.GetOccupancyHistory(request, metadata=ops)
    assert [(b.mean_count, b.max_count, b.capacity) for b in first.buckets] == [
        (2.0, 8, 500),
        (7.0, 18, 500),
    ]
    assert first.buckets[1].start.ToDatetime(tzinfo=UTC) == start + timedelta(minutes=5)
    request.page.page_token = first.next_page_token
    second = await location.stub.GetOccupancyHistory(request, metadata=ops)
    assert [(b.mean_count, b.max_count) for b in second.buckets] == [(10.5, 22)]
    assert second.next_page_token == ""
    queue = await location.service_token("queue")
    assert (await location.stub.GetOccupancyHistory(request, metadata=bearer(queue))).buckets


async def test_occupancy_history_names_its_bad_fields(location: Location) -> None:
    ops = bearer(location.ops)
    t0 = datetime(2026, 7, 4, 10, 0, tzinfo=UTC)

    def request(start: datetime | None, end: datetime | None, **extra: object) -> object:
        r = pb.GetOccupancyHistoryRequest(zone_id=LAND, **extra)  # type: ignore[arg-type]
        if start:
            r.period.start.FromDatetime(start)
        if end:
            r.period.end.FromDatetime(end)
        return r

    one_hour = t0 + timedelta(hours=1)
    cases = [
        (request(None, one_hour), "period.start"),
        (request(t0, None), "period.end"),
        (request(one_hour, t0), "period.end"),
        (request(t0, t0 + timedelta(days=40)), "period"),
        (request(t0, one_hour, bucket=Duration(seconds=90)), "bucket"),
        (request(t0, one_hour, bucket=Duration(seconds=30)), "bucket"),
        (request(t0, one_hour, bucket=Duration(seconds=60, nanos=5)), "bucket"),
        (request(t0, one_hour, bucket=Duration(seconds=2 * 86_400)), "bucket"),
    ]
    for r, field in cases:
        await expect_error(
            location.stub.GetOccupancyHistory(r, metadata=ops),  # type: ignore[arg-type]
            grpc.StatusCode.INVALID_ARGUMENT,
            field,
        )
    guest = await location.guest()
    await expect_error(
        location.stub.GetOccupancyHistory(request(t0, one_hour), metadata=bearer(guest.token)),  # type: ignore[arg-type]
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_the_event_stream_checks_its_filters_and_callers(location: Location) -> None:
    ops = bearer(location.ops)
    start = common_pb2.StreamCursor(from_now=True)

    async def first(request: pb.WatchLocationEventsRequest, metadata: object) -> None:
        async for _ in location.stub.WatchLocationEvents(request, metadata=metadata):  # type: ignore[arg-type]
            return

    cases = [
        (pb.WatchLocationEventsRequest(start=start, kinds=[0]), "kinds[0]"),  # type: ignore[list-item]
        (pb.WatchLocationEventsRequest(start=start, zone_ids=["bad id!"]), "zone_ids[0]"),
        (
            pb.WatchLocationEventsRequest(
                start=common_pb2.StreamCursor(cursor="junk", from_now=True)
            ),
            "start",
        ),
        (
            pb.WatchLocationEventsRequest(start=common_pb2.StreamCursor(cursor="junk")),
            "start.cursor",
        ),
    ]
    for request, field in cases:
        await expect_error(first(request, ops), grpc.StatusCode.INVALID_ARGUMENT, field)
    await expect_error(
        first(pb.WatchLocationEventsRequest(zone_ids=["no.such.zone"]), ops),
        grpc.StatusCode.NOT_FOUND,
    )
    guest = await location.guest()
    for token in (guest.token, await location.service_token("access")):
        await expect_error(
            first(pb.WatchLocationEventsRequest(start=start), bearer(token)),
            grpc.StatusCode.PERMISSION_DENIED,
        )


async def test_the_event_stream_replays_from_a_cursor_and_filters_by_kind(
    location: Location,
) -> None:
    guest = await location.guest()
    moves, task = location.watch(kinds=[pb.LOCATION_EVENT_KIND_GUEST_ZONE_CHANGED])
    await asyncio.sleep(0.3)
    await location.ping_when_known([(guest.band_uid, QUEUE_READER_A, now_ms(), -40)])

    async def moved() -> bool:
        return any(e.guest_zone_changed.guest_id == guest.guest_id for e in moves)

    await location.until(moved, what="the move")
    task.cancel()
    assert all(e.HasField("guest_zone_changed") for e in moves)
    move = next(e for e in moves if e.guest_zone_changed.guest_id == guest.guest_id)
    # Replaying from just before it gives it again, with the same cursor.
    cursor = moves[moves.index(move) - 1].cursor if moves.index(move) else ""
    call = location.stub.WatchLocationEvents(
        pb.WatchLocationEventsRequest(
            start=common_pb2.StreamCursor(cursor=cursor),
            kinds=[pb.LOCATION_EVENT_KIND_GUEST_ZONE_CHANGED],
        ),
        metadata=bearer(location.ops),
    )
    async for event in call:
        if event.cursor == move.cursor:
            assert event.guest_zone_changed == move.guest_zone_changed
            break
    call.cancel()
