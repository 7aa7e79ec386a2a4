"""Every identity RPC over a real socket: what it does, who may call it, and its
bad input (a clear status naming the field, nothing written)."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest

from services.platform import service_secrets
from tests.service.conftest import ADMIN, DESK, GATE, OPS, READER, Identity
from tests.support.stubs import bearer, expect_error, status_of
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def uid() -> str:
    return f"band-{uuid.uuid4().hex[:12]}"


# --- guests, login, parties ---------------------------------------------------


async def test_sign_up_founds_a_party_and_logs_in(identity: Identity) -> None:
    ann = await identity.guest("Ann", location_tracking=True)
    got = await identity.stub.GetGuest(
        pb.GetGuestRequest(guest_id=ann.guest_id), metadata=bearer(ann.token)
    )
    assert got.guest.party_id == ann.party_id
    assert got.guest.role == pb.PARTY_ROLE_ADULT
    assert got.guest.consent.location_tracking and not got.guest.consent.photo_linking
    party = await identity.stub.GetParty(
        pb.GetPartyRequest(party_id=ann.party_id), metadata=bearer(ann.token)
    )
    assert [m.guest_id for m in party.party.members] == [ann.guest_id]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"display_name": ""}, "display_name"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"height_cm": 400}, "height_cm"),
        ({"height_cm": -1}, "height_cm"),
        ({"idempotency_key": "has space"}, "idempotency_key"),
    ],
)
async def test_create_guest_bad_input_writes_nothing(
    identity: Identity, change: dict[str, object], field: str
) -> None:
    request = {
        "display_name": "Bo",
        "email": f"bo-{uuid.uuid4().hex}@example.com",
        "password": "long enough password",
        **change,
    }
    before = await identity.count("guests")
    await expect_error(identity.stub.CreateGuest(pb.CreateGuestRequest(**request)), INVALID, field)  # type: ignore[arg-type]
    assert await identity.count("guests") == before


async def test_duplicate_email_is_refused(identity: Identity) -> None:
    ann = await identity.guest("Ann")
    request = pb.CreateGuestRequest(
        display_name="Ann 2", email=ann.email.upper(), password="another long one"
    )
    await expect_error(identity.stub.CreateGuest(request), PRECONDITION)


async def test_create_guest_is_idempotent(identity: Identity) -> None:
    request = pb.CreateGuestRequest(
        display_name="Cy",
        email=f"cy-{uuid.uuid4().hex}@example.com",
        password="long enough password",
        idempotency_key="signup-1",
    )
    first, second = await asyncio.gather(
        identity.stub.CreateGuest(request), identity.stub.CreateGuest(request)
    )
    assert first.guest.guest_id == second.guest.guest_id


async def test_only_desk_staff_place_a_guest_in_an_existing_party(identity: Identity) -> None:
    ann = await identity.guest("Ann")
    request = pb.CreateGuestRequest(display_name="Dan", party_id=ann.party_id)
    await expect_error(identity.stub.CreateGuest(request), DENIED)
    _, desk = await identity.staff(DESK)
    reply = await identity.stub.CreateGuest(request, metadata=bearer(desk))
    assert reply.guest.party_id == ann.party_id


async def test_login_failures(identity: Identity) -> None:
    ann = await identity.guest("Ann")
    wrong = pb.IssueTokenRequest(
        guest_password=pb.GuestPassword(email=ann.email, password="x" * 12)
    )
    await expect_error(identity.stub.IssueToken(wrong), UNAUTH)
    unknown = pb.IssueTokenRequest(
        guest_password=pb.GuestPassword(email="nobody@example.com", password="x" * 12)
    )
    await expect_error(identity.stub.IssueToken(unknown), UNAUTH)
    await expect_error(identity.stub.IssueToken(pb.IssueTokenRequest()), INVALID, "credential")


async def test_repeated_wrong_passwords_lock_the_login(identity: Identity) -> None:
    ann = await identity.guest("Ann")
    wrong = pb.IssueTokenRequest(
        guest_password=pb.GuestPassword(email=ann.email, password="y" * 12)
    )
    for _ in range(5):
        await expect_error(identity.stub.IssueToken(wrong), UNAUTH)
    right = pb.IssueTokenRequest(
        guest_password=pb.GuestPassword(email=ann.email, password=ann.password)
    )
    await expect_error(identity.stub.IssueToken(right), grpc.StatusCode.RESOURCE_EXHAUSTED)


async def test_app_link_code_signs_in_once(identity: Identity) -> None:
    _, desk = await identity.staff(DESK)
    guest = await identity.stub.CreateGuest(
        pb.CreateGuestRequest(display_name="Eve"), metadata=bearer(desk)
    )
    link = await identity.stub.CreateAppLink(
        pb.CreateAppLinkRequest(guest_id=guest.guest.guest_id), metadata=bearer(desk)
    )
    request = pb.IssueTokenRequest(app_link_code=pb.AppLinkCode(link_code=link.link_code))
    reply = await identity.stub.IssueToken(request)
    assert reply.principal.subject == guest.guest.guest_id
    assert reply.principal.party_id == guest.guest.party_id
    await expect_error(identity.stub.IssueToken(request), UNAUTH)


async def test_guests_cannot_see_another_party(identity: Identity) -> None:
    ann, bob = await identity.guest("Ann"), await identity.guest("Bob")
    await expect_error(
        identity.stub.GetGuest(
            pb.GetGuestRequest(guest_id=bob.guest_id), metadata=bearer(ann.token)
        ),
        DENIED,
    )
    await expect_error(
        identity.stub.GetParty(
            pb.GetPartyRequest(party_id=bob.party_id), metadata=bearer(ann.token)
        ),
        DENIED,
    )
    await expect_error(
        identity.stub.UpdateGuest(
            pb.UpdateGuestRequest(guest_id=bob.guest_id, height_cm=120), metadata=bearer(ann.token)
        ),
        DENIED,
    )


async def test_get_guest_bad_and_unknown_ids(identity: Identity) -> None:
    await expect_error(
        identity.stub.GetGuest(pb.GetGuestRequest(guest_id="xyz"), metadata=bearer(identity.admin)),
        INVALID,
        "guest_id",
    )
    await expect_error(
        identity.stub.GetGuest(
            pb.GetGuestRequest(guest_id=str(uuid.uuid4())), metadata=bearer(identity.admin)
        ),
        NOT_FOUND,
    )


async def test_update_guest_changes_only_what_is_set(identity: Identity) -> None:
    ann = await identity.guest("Ann")
    reply = await identity.stub.UpdateGuest(
        pb.UpdateGuestRequest(guest_id=ann.guest_id, height_cm=132), metadata=bearer(ann.token)
    )
    assert (reply.guest.height_cm, reply.guest.display_name) == (132, "Ann")
    await expect_error(
        identity.stub.UpdateGuest(
            pb.UpdateGuestRequest(guest_id=ann.guest_id, height_cm=999), metadata=bearer(ann.token)
        ),
        INVALID,
        "height_cm",
    )


async def test_family_party_children_invites_and_removal(identity: Identity) -> None:
    ann, bob = await identity.guest("Ann"), await identity.guest("Bob")
    child = await identity.stub.AddChild(
        pb.AddChildRequest(party_id=ann.party_id, display_name="Kid", height_cm=105),
        metadata=bearer(ann.token),
    )
    assert child.guest.role == pb.PARTY_ROLE_CHILD
    await expect_error(
        identity.stub.AddChild(
            pb.AddChildRequest(party_id=ann.party_id, display_name="Kid"),
            metadata=bearer(bob.token),
        ),
        DENIED,
    )
    renamed = await identity.stub.UpdateParty(
        pb.UpdatePartyRequest(party_id=ann.party_id, name="The Smiths"), metadata=bearer(ann.token)
    )
    assert renamed.party.name == "The Smiths"
    invite = await identity.stub.CreatePartyInvite(
        pb.CreatePartyInviteRequest(party_id=ann.party_id), metadata=bearer(ann.token)
    )
    joined = await identity.stub.JoinParty(
        pb.JoinPartyRequest(invite_code=invite.invite_code), metadata=bearer(bob.token)
    )
    assert {m.guest_id for m in joined.party.members} == {
        ann.guest_id,
        bob.guest_id,
        child.guest.guest_id,
    }
    await expect_error(
        identity.stub.JoinParty(
            pb.JoinPartyRequest(invite_code=invite.invite_code), metadata=bearer(bob.token)
        ),
        PRECONDITION,
    )
    await expect_error(
        identity.stub.RemovePartyMember(
            pb.RemovePartyMemberRequest(party_id=ann.party_id, guest_id=child.guest.guest_id),
            metadata=bearer(ann.token),
        ),
        PRECONDITION,
    )
    left = await identity.stub.RemovePartyMember(
        pb.RemovePartyMemberRequest(party_id=ann.party_id, guest_id=bob.guest_id),
        metadata=bearer(ann.token),
    )
    assert bob.guest_id not in {m.guest_id for m in left.party.members}


# --- bands --------------------------------------------------------------------


async def test_link_resolve_deactivate_and_replace(identity: Identity) -> None:
    ann = await identity.guest("Ann", photo_linking=True)
    _, gate = await identity.device(GATE, venue_ref="gate-1")
    band_uid = uid()
    linked = await identity.stub.LinkBand(
        pb.LinkBandRequest(guest_id=ann.guest_id, band_uid=band_uid), metadata=bearer(ann.token)
    )
    resolved = await identity.stub.ResolveBand(
        pb.ResolveBandRequest(band_uid=band_uid), metadata=bearer(gate)
    )
    assert (resolved.guest_id, resolved.active) == (ann.guest_id, True)
    assert resolved.consent.photo_linking
    await identity.stub.DeactivateBand(
        pb.DeactivateBandRequest(band_id=linked.band.band_id, reason=pb.DEACTIVATION_REASON_LOST),
        metadata=bearer(ann.token),
    )
    refused = await identity.stub.ResolveBand(
        pb.ResolveBandRequest(band_uid=band_uid), metadata=bearer(gate)
    )
    assert not refused.active, "deactivation must show on the very next resolve"
    new_uid = uid()
    with pytest.raises(grpc.aio.AioRpcError):
        await identity.stub.ReplaceBand(
            pb.ReplaceBandRequest(old_band_id=linked.band.band_id, new_band_uid=new_uid),
            metadata=bearer(ann.token),
        )
    second = await identity.stub.LinkBand(
        pb.LinkBandRequest(guest_id=ann.guest_id, band_uid=new_uid), metadata=bearer(ann.token)
    )
    replacement_uid = uid()
    replaced = await identity.stub.ReplaceBand(
        pb.ReplaceBandRequest(
            old_band_id=second.band.band_id,
            new_band_uid=replacement_uid,
            reason=pb.DEACTIVATION_REASON_STOLEN,
        ),
        metadata=bearer(ann.token),
    )
    assert replaced.old_band.status == pb.BAND_STATUS_DEACTIVATED
    assert replaced.new_band.status == pb.BAND_STATUS_ACTIVE
    assert not (
        await identity.stub.ResolveBand(
            pb.ResolveBandRequest(band_uid=new_uid), metadata=bearer(gate)
        )
    ).active
    assert (
        await identity.stub.ResolveBand(
            pb.ResolveBandRequest(band_uid=replacement_uid), metadata=bearer(gate)
        )
    ).active
    listed = await identity.stub.ListBands(
        pb.ListBandsRequest(
            guest_id=ann.guest_id,
            include_deactivated=True,
            page=common_pb2.PageRequest(page_size=2),
        ),
        metadata=bearer(ann.token),
    )
    assert len(listed.bands) == 2 and listed.next_page_token
    rest = await identity.stub.ListBands(
        pb.ListBandsRequest(
            guest_id=ann.guest_id,
            include_deactivated=True,
            page=common_pb2.PageRequest(page_size=2, page_token=listed.next_page_token),
        ),
        metadata=bearer(ann.token),
    )
    assert len(rest.bands) == 1 and not rest.next_page_token
    active = await identity.stub.ListBands(
        pb.ListBandsRequest(party_id=ann.party_id), metadata=bearer(ann.token)
    )
    assert [b.band_uid for b in active.bands] == [replacement_uid]


async def test_band_rules(identity: Identity) -> None:
    ann, bob = await identity.guest("Ann"), await identity.guest("Bob")
    _, gate = await identity.device(GATE)
    _, reader = await identity.device(READER)
    band_uid = uid()
    await identity.stub.LinkBand(
        pb.LinkBandRequest(guest_id=ann.guest_id, band_uid=band_uid), metadata=bearer(ann.token)
    )
    await expect_error(
        identity.stub.LinkBand(
            pb.LinkBandRequest(guest_id=bob.guest_id, band_uid=band_uid), metadata=bearer(bob.token)
        ),
        PRECONDITION,
    )
    await expect_error(
        identity.stub.LinkBand(
            pb.LinkBandRequest(guest_id=bob.guest_id, band_uid=uid()), metadata=bearer(ann.token)
        ),
        DENIED,
    )
    before = await identity.count("bands")
    await expect_error(
        identity.stub.LinkBand(
            pb.LinkBandRequest(guest_id=ann.guest_id, band_uid="no spaces!"),
            metadata=bearer(ann.token),
        ),
        INVALID,
        "band_uid",
    )
    assert await identity.count("bands") == before
    await expect_error(
        identity.stub.ResolveBand(pb.ResolveBandRequest(band_uid=uid()), metadata=bearer(gate)),
        NOT_FOUND,
    )
    await expect_error(
        identity.stub.ResolveBand(
            pb.ResolveBandRequest(band_uid=band_uid), metadata=bearer(reader)
        ),
        DENIED,
    )
    await expect_error(
        identity.stub.ResolveBand(
            pb.ResolveBandRequest(band_uid=band_uid), metadata=bearer(ann.token)
        ),
        DENIED,
    )
    await expect_error(
        identity.stub.ListBands(pb.ListBandsRequest(), metadata=bearer(ann.token)),
        INVALID,
        "guest_id",
    )
    await expect_error(
        identity.stub.ListBands(
            pb.ListBandsRequest(party_id=bob.party_id), metadata=bearer(ann.token)
        ),
        DENIED,
    )


async def test_linking_is_idempotent(identity: Identity) -> None:
    ann = await identity.guest("Ann")
    request = pb.LinkBandRequest(guest_id=ann.guest_id, band_uid=uid(), idempotency_key="link-1")
    replies = await asyncio.gather(
        *(identity.stub.LinkBand(request, metadata=bearer(ann.token)) for _ in range(4))
    )
    assert len({r.band.band_id for r in replies}) == 1


# --- consent and erasure ------------------------------------------------------


async def test_consent_is_set_partially_and_only_by_the_guest(identity: Identity) -> None:
    ann, bob = await identity.guest("Ann"), await identity.guest("Bob")
    reply = await identity.stub.SetConsent(
        pb.SetConsentRequest(guest_id=ann.guest_id, photo_linking=True), metadata=bearer(ann.token)
    )
    assert reply.consent == pb.Consent(photo_linking=True)
    reply = await identity.stub.SetConsent(
        pb.SetConsentRequest(guest_id=ann.guest_id, location_tracking=True),
        metadata=bearer(ann.token),
    )
    assert reply.consent == pb.Consent(photo_linking=True, location_tracking=True)
    got = await identity.stub.GetConsent(
        pb.GetConsentRequest(guest_id=ann.guest_id), metadata=bearer(ann.token)
    )
    assert got.consent == reply.consent
    await expect_error(
        identity.stub.SetConsent(
            pb.SetConsentRequest(guest_id=ann.guest_id, photo_linking=False),
            metadata=bearer(bob.token),
        ),
        DENIED,
    )
    _, ops = await identity.staff(OPS)
    await expect_error(
        identity.stub.SetConsent(
            pb.SetConsentRequest(guest_id=ann.guest_id, photo_linking=False), metadata=bearer(ops)
        ),
        DENIED,
    )


async def test_erasure_removes_personal_data(identity: Identity) -> None:
    ann = await identity.guest("Ann", location_tracking=True)
    band_uid = uid()
    await identity.stub.LinkBand(
        pb.LinkBandRequest(guest_id=ann.guest_id, band_uid=band_uid), metadata=bearer(ann.token)
    )
    _, gate = await identity.device(GATE)
    await identity.stub.EraseGuest(
        pb.EraseGuestRequest(guest_id=ann.guest_id), metadata=bearer(ann.token)
    )
    row = await identity.db.fetchrow(
        "SELECT display_name, email, password_hash, consent_location, erased_at "
        "FROM identity.guests WHERE guest_id = $1",
        ann.guest_id,
    )
    assert row is not None
    assert (row["display_name"], row["email"], row["password_hash"]) == (None, None, None)
    assert not row["consent_location"] and row["erased_at"] is not None
    assert (
        await identity.db.fetchval(
            "SELECT count(*) FROM identity.bands WHERE band_uid = $1", band_uid
        )
        == 0
    )
    events = await identity.db.fetch(
        "SELECT kind FROM identity.events WHERE key = $1 ORDER BY txid, seq", ann.guest_id
    )
    assert "guest_erased" in [e["kind"] for e in events]
    # Gone everywhere: the band, the login, and the tokens already issued.
    await expect_error(
        identity.stub.ResolveBand(pb.ResolveBandRequest(band_uid=band_uid), metadata=bearer(gate)),
        NOT_FOUND,
    )
    login = pb.IssueTokenRequest(
        guest_password=pb.GuestPassword(email=ann.email, password=ann.password)
    )
    await expect_error(identity.stub.IssueToken(login), UNAUTH)
    await expect_error(
        identity.stub.GetParty(
            pb.GetPartyRequest(party_id=ann.party_id), metadata=bearer(ann.token)
        ),
        UNAUTH,
    )


async def test_erasure_needs_the_guest_or_an_admin(identity: Identity) -> None:
    ann, bob = await identity.guest("Ann"), await identity.guest("Bob")
    await expect_error(
        identity.stub.EraseGuest(
            pb.EraseGuestRequest(guest_id=ann.guest_id), metadata=bearer(bob.token)
        ),
        DENIED,
    )
    await expect_error(
        identity.stub.EraseGuest(pb.EraseGuestRequest(guest_id="bad"), metadata=bearer(bob.token)),
        INVALID,
        "guest_id",
    )
    await identity.stub.EraseGuest(
        pb.EraseGuestRequest(guest_id=ann.guest_id), metadata=bearer(identity.admin)
    )


# --- devices, staff, tokens ----------------------------------------------------


async def test_devices_register_list_and_revoke(identity: Identity) -> None:
    device_id, token = await identity.device(GATE, venue_ref="gate-7")
    got = await identity.stub.GetDevice(
        pb.GetDeviceRequest(device_id=device_id), metadata=bearer(identity.admin)
    )
    assert (got.device.venue_ref, got.device.status) == ("gate-7", pb.CREDENTIAL_STATUS_ACTIVE)
    listed = await identity.stub.ListDevices(
        pb.ListDevicesRequest(kind=GATE), metadata=bearer(identity.admin)
    )
    assert device_id in {d.device_id for d in listed.devices}
    await expect_error(
        identity.stub.RegisterDevice(
            pb.RegisterDeviceRequest(name="x"), metadata=bearer(identity.admin)
        ),
        INVALID,
        "kind",
    )
    await expect_error(
        identity.stub.RegisterDevice(
            pb.RegisterDeviceRequest(kind=GATE, name="x"), metadata=bearer(token)
        ),
        DENIED,
    )
    ann = await identity.guest("Ann")
    band_uid = uid()
    await identity.stub.LinkBand(
        pb.LinkBandRequest(guest_id=ann.guest_id, band_uid=band_uid), metadata=bearer(ann.token)
    )
    resolve = pb.ResolveBandRequest(band_uid=band_uid)
    assert await status_of(identity.stub.ResolveBand(resolve, metadata=bearer(token))) == (
        grpc.StatusCode.OK
    )
    await identity.stub.RevokeDevice(
        pb.RevokeDeviceRequest(device_id=device_id), metadata=bearer(identity.admin)
    )
    # Revoked: the token already issued is refused within a second, no new one is issued.
    async with asyncio.timeout(1):
        while await status_of(identity.stub.ResolveBand(resolve, metadata=bearer(token))) == (
            grpc.StatusCode.OK
        ):
            await asyncio.sleep(0.02)
    await expect_error(identity.stub.ResolveBand(resolve, metadata=bearer(token)), UNAUTH)


async def test_device_registration_retry_returns_the_same_secret(identity: Identity) -> None:
    request = pb.RegisterDeviceRequest(kind=READER, name="reader", idempotency_key="reg-1")
    first = await identity.stub.RegisterDevice(request, metadata=bearer(identity.admin))
    second = await identity.stub.RegisterDevice(request, metadata=bearer(identity.admin))
    assert (first.device.device_id, first.secret) == (second.device.device_id, second.secret)
    stored = await identity.db.fetchval(
        "SELECT count(*) FROM identity.idempotency_keys WHERE response LIKE $1",
        b"%" + first.secret.encode() + b"%",
    )
    assert stored == 0, "a device secret must never be stored"


async def test_staff_create_list_revoke(identity: Identity) -> None:
    staff_id, token = await identity.staff(OPS)
    listed = await identity.stub.ListStaff(pb.ListStaffRequest(), metadata=bearer(identity.admin))
    assert staff_id in {s.staff_id for s in listed.staff}
    await expect_error(
        identity.stub.ListStaff(pb.ListStaffRequest(), metadata=bearer(token)), DENIED
    )
    await expect_error(
        identity.stub.CreateStaff(
            pb.CreateStaffRequest(display_name="x", role=99),  # type: ignore[arg-type]
            metadata=bearer(identity.admin),
        ),
        INVALID,
        "role",
    )
    await identity.stub.RevokeStaff(
        pb.RevokeStaffRequest(staff_id=staff_id), metadata=bearer(identity.admin)
    )
    await expect_error(
        identity.stub.ListDevices(pb.ListDevicesRequest(), metadata=bearer(token)), UNAUTH
    )
    _, admin2 = await identity.staff(ADMIN)
    assert (
        await status_of(identity.stub.ListStaff(pb.ListStaffRequest(), metadata=bearer(admin2)))
        == grpc.StatusCode.OK
    )


async def test_service_tokens(identity: Identity) -> None:
    master = service_secrets.load_or_create_master(identity.data_dir)
    good = pb.IssueTokenRequest(
        service_secret=pb.ServiceSecret(
            service="access", secret=service_secrets.derive(master, "access")
        )
    )
    reply = await identity.stub.IssueToken(good)
    assert reply.principal.kind == pb.PRINCIPAL_KIND_SERVICE
    posing = pb.IssueTokenRequest(
        service_secret=pb.ServiceSecret(
            service="photo", secret=service_secrets.derive(master, "access")
        )
    )
    await expect_error(identity.stub.IssueToken(posing), UNAUTH)
    unknown = pb.IssueTokenRequest(service_secret=pb.ServiceSecret(service="evil", secret="x"))
    await expect_error(identity.stub.IssueToken(unknown), INVALID, "service_secret.service")


async def test_signing_keys_are_public(identity: Identity) -> None:
    reply = await identity.stub.GetSigningKeys(pb.GetSigningKeysRequest())
    keys = json.loads(reply.jwks_json)["keys"]
    assert keys and all(k["kty"] == "OKP" and "d" not in k for k in keys), "no private part"


async def test_identity_events_are_for_services_only(identity: Identity) -> None:
    ann = await identity.guest("Ann")
    request = pb.WatchIdentityEventsRequest(start=common_pb2.StreamCursor())
    await expect_error(
        identity.stub.WatchIdentityEvents(request, metadata=bearer(ann.token)).read(), DENIED
    )
    master = service_secrets.load_or_create_master(identity.data_dir)
    token = (
        await identity.stub.IssueToken(
            pb.IssueTokenRequest(
                service_secret=pb.ServiceSecret(
                    service="location", secret=service_secrets.derive(master, "location")
                )
            )
        )
    ).access_token
    stream = identity.stub.WatchIdentityEvents(request, metadata=bearer(token))
    kinds: list[str] = []
    async with asyncio.timeout(5):
        async for event in stream:
            kinds.append(str(event.WhichOneof("event")))
            if event.WhichOneof("event") == "guest_created" and event.guest_created.guest_id == (
                ann.guest_id
            ):
                break
    stream.cancel()
    assert "guest_created" in kinds
    await expect_error(
        identity.stub.WatchIdentityEvents(
            pb.WatchIdentityEventsRequest(start=common_pb2.StreamCursor(cursor="garbage")),
            metadata=bearer(token),
        ).read(),
        INVALID,
        "start.cursor",
    )
