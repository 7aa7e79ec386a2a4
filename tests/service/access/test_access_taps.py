"""Tap over a real socket: every decision reason, idempotent retries under
concurrency, devices bound to their access point, bad input, and the events
queue and photo follow."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

from tests.service.access.conftest import (
    DAY,
    DOOR_LOCK,
    ENTRY,
    EXIT,
    GATE,
    RIDE_SCANNER,
    ROOM_101_DOOR,
    STAFF_DOOR,
    Access,
    at,
    key,
    new_uid,
    ts,
)
from tests.support.stubs import bearer, expect_error
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb

ALLOW, DENY = pb.TAP_DECISION_ALLOW, pb.TAP_DECISION_DENY
RT_RIDE = "river-expedition-cruise"
RT_MERGE = "ap.river-expedition-cruise.merge"
RT_BOARDING = "ap.river-expedition-cruise.boarding"
VQ_RIDE = "canopy-wings"
VQ_MERGE = "ap.canopy-wings.merge"
TALL_RIDE_STANDBY = "ap.thunder-canyon-mine-train.standby"  # 102 cm


def window(start_h: int, end_h: int) -> common_pb2.TimeRange:
    return common_pb2.TimeRange(start=ts(at(start_h)), end=ts(at(end_h)))


async def return_time(access: Access, guest_id: str, start_h: int = 14) -> pb.Entitlement:
    reply = await access.stub.CreateEntitlement(
        pb.CreateEntitlementRequest(
            guest_id=guest_id,
            return_time=pb.ReturnTime(
                attraction_id=RT_RIDE, window=window(start_h, start_h + 1), booking_id="bk-1"
            ),
        ),
        metadata=bearer(access.queue),
    )
    return reply.entitlement


async def test_gate_entry_exit_and_anti_passback(access: Access) -> None:
    ann = await access.member()
    assert (await access.tap(ENTRY, ann.band_uid, at(9))).deny_reason == (
        pb.DENY_REASON_NO_VALID_TICKET
    )
    assert (await access.tap(EXIT, ann.band_uid, at(9))).deny_reason == pb.DENY_REASON_NOT_INSIDE
    ticket = await access.ticket(ann, entries_per_day=2)
    first = await access.tap(ENTRY, ann.band_uid, at(9, 1))
    assert first.decision == ALLOW and first.entitlement_id == ticket.entitlement_id
    assert first.guest_id == ann.guest_id and first.display_message
    again = await access.tap(ENTRY, ann.band_uid, at(9, 2))
    assert again.deny_reason == pb.DENY_REASON_ALREADY_INSIDE
    assert (await access.tap(EXIT, ann.band_uid, at(12))).decision == ALLOW
    assert (await access.tap(ENTRY, ann.band_uid, at(13))).decision == ALLOW
    assert (await access.tap(EXIT, ann.band_uid, at(14))).decision == ALLOW
    third = await access.tap(ENTRY, ann.band_uid, at(15))
    assert third.deny_reason == pb.DENY_REASON_ENTRIES_EXHAUSTED
    got = await access.stub.GetEntitlement(
        pb.GetEntitlementRequest(entitlement_id=ticket.entitlement_id),
        metadata=bearer(ann.token),
    )
    assert got.entitlement.park_ticket.days_used == 1
    assert got.entitlement.status == pb.ENTITLEMENT_STATUS_USED


async def test_ticket_for_another_day(access: Access) -> None:
    ann = await access.member()
    await access.ticket(ann, DAY + timedelta(days=1))
    reply = await access.tap(ENTRY, ann.band_uid, at(10))
    assert reply.deny_reason == pb.DENY_REASON_NO_VALID_TICKET


async def test_unknown_band(access: Access) -> None:
    reply = await access.tap(RT_BOARDING, new_uid(), at(10))
    assert reply.decision == DENY and reply.deny_reason == pb.DENY_REASON_UNKNOWN_BAND
    assert reply.guest_id == "" and reply.tap_id


async def test_deactivated_band_is_refused_within_a_second(access: Access) -> None:
    ann = await access.member()
    await access.wait_in_map(ann.band_uid)
    assert (await access.tap(RT_BOARDING, ann.band_uid, at(10))).decision == ALLOW
    await access.identity.stub.DeactivateBand(
        ipb.DeactivateBandRequest(band_id=ann.band_id, reason=ipb.DEACTIVATION_REASON_LOST),
        metadata=bearer(ann.token),
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while True:
        reply = await access.tap(RT_BOARDING, ann.band_uid, at(10, 1))
        if reply.decision == DENY:
            break
        assert loop.time() < deadline, "a deactivated band was still allowed after a second"
    assert reply.deny_reason == pb.DENY_REASON_BAND_DEACTIVATED
    # And it cannot pay either.
    charge = await access.charge(ann.band_uid, 100)
    assert charge.decline_reason == pb.DECLINE_REASON_BAND_DEACTIVATED


async def test_taps_resolve_bands_from_memory_not_identity(access: Access) -> None:
    ann = await access.member()
    await access.wait_in_map(ann.band_uid)
    misses = access.parts.directory.misses
    for minute in range(5):
        assert (await access.tap(RT_BOARDING, ann.band_uid, at(10, minute))).decision == ALLOW
    assert access.parts.directory.misses == misses


async def test_band_linked_a_moment_ago_is_resolved_by_identity(access: Access) -> None:
    ann = await access.member()
    # No wait for the stream: an unknown UID in the map asks identity.
    assert (await access.tap(RT_BOARDING, ann.band_uid, at(10))).decision == ALLOW


async def test_return_time_windows_at_their_edges(access: Access) -> None:
    ann = await access.member()
    rt = await return_time(access, ann.guest_id, start_h=14)
    tick = timedelta(microseconds=1)
    early = await access.tap(RT_MERGE, ann.band_uid, at(13, 55) - tick)
    assert early.deny_reason == pb.DENY_REASON_OUTSIDE_RETURN_WINDOW
    assert early.return_window.start.ToDatetime() == at(14).replace(tzinfo=None)
    assert "13:55" in early.display_message
    late = await access.tap(RT_MERGE, ann.band_uid, at(15, 15))
    assert late.deny_reason == pb.DENY_REASON_OUTSIDE_RETURN_WINDOW
    first = await access.tap(RT_MERGE, ann.band_uid, at(13, 55))
    assert first.decision == ALLOW and first.entitlement_id == rt.entitlement_id
    assert first.entitlement_kind == pb.ENTITLEMENT_KIND_RETURN_TIME
    used = await access.tap(RT_MERGE, ann.band_uid, at(14, 30))
    assert used.deny_reason == pb.DENY_REASON_ALREADY_USED
    bob = await access.member("Bob")
    await return_time(access, bob.guest_id, start_h=14)
    last = await access.tap(RT_MERGE, bob.band_uid, at(15, 15) - tick)
    assert last.decision == ALLOW


async def test_no_return_time_and_revoked_ones(access: Access) -> None:
    ann = await access.member()
    assert (await access.tap(RT_MERGE, ann.band_uid, at(14))).deny_reason == (
        pb.DENY_REASON_NO_RETURN_TIME
    )
    rt = await return_time(access, ann.guest_id)
    await access.stub.RevokeEntitlement(
        pb.RevokeEntitlementRequest(
            entitlement_id=rt.entitlement_id, reason=pb.REVOCATION_REASON_CANCELLED
        ),
        metadata=bearer(access.queue),
    )
    reply = await access.tap(RT_MERGE, ann.band_uid, at(14, 10))
    assert reply.deny_reason == pb.DENY_REASON_NO_RETURN_TIME


async def test_virtual_queue_pass_until_and_after_the_group_is_called(access: Access) -> None:
    ann = await access.member(height_cm=150)
    created = await access.stub.CreateEntitlement(
        pb.CreateEntitlementRequest(
            guest_id=ann.guest_id,
            virtual_queue_pass=pb.VirtualQueuePass(
                attraction_id=VQ_RIDE, booking_id="vq-1", boarding_group=12
            ),
        ),
        metadata=bearer(access.queue),
    )
    waiting = await access.tap(VQ_MERGE, ann.band_uid, at(11))
    assert waiting.deny_reason == pb.DENY_REASON_VIRTUAL_QUEUE_NOT_CALLED
    await access.stub.UpdateEntitlement(
        pb.UpdateEntitlementRequest(
            entitlement_id=created.entitlement.entitlement_id, window=window(12, 13)
        ),
        metadata=bearer(access.queue),
    )
    called = await access.tap(VQ_MERGE, ann.band_uid, at(12, 5))
    assert called.decision == ALLOW
    assert called.entitlement_kind == pb.ENTITLEMENT_KIND_VIRTUAL_QUEUE


async def test_height_rule(access: Access) -> None:
    ann = await access.member(height_cm=150)
    kid = await access.child(ann, height_cm=95)
    assert (await access.tap(TALL_RIDE_STANDBY, ann.band_uid, at(10))).decision == ALLOW
    short = await access.tap(TALL_RIDE_STANDBY, kid.band_uid, at(10))
    assert short.deny_reason == pb.DENY_REASON_HEIGHT_REQUIREMENT_NOT_MET
    unmeasured = await access.child(ann)
    check = await access.tap(TALL_RIDE_STANDBY, unmeasured.band_uid, at(10))
    assert check.deny_reason == pb.DENY_REASON_HEIGHT_REQUIREMENT_NOT_MET


async def test_closed_access_point(access: Access) -> None:
    point = "ap.savanna-safari-trek.boarding"
    ann = await access.member()
    closed = await access.stub.SetAccessPointState(
        pb.SetAccessPointStateRequest(
            access_point_id=point, state=pb.ACCESS_POINT_STATE_CLOSED, reason="ride down"
        ),
        metadata=bearer(access.ops),
    )
    assert closed.access_point.state == pb.ACCESS_POINT_STATE_CLOSED
    try:
        reply = await access.tap(point, ann.band_uid, at(10))
        assert reply.deny_reason == pb.DENY_REASON_ACCESS_POINT_CLOSED
    finally:
        await access.stub.SetAccessPointState(
            pb.SetAccessPointStateRequest(access_point_id=point, state=pb.ACCESS_POINT_STATE_OPEN),
            metadata=bearer(access.ops),
        )
    assert (await access.tap(point, ann.band_uid, at(10, 1))).decision == ALLOW


async def test_hotel_key_until_check_out(access: Access) -> None:
    ann = await access.member()
    check_in, check_out = at(15), at(15) + timedelta(days=2)
    await access.stub.CreateEntitlement(
        pb.CreateEntitlementRequest(
            guest_id=ann.guest_id,
            hotel_room_key=pb.HotelRoomKey(
                hotel_id="lantern-bay-lodge",
                room_id="room-101",
                stay=common_pb2.TimeRange(start=ts(check_in), end=ts(check_out)),
            ),
        ),
        metadata=bearer(access.desk),
    )
    assert (await access.tap(ROOM_101_DOOR, ann.band_uid, check_in)).decision == ALLOW
    before = await access.tap(ROOM_101_DOOR, ann.band_uid, check_out - timedelta(microseconds=1))
    assert before.decision == ALLOW
    at_check_out = await access.tap(ROOM_101_DOOR, ann.band_uid, check_out)
    assert at_check_out.deny_reason == pb.DENY_REASON_NO_VALID_ROOM_KEY
    other = await access.tap("ap.room.102", ann.band_uid, check_in)
    assert other.deny_reason == pb.DENY_REASON_NO_VALID_ROOM_KEY


async def test_staff_door(access: Access) -> None:
    ann = await access.member()
    assert (await access.tap(STAFF_DOOR, ann.band_uid, at(8))).deny_reason == (
        pb.DENY_REASON_STAFF_ONLY
    )
    await access.stub.CreateEntitlement(
        pb.CreateEntitlementRequest(
            guest_id=ann.guest_id,
            staff_access=pb.StaffAccess(valid=window(7, 19), access_point_ids=[STAFF_DOOR]),
        ),
        metadata=bearer(access.admin),
    )
    assert (await access.tap(STAFF_DOOR, ann.band_uid, at(8))).decision == ALLOW
    assert (await access.tap(STAFF_DOOR, ann.band_uid, at(19))).decision == DENY


async def test_concurrent_retries_decide_once(access: Access) -> None:
    ann = await access.member()
    await access.ticket(ann)
    same = key()
    replies = await asyncio.gather(
        *(access.tap(ENTRY, ann.band_uid, at(10), idem=same) for _ in range(12))
    )
    assert {r.SerializeToString() for r in replies} == {replies[0].SerializeToString()}
    assert replies[0].decision == ALLOW
    assert await access.count("taps", "guest_id = $1", ann.guest_id) == 1
    recorded = await access.db.fetch(
        "SELECT payload FROM access.events WHERE kind = 'tap_recorded'"
    )
    mine = [
        r
        for r in recorded
        if pb.WatchAccessEventsResponse.FromString(r["payload"]).tap_recorded.guest_id
        == ann.guest_id
    ]
    assert len(mine) == 1
    # The guest is inside once: a new key at the gate is anti-passback.
    again = await access.tap(ENTRY, ann.band_uid, at(10, 1))
    assert again.deny_reason == pb.DENY_REASON_ALREADY_INSIDE


async def test_concurrent_gate_taps_with_different_keys_admit_once(access: Access) -> None:
    ann = await access.member()
    await access.ticket(ann)
    replies = await asyncio.gather(*(access.tap(ENTRY, ann.band_uid, at(10)) for _ in range(8)))
    assert sum(r.decision == ALLOW for r in replies) == 1
    assert {r.deny_reason for r in replies if r.decision == DENY} == {pb.DENY_REASON_ALREADY_INSIDE}


async def test_same_key_for_another_tap_is_refused(access: Access) -> None:
    ann = await access.member()
    same = key()
    await access.tap(RT_BOARDING, ann.band_uid, at(10), idem=same)
    await expect_error(
        access.tap(RT_BOARDING, ann.band_uid, at(11), idem=same),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_devices_tap_only_where_they_serve(access: Access) -> None:
    ann = await access.member()
    request = pb.TapRequest(
        access_point_id=ENTRY,
        band_uid=ann.band_uid,
        tapped_at=ts(at(10)),
        idempotency_key=key(),
    )
    # A gate bound to another lane.
    await expect_error(
        access.stub.Tap(request, metadata=await access.device(GATE, "ap.gate.in2")),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # A ride scanner bound to this gate's id is the wrong kind of device.
    await expect_error(
        access.stub.Tap(request, metadata=await access.device(RIDE_SCANNER, ENTRY)),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # Readers and tills may not tap at all; nor staff or guests.
    await expect_error(
        access.stub.Tap(
            request, metadata=await access.device(common_pb2.DEVICE_KIND_READER, ENTRY)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        access.stub.Tap(request, metadata=bearer(ann.token)), grpc.StatusCode.PERMISSION_DENIED
    )
    await expect_error(access.stub.Tap(request), grpc.StatusCode.UNAUTHENTICATED)
    assert await access.count("taps", "guest_id = $1", ann.guest_id) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"access_point_id": ""}, "access_point_id"),
        ({"access_point_id": "bad id!"}, "access_point_id"),
        ({"band_uid": ""}, "band_uid"),
        ({"band_uid": "x"}, "band_uid"),
        ({"band_uid": "bad uid with spaces"}, "band_uid"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "has space"}, "idempotency_key"),
        ({"tapped_at": None}, "tapped_at"),
    ],
)
async def test_tap_bad_input(access: Access, change: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "access_point_id": RT_BOARDING,
        "band_uid": new_uid(),
        "tapped_at": ts(at(10)),
        "idempotency_key": key(),
    }
    fields.update(change)
    if fields["tapped_at"] is None:
        del fields["tapped_at"]
    before = await access.count("taps")
    await expect_error(
        access.stub.Tap(
            pb.TapRequest(**fields),  # type: ignore[arg-type]
            metadata=await access.device(RIDE_SCANNER, RT_BOARDING),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field,
    )
    assert await access.count("taps") == before


async def test_unknown_access_point_is_not_found(access: Access) -> None:
    await expect_error(
        access.stub.Tap(
            pb.TapRequest(
                access_point_id="ap.nowhere",
                band_uid=new_uid(),
                tapped_at=ts(at(10)),
                idempotency_key=key(),
            ),
            metadata=await access.device(GATE, "ap.nowhere"),
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_allowed_taps_are_published_for_queue_and_photo(access: Access) -> None:
    ann = await access.member()
    await access.ticket(ann)
    stream = access.stub.WatchAccessEvents(
        pb.WatchAccessEventsRequest(
            start=common_pb2.StreamCursor(from_now=True),
            kinds=[pb.ACCESS_EVENT_KIND_TAP_RECORDED],
            attraction_ids=[RT_RIDE],
        ),
        metadata=bearer(access.queue),
    )
    await asyncio.sleep(0.2)
    await access.tap(ENTRY, ann.band_uid, at(10))  # a gate: filtered out by attraction
    await access.tap(RT_MERGE, ann.band_uid, at(10))  # denied: never published
    boarding = await access.tap(RT_BOARDING, ann.band_uid, at(10, 1))
    event = await asyncio.wait_for(stream.read(), 5)
    stream.cancel()
    assert isinstance(event, pb.WatchAccessEventsResponse)
    assert event.tap_recorded.tap_id == boarding.tap_id
    assert event.tap_recorded.access_point_kind == pb.ACCESS_POINT_KIND_RIDE_BOARDING
    assert event.tap_recorded.attraction_id == RT_RIDE
    assert event.tap_recorded.guest_id == ann.guest_id
    assert event.occurred_at.ToDatetime() == at(10, 1).replace(tzinfo=None)
    assert event.cursor


async def test_watch_is_for_services_and_ops(access: Access) -> None:
    ann = await access.member()
    stream = access.stub.WatchAccessEvents(
        pb.WatchAccessEventsRequest(), metadata=bearer(ann.token)
    )
    await expect_error(stream.read(), grpc.StatusCode.PERMISSION_DENIED)
    bad = access.stub.WatchAccessEvents(
        pb.WatchAccessEventsRequest(kinds=[99]),  # type: ignore[list-item]
        metadata=bearer(access.queue),
    )
    await expect_error(bad.read(), grpc.StatusCode.INVALID_ARGUMENT, "kinds[0]")
    cursor = access.stub.WatchAccessEvents(
        pb.WatchAccessEventsRequest(start=common_pb2.StreamCursor(cursor="nonsense")),
        metadata=bearer(access.queue),
    )
    await expect_error(cursor.read(), grpc.StatusCode.INVALID_ARGUMENT, "start.cursor")


async def test_door_lock_is_the_only_device_of_a_room(access: Access) -> None:
    ann = await access.member()
    request = pb.TapRequest(
        access_point_id=ROOM_101_DOOR,
        band_uid=ann.band_uid,
        tapped_at=ts(at(10)),
        idempotency_key=key(),
    )
    await expect_error(
        access.stub.Tap(request, metadata=await access.device(GATE, ROOM_101_DOOR)),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    reply = await access.stub.Tap(request, metadata=await access.device(DOOR_LOCK, ROOM_101_DOOR))
    assert reply.deny_reason == pb.DENY_REASON_NO_VALID_ROOM_KEY
