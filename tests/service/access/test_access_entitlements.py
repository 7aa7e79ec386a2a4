"""Entitlements and access points over a real socket: who issues, moves,
revokes and reads what; a guest sees only their party's; bad input names its
field and writes nothing; identity's erasures and party moves are followed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

from services.platform import paging
from tests.service.access.conftest import DAY, ENTRY, GATE, Access, Member, at, key, ts
from tests.support.stubs import bearer, expect_error
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
RIDE = "river-expedition-cruise"


def window(start_h: int, end_h: int) -> common_pb2.TimeRange:
    return common_pb2.TimeRange(start=ts(at(start_h)), end=ts(at(end_h)))


def rt_request(member: Member, start_h: int = 14) -> pb.CreateEntitlementRequest:
    return pb.CreateEntitlementRequest(
        guest_id=member.guest_id,
        return_time=pb.ReturnTime(attraction_id=RIDE, window=window(start_h, start_h + 1)),
    )


async def test_issuers_by_kind(access: Access) -> None:
    ann = await access.member()
    ticket = await access.ticket(ann)
    assert ticket.kind == pb.ENTITLEMENT_KIND_PARK_TICKET
    assert ticket.status == pb.ENTITLEMENT_STATUS_ACTIVE and ticket.party_id == ann.party_id
    assert ticket.park_ticket.valid_dates[0].day == DAY.day
    # The desk does not book return times; the queue service does not sell tickets.
    await expect_error(
        access.stub.CreateEntitlement(rt_request(ann), metadata=bearer(access.desk)), DENIED
    )
    ticket_request = pb.CreateEntitlementRequest(
        guest_id=ann.guest_id,
        park_ticket=pb.ParkTicket(valid_dates=[common_pb2.VenueDate(year=2031, month=7, day=4)]),
    )
    await expect_error(
        access.stub.CreateEntitlement(ticket_request, metadata=bearer(access.queue)), DENIED
    )
    for token in (ann.token, access.ops, access.photo):
        await expect_error(
            access.stub.CreateEntitlement(rt_request(ann), metadata=bearer(token)), DENIED
        )
    staff = pb.CreateEntitlementRequest(
        guest_id=ann.guest_id, staff_access=pb.StaffAccess(valid=window(7, 19))
    )
    await expect_error(access.stub.CreateEntitlement(staff, metadata=bearer(access.desk)), DENIED)
    made = await access.stub.CreateEntitlement(staff, metadata=bearer(access.admin))
    assert made.entitlement.kind == pb.ENTITLEMENT_KIND_STAFF_ACCESS


async def test_create_is_idempotent_with_a_key(access: Access) -> None:
    ann = await access.member()
    request = rt_request(ann)
    request.idempotency_key = key()
    replies = await asyncio.gather(
        *(access.stub.CreateEntitlement(request, metadata=bearer(access.queue)) for _ in range(5))
    )
    assert len({r.entitlement.entitlement_id for r in replies}) == 1
    assert await access.count("entitlements", "guest_id = $1", ann.guest_id) == 1


async def test_list_and_get_for_the_guests_own_party(access: Access) -> None:
    ann = await access.member()
    bob = await access.member("Bob")
    ticket = await access.ticket(ann)
    rt = (
        await access.stub.CreateEntitlement(rt_request(ann), metadata=bearer(access.queue))
    ).entitlement
    mine = await access.stub.ListEntitlements(
        pb.ListEntitlementsRequest(party_id=ann.party_id), metadata=bearer(ann.token)
    )
    assert [e.entitlement_id for e in mine.entitlements] == [
        ticket.entitlement_id,
        rt.entitlement_id,
    ]
    only_rt = await access.stub.ListEntitlements(
        pb.ListEntitlementsRequest(guest_id=ann.guest_id, kinds=[pb.ENTITLEMENT_KIND_RETURN_TIME]),
        metadata=bearer(access.queue),
    )
    assert [e.entitlement_id for e in only_rt.entitlements] == [rt.entitlement_id]
    page = await access.stub.ListEntitlements(
        pb.ListEntitlementsRequest(party_id=ann.party_id, page=common_pb2.PageRequest(page_size=1)),
        metadata=bearer(ann.token),
    )
    assert len(page.entitlements) == 1 and page.next_page_token
    second = await access.stub.ListEntitlements(
        pb.ListEntitlementsRequest(
            party_id=ann.party_id,
            page=common_pb2.PageRequest(page_size=1, page_token=page.next_page_token),
        ),
        metadata=bearer(ann.token),
    )
    assert second.entitlements[0].entitlement_id == rt.entitlement_id
    for call in (
        access.stub.ListEntitlements(
            pb.ListEntitlementsRequest(party_id=ann.party_id), metadata=bearer(bob.token)
        ),
        access.stub.ListEntitlements(
            pb.ListEntitlementsRequest(guest_id=ann.guest_id), metadata=bearer(bob.token)
        ),
        access.stub.GetEntitlement(
            pb.GetEntitlementRequest(entitlement_id=ticket.entitlement_id),
            metadata=bearer(bob.token),
        ),
    ):
        await expect_error(call, DENIED)


async def test_update_and_revoke(access: Access) -> None:
    ann = await access.member()
    rt = (
        await access.stub.CreateEntitlement(rt_request(ann), metadata=bearer(access.queue))
    ).entitlement
    moved = await access.stub.UpdateEntitlement(
        pb.UpdateEntitlementRequest(entitlement_id=rt.entitlement_id, window=window(16, 17)),
        metadata=bearer(access.queue),
    )
    assert moved.entitlement.return_time.window.start.ToDatetime() == at(16).replace(tzinfo=None)
    ticket = await access.ticket(ann)
    await expect_error(
        access.stub.UpdateEntitlement(
            pb.UpdateEntitlementRequest(
                entitlement_id=ticket.entitlement_id, window=window(16, 17)
            ),
            metadata=bearer(access.admin),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    # The queue service cancels its bookings, not tickets.
    await expect_error(
        access.stub.RevokeEntitlement(
            pb.RevokeEntitlementRequest(
                entitlement_id=ticket.entitlement_id, reason=pb.REVOCATION_REASON_CANCELLED
            ),
            metadata=bearer(access.queue),
        ),
        DENIED,
    )
    revoked = await access.stub.RevokeEntitlement(
        pb.RevokeEntitlementRequest(
            entitlement_id=ticket.entitlement_id, reason=pb.REVOCATION_REASON_REFUNDED
        ),
        metadata=bearer(access.desk),
    )
    assert revoked.entitlement.status == pb.ENTITLEMENT_STATUS_REVOKED
    again = await access.stub.RevokeEntitlement(
        pb.RevokeEntitlementRequest(
            entitlement_id=ticket.entitlement_id, reason=pb.REVOCATION_REASON_STAFF
        ),
        metadata=bearer(access.desk),
    )
    assert again.entitlement.revocation_reason == pb.REVOCATION_REASON_REFUNDED
    assert (await access.tap(ENTRY, ann.band_uid, at(10))).deny_reason == (
        pb.DENY_REASON_NO_VALID_TICKET
    )
    await expect_error(
        access.stub.UpdateEntitlement(
            pb.UpdateEntitlementRequest(entitlement_id=ticket.entitlement_id, window=window(1, 2)),
            metadata=bearer(access.admin),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    listed = await access.stub.ListEntitlements(
        pb.ListEntitlementsRequest(guest_id=ann.guest_id), metadata=bearer(ann.token)
    )
    assert [e.entitlement_id for e in listed.entitlements] == [rt.entitlement_id]
    everything = await access.stub.ListEntitlements(
        pb.ListEntitlementsRequest(guest_id=ann.guest_id, include_inactive=True),
        metadata=bearer(ann.token),
    )
    assert len(everything.entitlements) == 2


async def test_expired_entitlements_show_as_expired(access: Access) -> None:
    ann = await access.member()
    past = pb.CreateEntitlementRequest(
        guest_id=ann.guest_id,
        return_time=pb.ReturnTime(
            attraction_id=RIDE,
            window=common_pb2.TimeRange(
                start=ts(at(10) - timedelta(days=2000)), end=ts(at(11) - timedelta(days=2000))
            ),
        ),
    )
    made = await access.stub.CreateEntitlement(past, metadata=bearer(access.queue))
    assert made.entitlement.status == pb.ENTITLEMENT_STATUS_EXPIRED
    listed = await access.stub.ListEntitlements(
        pb.ListEntitlementsRequest(guest_id=ann.guest_id), metadata=bearer(ann.token)
    )
    assert not listed.entitlements


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ({}, "details"),
        ({"park_ticket": pb.ParkTicket()}, "park_ticket.valid_dates"),
        (
            {
                "park_ticket": pb.ParkTicket(
                    valid_dates=[common_pb2.VenueDate(year=2031, month=2, day=30)]
                )
            },
            "park_ticket.valid_dates[0]",
        ),
        (
            {
                "park_ticket": pb.ParkTicket(
                    valid_dates=[common_pb2.VenueDate(year=2031, month=2, day=3)], days_allowed=2
                )
            },
            "park_ticket.days_allowed",
        ),
        (
            {
                "park_ticket": pb.ParkTicket(
                    park_id="other-park",
                    valid_dates=[common_pb2.VenueDate(year=2031, month=2, day=3)],
                )
            },
            "park_ticket.park_id",
        ),
        (
            {
                "park_ticket": pb.ParkTicket(
                    valid_dates=[common_pb2.VenueDate(year=2031, month=2, day=3)], days_used=1
                )
            },
            "park_ticket.days_used",
        ),
        (
            {"hotel_room_key": pb.HotelRoomKey(hotel_id="nope", room_id="room-101")},
            "hotel_room_key.hotel_id",
        ),
        (
            {"hotel_room_key": pb.HotelRoomKey(hotel_id="lantern-bay-lodge", room_id="room-999")},
            "hotel_room_key.room_id",
        ),
        (
            {"hotel_room_key": pb.HotelRoomKey(hotel_id="lantern-bay-lodge", room_id="room-101")},
            "hotel_room_key.stay",
        ),
        ({"staff_access": pb.StaffAccess(valid=window(8, 7))}, "staff_access.valid.end"),
        (
            {"staff_access": pb.StaffAccess(valid=window(7, 8), access_point_ids=["ap.none"])},
            "staff_access.access_point_ids[0]",
        ),
    ],
)
async def test_create_by_desk_or_admin_bad_input(
    access: Access, details: dict[str, object], field: str
) -> None:
    ann = await access.member()
    before = await access.count("entitlements")
    await expect_error(
        access.stub.CreateEntitlement(
            pb.CreateEntitlementRequest(guest_id=ann.guest_id, **details),  # type: ignore[arg-type]
            metadata=bearer(access.admin),
        ),
        INVALID,
        field,
    )
    assert await access.count("entitlements") == before


@pytest.mark.parametrize(
    ("details", "field"),
    [
        (
            {"return_time": pb.ReturnTime(attraction_id="nope", window=window(1, 2))},
            "return_time.attraction_id",
        ),
        (
            {"return_time": pb.ReturnTime(attraction_id="cedar-falls-rapids", window=window(1, 2))},
            "return_time.attraction_id",
        ),
        ({"return_time": pb.ReturnTime(attraction_id=RIDE)}, "return_time.window"),
        (
            {"return_time": pb.ReturnTime(attraction_id=RIDE, window=window(3, 2))},
            "return_time.window.end",
        ),
        (
            {"virtual_queue_pass": pb.VirtualQueuePass(attraction_id=RIDE)},
            "virtual_queue_pass.attraction_id",
        ),
        (
            {
                "virtual_queue_pass": pb.VirtualQueuePass(
                    attraction_id="canopy-wings", boarding_group=-1
                )
            },
            "virtual_queue_pass.boarding_group",
        ),
    ],
)
async def test_create_by_queue_bad_input(
    access: Access, details: dict[str, object], field: str
) -> None:
    ann = await access.member()
    before = await access.count("entitlements")
    await expect_error(
        access.stub.CreateEntitlement(
            pb.CreateEntitlementRequest(guest_id=ann.guest_id, **details),  # type: ignore[arg-type]
            metadata=bearer(access.queue),
        ),
        INVALID,
        field,
    )
    assert await access.count("entitlements") == before


async def test_entitlement_rpcs_bad_input(access: Access) -> None:
    ann = await access.member()
    q = bearer(access.queue)
    await expect_error(
        access.stub.CreateEntitlement(pb.CreateEntitlementRequest(guest_id="x"), metadata=q),
        INVALID,
        "guest_id",
    )
    unknown = rt_request(ann)
    unknown.guest_id = "00000000-0000-4000-8000-000000000000"
    await expect_error(
        access.stub.CreateEntitlement(unknown, metadata=q), grpc.StatusCode.NOT_FOUND
    )
    keyed = rt_request(ann)
    keyed.idempotency_key = "bad key"
    await expect_error(access.stub.CreateEntitlement(keyed, metadata=q), INVALID, "idempotency_key")
    await expect_error(
        access.stub.GetEntitlement(pb.GetEntitlementRequest(entitlement_id="1"), metadata=q),
        INVALID,
        "entitlement_id",
    )
    await expect_error(
        access.stub.ListEntitlements(pb.ListEntitlementsRequest(), metadata=q), INVALID, "guest_id"
    )
    await expect_error(
        access.stub.ListEntitlements(
            pb.ListEntitlementsRequest(
                guest_id=ann.guest_id,
                kinds=[0],  # type: ignore[list-item]
            ),
            metadata=q,
        ),
        INVALID,
        "kinds[0]",
    )
    await expect_error(
        access.stub.ListEntitlements(
            pb.ListEntitlementsRequest(
                guest_id=ann.guest_id, page=common_pb2.PageRequest(page_size=-1)
            ),
            metadata=q,
        ),
        INVALID,
        "page.page_size",
    )
    for token in (paging.encode("entitlements", ["x"]), paging.encode("bands", ["x", "y"])):
        await expect_error(
            access.stub.ListEntitlements(
                pb.ListEntitlementsRequest(
                    guest_id=ann.guest_id, page=common_pb2.PageRequest(page_token=token)
                ),
                metadata=q,
            ),
            INVALID,
            "page.page_token",
        )
    rt = (await access.stub.CreateEntitlement(rt_request(ann), metadata=q)).entitlement
    await expect_error(
        access.stub.UpdateEntitlement(
            pb.UpdateEntitlementRequest(entitlement_id=rt.entitlement_id), metadata=q
        ),
        INVALID,
        "window",
    )
    await expect_error(
        access.stub.RevokeEntitlement(
            pb.RevokeEntitlementRequest(entitlement_id=rt.entitlement_id), metadata=q
        ),
        INVALID,
        "reason",
    )
    await expect_error(
        access.stub.RevokeEntitlement(
            pb.RevokeEntitlementRequest(
                entitlement_id="00000000-0000-4000-8000-000000000000",
                reason=pb.REVOCATION_REASON_CANCELLED,
            ),
            metadata=q,
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    unchanged = await access.stub.GetEntitlement(
        pb.GetEntitlementRequest(entitlement_id=rt.entitlement_id), metadata=q
    )
    assert unchanged.entitlement == rt


async def test_access_points(access: Access) -> None:
    gate = await access.device(GATE, ENTRY)
    listed = await access.stub.ListAccessPoints(
        pb.ListAccessPointsRequest(kind=pb.ACCESS_POINT_KIND_PARK_ENTRY), metadata=gate
    )
    assert [p.access_point_id for p in listed.access_points] == [
        f"ap.gate.in{i}" for i in range(1, 7)
    ]
    assert all(p.park_id == "lantern-bay-park" for p in listed.access_points)
    ride = await access.stub.ListAccessPoints(
        pb.ListAccessPointsRequest(attraction_id=RIDE, page=common_pb2.PageRequest(page_size=2)),
        metadata=bearer(access.queue),
    )
    assert len(ride.access_points) == 2 and ride.next_page_token
    rest = await access.stub.ListAccessPoints(
        pb.ListAccessPointsRequest(
            attraction_id=RIDE, page=common_pb2.PageRequest(page_token=ride.next_page_token)
        ),
        metadata=bearer(access.queue),
    )
    kinds = {p.kind for p in (*ride.access_points, *rest.access_points)}
    assert pb.ACCESS_POINT_KIND_RIDE_RETURN_MERGE in kinds and not rest.next_page_token
    room = await access.stub.GetAccessPoint(
        pb.GetAccessPointRequest(access_point_id="ap.room.101"), metadata=gate
    )
    assert room.access_point.room_id == "room-101"
    assert room.access_point.hotel_id == "lantern-bay-lodge"
    await expect_error(
        access.stub.GetAccessPoint(pb.GetAccessPointRequest(access_point_id="ap.x"), metadata=gate),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        access.stub.GetAccessPoint(
            pb.GetAccessPointRequest(access_point_id="no spaces"), metadata=gate
        ),
        INVALID,
        "access_point_id",
    )
    await expect_error(
        access.stub.ListAccessPoints(pb.ListAccessPointsRequest(kind=42), metadata=gate),  # type: ignore[arg-type]
        INVALID,
        "kind",
    )
    for token in ("x", paging.encode("access_points", ["x"])):
        await expect_error(
            access.stub.ListAccessPoints(
                pb.ListAccessPointsRequest(page=common_pb2.PageRequest(page_token=token)),
                metadata=gate,
            ),
            INVALID,
            "page.page_token",
        )


async def test_setting_access_point_state(access: Access) -> None:
    point = "ap.galaxy-blasters.standby"
    request = pb.SetAccessPointStateRequest(
        access_point_id=point, state=pb.ACCESS_POINT_STATE_CLOSED
    )
    await expect_error(
        access.stub.SetAccessPointState(request, metadata=bearer(access.ops)), INVALID, "reason"
    )
    await expect_error(
        access.stub.SetAccessPointState(
            pb.SetAccessPointStateRequest(access_point_id=point), metadata=bearer(access.ops)
        ),
        INVALID,
        "state",
    )
    for token in (access.desk, access.queue):
        await expect_error(access.stub.SetAccessPointState(request, metadata=bearer(token)), DENIED)
    assert await access.count("access_point_states", "access_point_id = $1", point) == 0
    request.reason = "closing for the fireworks"
    closed = await access.stub.SetAccessPointState(request, metadata=bearer(access.ops))
    assert closed.access_point.closed_reason == "closing for the fireworks"
    opened = await access.stub.SetAccessPointState(
        pb.SetAccessPointStateRequest(access_point_id=point, state=pb.ACCESS_POINT_STATE_OPEN),
        metadata=bearer(access.ops),
    )
    assert opened.access_point.state == pb.ACCESS_POINT_STATE_OPEN
    assert opened.access_point.closed_reason == ""


async def test_erasure_revokes_what_the_guest_held(access: Access) -> None:
    ann = await access.member()
    kid = await access.child(ann, height_cm=130)
    ticket = await access.ticket(kid)
    await access.tap("ap.river-expedition-cruise.boarding", kid.band_uid, at(10))
    await access.identity.stub.EraseGuest(
        ipb.EraseGuestRequest(guest_id=kid.guest_id), metadata=bearer(ann.token)
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        got = await access.stub.GetEntitlement(
            pb.GetEntitlementRequest(entitlement_id=ticket.entitlement_id),
            metadata=bearer(access.desk),
        )
        if got.entitlement.status == pb.ENTITLEMENT_STATUS_REVOKED:
            break
        assert loop.time() < deadline, "erasure never reached access"
        await asyncio.sleep(0.05)
    assert got.entitlement.revocation_reason == pb.REVOCATION_REASON_GUEST_ERASED
    assert await access.count("taps", "guest_id = $1", kid.guest_id) == 0
    tap = await access.tap(ENTRY, kid.band_uid, at(11))
    assert tap.decision == pb.TAP_DECISION_DENY
