"""RegisterGuests: the desk registers many guests with their bands at once; all
or nothing, every entry checked, only desk (and admin) staff."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.service.conftest import DESK, GATE, OPS, Identity
from tests.support.stubs import bearer, expect_error
from venue.identity.v1 import identity_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def uid() -> str:
    return f"bulk-{uuid.uuid4().hex[:12]}"


def entry(name: str = "Walk-up", band: str | None = None, **consent: bool) -> pb.GuestRegistration:
    return pb.GuestRegistration(
        display_name=name, band_uid=uid() if band is None else band, consent=pb.Consent(**consent)
    )


def precondition(err: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(type, subject) of each PreconditionFailure violation the error carries."""
    found: list[tuple[str, str]] = []
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            found += [(v.type, v.subject) for v in failure.violations]
    return found


async def written(identity: Identity) -> tuple[int, int, int, int]:
    return (
        await identity.count("guests"),
        await identity.count("parties"),
        await identity.count("bands"),
        await identity.count("events"),
    )


async def test_desk_registers_guests_each_in_their_own_party_wearing_their_band(
    identity: Identity,
) -> None:
    _, desk = await identity.staff(DESK)
    _, gate = await identity.device(GATE)
    entries = [
        entry("Ann", location_tracking=True),
        entry("Bo", band=""),
        pb.GuestRegistration(display_name="Cy", height_cm=131, band_uid=uid()),
    ]
    reply = await identity.stub.RegisterGuests(
        pb.RegisterGuestsRequest(guests=entries), metadata=bearer(desk)
    )
    assert [g.display_name for g in reply.guests] == ["Ann", "Bo", "Cy"]
    assert len({g.party_id for g in reply.guests}) == 3
    assert all(g.role == pb.PARTY_ROLE_ADULT for g in reply.guests)
    assert reply.guests[0].consent.location_tracking and not reply.guests[2].consent.photo_linking
    assert reply.guests[2].height_cm == 131
    # Bo named no band: two bands, in the request's order.
    assert [b.band_uid for b in reply.bands] == [entries[0].band_uid, entries[2].band_uid]
    for band, guest in zip(reply.bands, [reply.guests[0], reply.guests[2]], strict=True):
        resolved = await identity.stub.ResolveBand(
            pb.ResolveBandRequest(band_uid=band.band_uid), metadata=bearer(gate)
        )
        assert (resolved.guest_id, resolved.party_id, resolved.active) == (
            guest.guest_id,
            guest.party_id,
            True,
        )
    party = await identity.stub.GetParty(
        pb.GetPartyRequest(party_id=reply.guests[1].party_id), metadata=bearer(desk)
    )
    assert [m.guest_id for m in party.party.members] == [reply.guests[1].guest_id]
    # The stream carries what followers need, as for CreateGuest and LinkBand.
    kinds = await identity.db.fetch(
        "SELECT kind, count(*) AS n FROM identity.events WHERE key = ANY($1::text[]) GROUP BY kind",
        [g.guest_id for g in reply.guests] + [g.party_id for g in reply.guests],
    )
    assert {k["kind"]: k["n"] for k in kinds} == {
        "guest_created": 3,
        "party_changed": 3,
        "band_linked": 2,
    }


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        ([], "guests"),
        ([entry()] * 1001, "guests"),
        ([entry(), entry("")], "guests[1].display_name"),
        ([entry("x" * 101)], "guests[0].display_name"),
        ([entry(band="no spaces here")], "guests[0].band_uid"),
        ([entry(band="abc")], "guests[0].band_uid"),
        ([entry(band="same-band-1"), entry(), entry(band="same-band-1")], "guests[2].band_uid"),
        (
            [entry(), pb.GuestRegistration(display_name="Tall", height_cm=301)],
            "guests[1].height_cm",
        ),
    ],
)
async def test_bad_input_names_the_entry_and_writes_nothing(
    identity: Identity, entries: list[pb.GuestRegistration], field: str
) -> None:
    _, desk = await identity.staff(DESK)
    before = await written(identity)
    await expect_error(
        identity.stub.RegisterGuests(
            pb.RegisterGuestsRequest(guests=entries), metadata=bearer(desk)
        ),
        INVALID,
        field,
    )
    assert await written(identity) == before


async def test_a_band_already_worn_refuses_the_whole_request(identity: Identity) -> None:
    _, desk = await identity.staff(DESK)
    worn = await identity.stub.RegisterGuests(
        pb.RegisterGuestsRequest(guests=[entry()]), metadata=bearer(desk)
    )
    before = await written(identity)
    again = pb.RegisterGuestsRequest(guests=[entry(), entry(band=worn.bands[0].band_uid)])
    err = await expect_error(
        identity.stub.RegisterGuests(again, metadata=bearer(desk)), PRECONDITION
    )
    assert precondition(err) == [("BAND_IN_USE", "guests[1].band_uid")]
    # A band UID is personal data: never echoed in an error.
    assert worn.bands[0].band_uid not in (err.details() or "")
    assert await written(identity) == before


async def test_only_desk_and_admin_staff_register_in_bulk(identity: Identity) -> None:
    request = pb.RegisterGuestsRequest(guests=[entry()])
    _, ops = await identity.staff(OPS)
    _, gate = await identity.device(GATE)
    ann = await identity.guest("Ann")
    before = await written(identity)
    await expect_error(identity.stub.RegisterGuests(request), UNAUTH)
    for token in (ops, gate, ann.token):
        await expect_error(identity.stub.RegisterGuests(request, metadata=bearer(token)), DENIED)
    assert await written(identity) == before
    reply = await identity.stub.RegisterGuests(request, metadata=bearer(identity.admin))
    assert len(reply.guests) == 1


async def test_a_retried_request_registers_once(identity: Identity) -> None:
    _, desk = await identity.staff(DESK)
    request = pb.RegisterGuestsRequest(
        guests=[entry(), entry()], idempotency_key=f"coach-{uuid.uuid4().hex}"
    )
    before = (await identity.count("guests"), await identity.count("bands"))
    first, second = await asyncio.gather(
        identity.stub.RegisterGuests(request, metadata=bearer(desk)),
        identity.stub.RegisterGuests(request, metadata=bearer(desk)),
    )
    assert first == second
    assert (await identity.count("guests"), await identity.count("bands")) == (
        before[0] + 2,
        before[1] + 2,
    )
