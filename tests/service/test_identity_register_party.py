"""RegisterParty: the ticket desk registers a family (founder, other adults,
children, their bands) in one all-or-nothing step."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from tests.service.conftest import DESK, GATE, OPS, READER, Identity
from tests.support.stubs import bearer, expect_error
from venue.identity.v1 import identity_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
ADULT, CHILD = pb.PARTY_ROLE_ADULT, pb.PARTY_ROLE_CHILD


def uid() -> str:
    return f"band-{uuid.uuid4().hex[:12]}"


def member(
    name: str, role: int = ADULT, band: str = "", **consent: bool
) -> pb.PartyMemberRegistration:
    return pb.PartyMemberRegistration(
        display_name=name,
        height_cm=120 if role == CHILD else 175,
        consent=pb.Consent(**consent),
        role=role,  # type: ignore[arg-type]
        band_uid=band,
    )


async def desk_token(identity: Identity) -> str:
    _, token = await identity.staff(DESK)
    return token


async def written(identity: Identity) -> tuple[int, int, int, int]:
    return (
        await identity.count("parties"),
        await identity.count("guests"),
        await identity.count("bands"),
        await identity.count("events"),
    )


async def test_desk_registers_a_family_with_its_bands(identity: Identity) -> None:
    desk = await desk_token(identity)
    bands = [uid(), uid(), uid()]
    request = pb.RegisterPartyRequest(
        members=[
            member("Ann", band=bands[0], location_tracking=True),
            member("Bob", band=bands[1]),
            member("Cy", CHILD, band=bands[2]),
            member("Di", CHILD),
        ],
        idempotency_key=f"party-{uuid.uuid4().hex}",
    )
    reply = await identity.stub.RegisterParty(request, metadata=bearer(desk))
    guests = reply.guests
    assert [g.display_name for g in guests] == ["Ann", "Bob", "Cy", "Di"]
    assert [g.role for g in guests] == [ADULT, ADULT, CHILD, CHILD]
    party_id = guests[0].party_id
    assert all(g.party_id == party_id for g in guests)
    assert guests[0].consent.location_tracking and not guests[1].consent.location_tracking
    assert [b.band_uid for b in reply.bands] == bands
    assert [b.guest_id for b in reply.bands] == [g.guest_id for g in guests[:3]]
    # The party lists its members in the desk's order, founder first.
    party = await identity.stub.GetParty(
        pb.GetPartyRequest(party_id=party_id), metadata=bearer(desk)
    )
    assert [m.guest_id for m in party.party.members] == [g.guest_id for g in guests]
    # Every band resolves at a scanner at once.
    _, gate = await identity.device(GATE)
    for band, guest in zip(bands, guests, strict=False):
        found = await identity.stub.ResolveBand(
            pb.ResolveBandRequest(band_uid=band), metadata=bearer(gate)
        )
        assert (found.guest_id, found.party_id, found.active) == (guest.guest_id, party_id, True)
    # The stream says what CreateGuest, AddChild and LinkBand would, with one
    # party_changed naming everyone.
    rows = await identity.db.fetch(
        "SELECT kind, key FROM identity.events WHERE key = ANY($1::text[]) ORDER BY seq",
        [party_id, *(g.guest_id for g in guests)],
    )
    kinds = [r["kind"] for r in rows]
    assert kinds == ["guest_created"] * 4 + ["party_changed"] + ["band_linked"] * 3
    changed = await identity.db.fetchval(
        "SELECT payload FROM identity.events WHERE kind = 'party_changed' AND key = $1", party_id
    )
    event = pb.WatchIdentityEventsResponse.FromString(changed)
    assert list(event.party_changed.member_guest_ids) == [g.guest_id for g in guests]


async def test_register_party_is_idempotent(identity: Identity) -> None:
    desk = await desk_token(identity)
    request = pb.RegisterPartyRequest(
        members=[member("Ann", band=uid()), member("Cy", CHILD, band=uid())],
        idempotency_key=f"party-{uuid.uuid4().hex}",
    )
    before = await written(identity)
    first, second = await asyncio.gather(
        identity.stub.RegisterParty(request, metadata=bearer(desk)),
        identity.stub.RegisterParty(request, metadata=bearer(desk)),
    )
    assert first == second
    parties, guests, bands, _ = await written(identity)
    assert (parties, guests, bands) == (before[0] + 1, before[1] + 2, before[2] + 2)


@pytest.mark.parametrize(
    ("members", "field"),
    [
        ([], "members"),
        ([member("Ann")] * 21, "members"),
        ([member("Cy", CHILD)], "members[0].role"),
        ([member("Ann"), member("Bo", pb.PARTY_ROLE_UNSPECIFIED)], "members[1].role"),
        ([member("")], "members[0].display_name"),
        ([member("Ann"), member("x" * 101)], "members[1].display_name"),
        ([member("Ann"), member("Cy", CHILD, band="no spaces")], "members[1].band_uid"),
        (
            [member("Ann", band="same-band-1"), member("Bo", band="same-band-1")],
            "members[1].band_uid",
        ),
        (
            [
                member("Ann"),
                pb.PartyMemberRegistration(display_name="Bo", role=ADULT, height_cm=400),
            ],
            "members[1].height_cm",
        ),
    ],
)
async def test_bad_input_names_the_member_and_writes_nothing(
    identity: Identity, members: list[pb.PartyMemberRegistration], field: str
) -> None:
    desk = await desk_token(identity)
    before = await written(identity)
    request = pb.RegisterPartyRequest(members=members, idempotency_key=f"p-{uuid.uuid4().hex}")
    await expect_error(identity.stub.RegisterParty(request, metadata=bearer(desk)), INVALID, field)
    assert await written(identity) == before


async def test_a_band_in_use_refuses_the_whole_party(identity: Identity) -> None:
    desk = await desk_token(identity)
    taken = uid()
    await identity.stub.RegisterParty(
        pb.RegisterPartyRequest(members=[member("Ann", band=taken)]), metadata=bearer(desk)
    )
    before = await written(identity)
    request = pb.RegisterPartyRequest(
        members=[member("Bo", band=uid()), member("Cy", CHILD, band=taken)]
    )
    await expect_error(
        identity.stub.RegisterParty(request, metadata=bearer(desk)),
        PRECONDITION,
    )
    assert await written(identity) == before


async def test_only_desk_and_admin_staff_register_parties(identity: Identity) -> None:
    request = pb.RegisterPartyRequest(members=[member("Ann")])
    before = await written(identity)
    guest = await identity.guest("Gus")
    _, ops = await identity.staff(OPS)
    _, reader = await identity.device(READER)
    for token in (guest.token, ops, reader):
        await expect_error(identity.stub.RegisterParty(request, metadata=bearer(token)), DENIED)
    await expect_error(identity.stub.RegisterParty(request), grpc.StatusCode.UNAUTHENTICATED)
    # Only the refused callers' own set-up was written (a guest, a staff member, a device).
    parties, guests, bands, _ = await written(identity)
    assert (parties, guests, bands) == (before[0] + 1, before[1] + 1, before[2])
    reply = await identity.stub.RegisterParty(request, metadata=bearer(identity.admin))
    assert reply.guests[0].role == ADULT
