"""SetUpParty over a real socket: a party's tickets, room key, top-up and PIN in
one idempotent step, with the same events as the single calls; only the desk may
call it; bad input names its field and writes nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc
import pytest

from tests.service.access.conftest import DAY, ENTRY, ROOM_101_DOOR, Access, Member, at, key, ts
from tests.support.stubs import bearer, expect_error
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
HOTEL = "lantern-bay-lodge"
ROOM = "room-101"


def ticket() -> pb.ParkTicket:
    return pb.ParkTicket(
        valid_dates=[common_pb2.VenueDate(year=DAY.year, month=DAY.month, day=DAY.day)],
        days_allowed=1,
    )


def stay() -> common_pb2.TimeRange:
    return common_pb2.TimeRange(
        start=ts(at(15) - timedelta(days=1)), end=ts(at(11) + timedelta(days=1))
    )


async def family(access: Access) -> tuple[Member, Member]:
    adult = await access.member()
    return adult, await access.child(adult)


def full_request(adult: Member, child: Member) -> pb.SetUpPartyRequest:
    return pb.SetUpPartyRequest(
        party_id=adult.party_id,
        ticket_guest_ids=[adult.guest_id, child.guest_id],
        park_ticket=ticket(),
        room_key_guest_id=adult.guest_id,
        hotel_room_key=pb.HotelRoomKey(hotel_id=HOTEL, room_id=ROOM, stay=stay()),
        top_up=common_pb2.Money(minor_units=20_000, currency="USD"),
        funding_source=pb.FUNDING_SOURCE_CARD,
        payment_reference="card-1",
        pin="4321",
        external_ref="order-1",
        idempotency_key=key(),
    )


async def events_for(access: Access, *guest_ids: str) -> int:
    return await access.count(
        "events", "kind = 'entitlement_changed' AND key = ANY($1::text[])", list(guest_ids)
    )


async def test_a_whole_party_set_up_in_one_step(access: Access) -> None:
    adult, child = await family(access)
    reply = await access.stub.SetUpParty(full_request(adult, child), metadata=bearer(access.desk))
    kinds = [e.kind for e in reply.entitlements]
    assert kinds == [
        pb.ENTITLEMENT_KIND_PARK_TICKET,
        pb.ENTITLEMENT_KIND_PARK_TICKET,
        pb.ENTITLEMENT_KIND_HOTEL_ROOM,
    ]
    assert [e.guest_id for e in reply.entitlements] == [
        adult.guest_id,
        child.guest_id,
        adult.guest_id,
    ]
    assert {e.party_id for e in reply.entitlements} == {adult.party_id}
    assert {e.external_ref for e in reply.entitlements} == {"order-1"}
    assert reply.wallet.balance.minor_units == 20_000 and reply.wallet.pin_set
    assert reply.top_up_entry_id
    # The same events as three CreateEntitlement calls: queue, photo and
    # itinerary follow tickets and keys on access's stream.
    assert await events_for(access, adult.guest_id, child.guest_id) == 3
    # What was set up works: both enter, the key opens the room, the PIN pays.
    await access.wait_in_map(child.band_uid)
    for member in (adult, child):
        tap = await access.tap(ENTRY, member.band_uid, at(10))
        assert tap.decision == pb.TAP_DECISION_ALLOW, tap.display_message
    door = await access.tap(ROOM_101_DOOR, adult.band_uid, at(19))
    assert door.decision == pb.TAP_DECISION_ALLOW, door.display_message
    paid = await access.charge(adult.band_uid, 6_000, pin="4321", when=at(12))
    assert paid.result == pb.CHARGE_RESULT_APPROVED, paid.decline_reason


async def test_a_retried_set_up_happens_once(access: Access) -> None:
    adult, child = await family(access)
    request = full_request(adult, child)
    replies = await asyncio.gather(
        *(access.stub.SetUpParty(request, metadata=bearer(access.desk)) for _ in range(4))
    )
    assert len({r.top_up_entry_id for r in replies}) == 1
    assert len({tuple(e.entitlement_id for e in r.entitlements) for r in replies}) == 1
    assert await access.count("entitlements", "party_id = $1", adult.party_id) == 3
    assert await events_for(access, adult.guest_id, child.guest_id) == 3
    wallet = await access.stub.GetWallet(
        pb.GetWalletRequest(party_id=adult.party_id), metadata=bearer(adult.token)
    )
    assert wallet.wallet.balance.minor_units == 20_000
    # The same key with another request is refused, not applied.
    other = full_request(adult, child)
    other.idempotency_key = request.idempotency_key
    other.top_up.minor_units = 1
    await expect_error(
        access.stub.SetUpParty(other, metadata=bearer(access.desk)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_parts_are_optional(access: Access) -> None:
    adult, _ = await family(access)
    only_money = pb.SetUpPartyRequest(
        party_id=adult.party_id,
        top_up=common_pb2.Money(minor_units=500, currency="USD"),
        funding_source=pb.FUNDING_SOURCE_CASH,
        idempotency_key=key(),
    )
    reply = await access.stub.SetUpParty(only_money, metadata=bearer(access.desk))
    assert not reply.entitlements and reply.wallet.balance.minor_units == 500
    assert not reply.wallet.pin_set
    assert await access.count("entitlements", "party_id = $1", adult.party_id) == 0


async def test_only_the_desk_sets_up_a_party(access: Access) -> None:
    adult, child = await family(access)
    for token in (adult.token, access.ops, access.admin, access.queue, access.photo):
        await expect_error(
            access.stub.SetUpParty(full_request(adult, child), metadata=bearer(token)), DENIED
        )
    gate = await access.device(common_pb2.DEVICE_KIND_GATE, ENTRY)
    await expect_error(access.stub.SetUpParty(full_request(adult, child), metadata=gate), DENIED)
    await expect_error(
        access.stub.SetUpParty(full_request(adult, child)), grpc.StatusCode.UNAUTHENTICATED
    )
    assert await access.count("entitlements", "party_id = $1", adult.party_id) == 0
    assert await access.count("wallets", "party_id = $1", adult.party_id) == 0


async def test_members_of_another_party_are_refused(access: Access) -> None:
    adult, child = await family(access)
    stranger = await access.member("Zed")
    request = full_request(adult, child)
    request.ticket_guest_ids[1] = stranger.guest_id
    await expect_error(
        access.stub.SetUpParty(request, metadata=bearer(access.desk)),
        INVALID,
        "ticket_guest_ids[1]",
    )
    request = full_request(adult, child)
    request.room_key_guest_id = stranger.guest_id
    await expect_error(
        access.stub.SetUpParty(request, metadata=bearer(access.desk)), INVALID, "room_key_guest_id"
    )
    request = full_request(adult, child)
    request.party_id = "6b1f0d5e-8a43-4c6e-9a55-1d2b3c4d5e6f"
    await expect_error(
        access.stub.SetUpParty(request, metadata=bearer(access.desk)), grpc.StatusCode.NOT_FOUND
    )
    for member in (adult, stranger):
        assert await access.count("entitlements", "party_id = $1", member.party_id) == 0
        assert await access.count("wallets", "party_id = $1", member.party_id) == 0


def _set(request: pb.SetUpPartyRequest, change: dict[str, Any]) -> None:
    for name, value in change.items():
        if name == "ticket_guest_ids":
            del request.ticket_guest_ids[:]
            request.ticket_guest_ids.extend(value)
        elif isinstance(value, str | int):
            setattr(request, name, value)
        elif value is None:
            request.ClearField(name)  # type: ignore[arg-type]
        else:
            getattr(request, name).CopyFrom(value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"party_id": ""}, "party_id"),
        ({"party_id": "not-a-uuid"}, "party_id"),
        ({"ticket_guest_ids": ["nope"]}, "ticket_guest_ids[0]"),
        ({"park_ticket": None}, "park_ticket"),
        ({"park_ticket": pb.ParkTicket()}, "park_ticket.valid_dates"),
        (
            {
                "park_ticket": pb.ParkTicket(
                    valid_dates=[common_pb2.VenueDate(year=2031, month=2, day=30)]
                )
            },
            "park_ticket.valid_dates[0]",
        ),
        ({"room_key_guest_id": ""}, "room_key_guest_id"),
        ({"hotel_room_key": None}, "hotel_room_key"),
        (
            {"hotel_room_key": pb.HotelRoomKey(hotel_id="nope", room_id=ROOM)},
            "hotel_room_key.hotel_id",
        ),
        ({"hotel_room_key": pb.HotelRoomKey(hotel_id=HOTEL, room_id=ROOM)}, "hotel_room_key.stay"),
        ({"top_up": common_pb2.Money(minor_units=100, currency="EUR")}, "top_up.currency"),
        ({"top_up": common_pb2.Money(minor_units=-5, currency="USD")}, "top_up.minor_units"),
        ({"funding_source": 0}, "funding_source"),
        ({"pin": "12"}, "pin"),
        ({"external_ref": "x" * 101}, "external_ref"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    access: Access, change: dict[str, Any], field: str
) -> None:
    adult, child = await family(access)
    request = full_request(adult, child)
    _set(request, change)
    await expect_error(
        access.stub.SetUpParty(request, metadata=bearer(access.desk)), INVALID, field
    )
    assert await access.count("entitlements", "party_id = $1", adult.party_id) == 0
    assert await access.count("wallets", "party_id = $1", adult.party_id) == 0
    assert await events_for(access, adult.guest_id, child.guest_id) == 0


async def test_a_repeated_guest_and_an_empty_set_up_are_refused(access: Access) -> None:
    adult, child = await family(access)
    request = full_request(adult, child)
    request.ticket_guest_ids[1] = adult.guest_id
    await expect_error(
        access.stub.SetUpParty(request, metadata=bearer(access.desk)),
        INVALID,
        "ticket_guest_ids[1]",
    )
    empty = pb.SetUpPartyRequest(party_id=adult.party_id, idempotency_key=key())
    await expect_error(access.stub.SetUpParty(empty, metadata=bearer(access.desk)), INVALID)
    assert await access.count("wallets", "party_id = $1", adult.party_id) == 0
