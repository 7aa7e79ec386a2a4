"""The identity gRPC servicer: parse, authorize, call the store, answer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import grpc

from services.identity import messages, passwords, rules
from services.identity.band_cache import BandCache
from services.identity.event_payloads import consent_pb
from services.identity.login_limiter import LoginLimiter
from services.identity.records import BandRecord, Consent, GuestRecord, NewMember
from services.identity.store import (
    ADULT,
    CHILD,
    REASON_REPLACED,
    IdentityStore,
    Registration,
)
from services.platform import events, idempotency, paging, service_secrets, validation
from services.platform.clock import VenueClock
from services.platform.config import SERVICE_PORTS
from services.platform.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from services.platform.idempotency import Idem
from services.platform.principal import Kind, Principal, caller
from services.platform.server_span import annotate
from services.platform.tokens import Revocations, SigningKey
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as pb
from venue.identity.v1 import identity_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


# The replies of the desk's bulk registrations (guests and their bands).
_Registered = TypeVar("_Registered", pb.RegisterGuestsResponse, pb.RegisterPartyResponse)


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _idem(method: str, key: str, request: Any) -> Idem:
    return Idem(
        scope=f"{method}:{caller().log_id}",
        key=idempotency.check_key(key),
        digest=idempotency.request_hash(request),
    )


def _consent(message: pb.Consent) -> Consent:
    return Consent(message.location_tracking, message.personalized_nudges, message.photo_linking)


def _entries(entries: Any, name: str, limit: int, need: str) -> None:
    if not entries:
        raise InvalidArgument(name, need)
    if len(entries) > limit:
        raise InvalidArgument(name, f"at most {limit}")


def _checked(entry: Any, field: str, seen: dict[str, str]) -> tuple[str, int, Consent, str]:
    """One registered person's name, height, consent and band (or ""), checked;
    `seen` maps each band already named in the request to its entry."""
    uid = ""
    if entry.band_uid:
        uid = rules.band_uid(entry.band_uid, f"{field}.band_uid")
        if uid in seen:
            raise InvalidArgument(f"{field}.band_uid", f"the same band as {seen[uid]}")
        seen[uid] = field
    name = validation.text(entry.display_name, f"{field}.display_name", max_len=100)
    height = rules.height(entry.height_cm, f"{field}.height_cm")
    return name, height, _consent(entry.consent), uid


def _new_members(entries: Any) -> list[NewMember]:
    """Every member checked before anything is written; errors name the member."""
    _entries(
        entries, "members", rules.MAX_PARTY_REGISTRATION, "required: the founding adult at least"
    )
    out: list[NewMember] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(entries):
        field = f"members[{i}]"
        if entry.role not in (ADULT, CHILD):
            raise InvalidArgument(f"{field}.role", "PARTY_ROLE_ADULT or PARTY_ROLE_CHILD")
        if i == 0 and entry.role != ADULT:
            raise InvalidArgument(f"{field}.role", "the first member founds the party: an adult")
        name, height, consent, uid = _checked(entry, field, seen)
        out.append(NewMember(name, height, consent, entry.role, uid))
    return out


# Guests per RegisterGuests call: one transaction the desk can wait for.
MAX_REGISTRATIONS = 1000


def _registrations(entries: Any) -> list[Registration]:
    """Every entry checked before anything is written; errors name the entry."""
    _entries(entries, "guests", MAX_REGISTRATIONS, "required")
    seen: dict[str, str] = {}
    return [Registration(*_checked(e, f"guests[{i}]", seen)) for i, e in enumerate(entries)]


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(
        self,
        store: IdentityStore,
        hub: events.EventHub,
        cache: BandCache[pb.ResolveBandResponse],
        signing_key: SigningKey,
        master: bytes,
        clock: VenueClock,
        revocations: Revocations,
    ) -> None:
        self._store = store
        self._hub = hub
        self._cache = cache
        self._key = signing_key
        self._master = master
        self._clock = clock
        self._limiter = LoginLimiter()
        # This replica refuses a revoked credential from the moment the revocation
        # commits; other replicas learn it from the event stream.
        self._revocations = revocations

    # --- helpers -------------------------------------------------------------

    async def _guest_for(self, guest_id: str, field: str = "guest_id") -> GuestRecord:
        guest = await self._store.get_guest(validation.ident(guest_id, field))
        rules.require(rules.may_read_guest(caller(), guest), "see this guest")
        return guest

    async def _managed_guest(self, guest_id: str, field: str = "guest_id") -> GuestRecord:
        guest = await self._store.get_guest(validation.ident(guest_id, field))
        rules.require(rules.may_manage_guest(caller(), guest), "manage this guest")
        return guest

    def _party_of_caller(self, party_id: str) -> str:
        party_id = validation.ident(party_id, "party_id")
        who = caller()
        if who.is_guest and who.party_id != party_id:
            raise PermissionDenied("not allowed to act for another party")
        return party_id

    def _issue(self, principal: Principal) -> pb.IssueTokenResponse:
        lifetime = rules.TOKEN_LIFETIME[principal.kind]
        now = time.time()
        token = self._key.issue(principal, lifetime, now)
        kind = {
            Kind.GUEST: pb.PRINCIPAL_KIND_GUEST,
            Kind.DEVICE: pb.PRINCIPAL_KIND_DEVICE,
            Kind.STAFF: pb.PRINCIPAL_KIND_STAFF,
            Kind.SERVICE: pb.PRINCIPAL_KIND_SERVICE,
        }[principal.kind]
        reply = pb.IssueTokenResponse(
            access_token=token,
            principal=pb.Principal(
                kind=kind,
                subject=principal.subject,
                party_id=principal.party_id,
                device_kind=principal.device_kind,  # type: ignore[arg-type]
                venue_ref=principal.venue_ref,
                staff_role=principal.staff_role,  # type: ignore[arg-type]
            ),
        )
        reply.expires_at.FromSeconds(int(now + lifetime))
        return reply

    def _after_write(self, *guest_ids: str, uids: tuple[str, ...] = ()) -> None:
        """Drop cached answers now; the event stream does the same for other replicas."""
        for guest_id in guest_ids:
            self._cache.invalidate_guest(guest_id)
        for uid in uids:
            self._cache.invalidate_uid(uid)
        self._hub.poke()

    # --- guests and parties --------------------------------------------------

    async def CreateGuest(
        self, request: pb.CreateGuestRequest, context: Context
    ) -> pb.CreateGuestResponse:
        desk = caller().is_staff(rules.DESK, rules.ADMIN)
        if request.party_id and not desk:
            raise PermissionDenied(
                "only desk staff add a guest to an existing party; use an invite"
            )
        party_id = validation.ident(request.party_id, "party_id", required=False) or None
        name = validation.text(request.display_name, "display_name", max_len=100)
        email = rules.email(request.email) if request.email or not desk else ""
        password = request.password
        if password or not desk:
            rules.password(password)
        height = rules.height(request.height_cm)
        idem = _idem("CreateGuest", request.idempotency_key, request)
        hashed = await asyncio.to_thread(passwords.hash_password, password) if password else ""

        async def work(conn: Any) -> pb.CreateGuestResponse:
            guest = await self._store.create_guest(
                conn,
                display_name=name,
                email=email,
                password_hash=hashed,
                height_cm=height,
                consent=_consent(request.consent),
                party_id=party_id,
                role=ADULT,
                at=self._clock.now(),
            )
            return pb.CreateGuestResponse(guest=messages.guest_pb(guest))

        try:
            reply = await self._store.idempotent(
                idem, pb.CreateGuestResponse.FromString, lambda r: r.SerializeToString(), work
            )
        except asyncpg.UniqueViolationError:
            # The only unique value a new guest brings is the e-mail address.
            raise FailedPrecondition(
                "an account with this e-mail exists", reason="EMAIL_TAKEN", subject="email"
            ) from None
        self._hub.poke()
        return reply

    async def RegisterGuests(
        self, request: pb.RegisterGuestsRequest, context: Context
    ) -> pb.RegisterGuestsResponse:
        entries = _registrations(request.guests)
        return await self._register(
            _idem("RegisterGuests", request.idempotency_key, request),
            pb.RegisterGuestsResponse,
            lambda conn: self._store.register_guests(conn, entries, self._clock.now()),
            tuple(e.band_uid for e in entries if e.band_uid),
            subject="guests",
        )

    async def GetGuest(self, request: pb.GetGuestRequest, context: Context) -> pb.GetGuestResponse:
        guest = await self._guest_for(request.guest_id)
        return pb.GetGuestResponse(guest=messages.guest_pb(guest))

    async def UpdateGuest(
        self, request: pb.UpdateGuestRequest, context: Context
    ) -> pb.UpdateGuestResponse:
        guest = await self._managed_guest(request.guest_id)
        name = (
            validation.text(request.display_name, "display_name", max_len=100)
            if request.HasField("display_name")
            else None
        )
        height = rules.height(request.height_cm) if request.HasField("height_cm") else None
        updated = await self._store.update_guest(guest.guest_id, name, height, self._clock.now())
        self._after_write(guest.guest_id)
        return pb.UpdateGuestResponse(guest=messages.guest_pb(updated))

    async def GetParty(self, request: pb.GetPartyRequest, context: Context) -> pb.GetPartyResponse:
        party_id = self._party_of_caller(request.party_id)
        party = await self._store.get_party(party_id)
        personal = not caller().is_service()
        return pb.GetPartyResponse(party=messages.party_pb(party, personal))

    async def UpdateParty(
        self, request: pb.UpdatePartyRequest, context: Context
    ) -> pb.UpdatePartyResponse:
        party_id = self._party_of_caller(request.party_id)
        name = validation.text(request.name, "name", max_len=100)
        party = await self._store.rename_party(party_id, name)
        return pb.UpdatePartyResponse(party=messages.party_pb(party))

    async def AddChild(self, request: pb.AddChildRequest, context: Context) -> pb.AddChildResponse:
        party_id = self._party_of_caller(request.party_id)
        name = validation.text(request.display_name, "display_name", max_len=100)
        height = rules.height(request.height_cm)
        idem = _idem("AddChild", request.idempotency_key, request)

        async def work(conn: Any) -> pb.AddChildResponse:
            guest = await self._store.create_guest(
                conn,
                display_name=name,
                email="",
                password_hash="",
                height_cm=height,
                consent=_consent(request.consent),
                party_id=party_id,
                role=CHILD,
                at=self._clock.now(),
            )
            return pb.AddChildResponse(guest=messages.guest_pb(guest))

        reply = await self._store.idempotent(
            idem, pb.AddChildResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._hub.poke()
        return reply

    async def RegisterParty(
        self, request: pb.RegisterPartyRequest, context: Context
    ) -> pb.RegisterPartyResponse:
        members = _new_members(request.members)
        return await self._register(
            _idem("RegisterParty", request.idempotency_key, request),
            pb.RegisterPartyResponse,
            lambda conn: self._store.register_party(conn, members, self._clock.now()),
            tuple(m.band_uid for m in members if m.band_uid),
            subject="members",
        )

    async def _register(
        self,
        idem: Any,
        response: type[_Registered],
        write: Callable[[Any], Awaitable[tuple[list[GuestRecord], list[BandRecord]]]],
        uids: tuple[str, ...],
        *,
        subject: str,
    ) -> _Registered:
        """The desk's bulk registrations: guests and bands written together,
        answered once per idempotency key."""

        async def work(conn: Any) -> _Registered:
            guests, bands = await write(conn)
            return response(
                guests=[messages.guest_pb(g) for g in guests],
                bands=[messages.band_pb(b) for b in bands],
            )

        try:
            reply = await self._store.idempotent(
                idem, response.FromString, lambda r: r.SerializeToString(), work
            )
        except asyncpg.UniqueViolationError:
            # Another call linked one of these bands since the check.
            raise FailedPrecondition(
                "a band of this request is already linked; deactivate it first",
                reason="BAND_IN_USE",
                subject=subject,
            ) from None
        self._after_write(uids=uids)
        return reply

    async def CreatePartyInvite(
        self, request: pb.CreatePartyInviteRequest, context: Context
    ) -> pb.CreatePartyInviteResponse:
        party_id = self._party_of_caller(request.party_id)
        code = secrets.token_urlsafe(12)
        expires = datetime.now(UTC) + timedelta(seconds=rules.INVITE_LIFETIME_S)
        await self._store.create_invite(party_id, _hash(code), expires)
        return pb.CreatePartyInviteResponse(
            invite_code=code, expires_at=validation.to_timestamp(expires)
        )

    async def JoinParty(
        self, request: pb.JoinPartyRequest, context: Context
    ) -> pb.JoinPartyResponse:
        code = validation.text(request.invite_code, "invite_code", max_len=64)
        who = caller()
        party = await self._store.join_party(
            who.subject, _hash(code), datetime.now(UTC), self._clock.now()
        )
        self._after_write(who.subject)
        return pb.JoinPartyResponse(party=messages.party_pb(party))

    async def RemovePartyMember(
        self, request: pb.RemovePartyMemberRequest, context: Context
    ) -> pb.RemovePartyMemberResponse:
        party_id = self._party_of_caller(request.party_id)
        guest_id = validation.ident(request.guest_id, "guest_id")
        party = await self._store.remove_member(party_id, guest_id, self._clock.now())
        self._after_write(guest_id)
        return pb.RemovePartyMemberResponse(party=messages.party_pb(party))

    # --- bands ---------------------------------------------------------------

    async def LinkBand(self, request: pb.LinkBandRequest, context: Context) -> pb.LinkBandResponse:
        uid = rules.band_uid(request.band_uid)
        guest = await self._managed_guest(request.guest_id)
        idem = _idem("LinkBand", request.idempotency_key, request)

        async def work(conn: Any) -> pb.LinkBandResponse:
            band = await self._store.link_band(conn, guest, uid, self._clock.now())
            return pb.LinkBandResponse(band=messages.band_pb(band))

        reply = await self._store.idempotent(
            idem, pb.LinkBandResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._after_write(guest.guest_id, uids=(uid,))
        return reply

    async def ResolveBand(
        self, request: pb.ResolveBandRequest, context: Context
    ) -> pb.ResolveBandResponse:
        # Only a valid uid is ever cached: a hit needs no validation.
        hit, answer = self._cache.get(request.band_uid)
        if not hit:
            uid = rules.band_uid(request.band_uid)
            generation = self._cache.generation
            resolved = await self._store.resolve_band(uid)
            answer = None if resolved is None else messages.resolved_pb(resolved)
            self._cache.fill(uid, resolved.guest_id if resolved else None, answer, generation)
        if answer is None:
            raise NotFound("band")
        annotate({"venue.guest.id": answer.guest_id, "venue.band.active": answer.active})
        return answer

    async def ListBands(
        self, request: pb.ListBandsRequest, context: Context
    ) -> pb.ListBandsResponse:
        if bool(request.guest_id) == bool(request.party_id):
            raise InvalidArgument("guest_id", "give exactly one of guest_id and party_id")
        guest_id = party_id = None
        if request.guest_id:
            guest_id = (await self._guest_for(request.guest_id)).guest_id
        else:
            party_id = self._party_of_caller(request.party_id)
        size = paging.page_size(request.page.page_size)
        after = paging.decode("bands", request.page.page_token)
        bands = await self._store.list_bands(
            guest_id=guest_id,
            party_id=party_id,
            include_deactivated=request.include_deactivated,
            after=after,
            limit=size + 1,
        )
        token = paging.next_token(
            "bands", bands, size, lambda b: [b.linked_at.isoformat(), b.band_id]
        )
        return pb.ListBandsResponse(
            bands=[messages.band_pb(b) for b in bands[:size]], next_page_token=token
        )

    async def _band_of_managed_guest(self, band_id: str, field: str) -> Any:
        band = await self._store.get_band(validation.ident(band_id, field))
        guest = await self._store.get_guest(band.guest_id)
        rules.require(rules.may_manage_guest(caller(), guest), "manage this band")
        return band

    async def DeactivateBand(
        self, request: pb.DeactivateBandRequest, context: Context
    ) -> pb.DeactivateBandResponse:
        band = await self._band_of_managed_guest(request.band_id, "band_id")
        reason = validation.enum_value(request.reason, pb.DeactivationReason, "reason")
        deactivated = await self._store.deactivate(band.band_id, reason, self._clock.now())
        self._after_write(band.guest_id, uids=(band.band_uid,))
        return pb.DeactivateBandResponse(band=messages.band_pb(deactivated))

    async def ReplaceBand(
        self, request: pb.ReplaceBandRequest, context: Context
    ) -> pb.ReplaceBandResponse:
        uid = rules.band_uid(request.new_band_uid, "new_band_uid")
        old = await self._band_of_managed_guest(request.old_band_id, "old_band_id")
        reason = request.reason or REASON_REPLACED
        validation.enum_value(reason, pb.DeactivationReason, "reason")
        guest = await self._store.get_guest(old.guest_id)
        idem = _idem("ReplaceBand", request.idempotency_key, request)

        async def work(conn: Any) -> pb.ReplaceBandResponse:
            at = self._clock.now()
            old_band = await self._store.deactivate_band(conn, old.band_id, reason, at)
            new_band = await self._store.link_band(conn, guest, uid, at)
            return pb.ReplaceBandResponse(
                old_band=messages.band_pb(old_band), new_band=messages.band_pb(new_band)
            )

        reply = await self._store.idempotent(
            idem, pb.ReplaceBandResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._after_write(guest.guest_id, uids=(old.band_uid, uid))
        return reply

    # --- consent and erasure -------------------------------------------------

    async def GetConsent(
        self, request: pb.GetConsentRequest, context: Context
    ) -> pb.GetConsentResponse:
        guest = await self._guest_for(request.guest_id)
        if caller().is_guest:
            rules.require(rules.may_decide_for(caller(), guest), "see this guest's consent")
        return pb.GetConsentResponse(consent=consent_pb(guest.consent))

    async def SetConsent(
        self, request: pb.SetConsentRequest, context: Context
    ) -> pb.SetConsentResponse:
        guest = await self._store.get_guest(validation.ident(request.guest_id, "guest_id"))
        rules.require(rules.may_decide_for(caller(), guest), "decide for this guest")

        def pick(name: str) -> bool | None:
            return bool(getattr(request, name)) if request.HasField(name) else None  # type: ignore[arg-type]

        changes = [pick(n) for n in ("location_tracking", "personalized_nudges", "photo_linking")]
        consent = await self._store.set_consent(
            guest.guest_id,
            lambda current: rules.merged_consent(current, *changes),
            self._clock.now(),
        )
        self._after_write(guest.guest_id)
        return pb.SetConsentResponse(consent=consent_pb(consent))

    async def EraseGuest(
        self, request: pb.EraseGuestRequest, context: Context
    ) -> pb.EraseGuestResponse:
        guest_id = validation.ident(request.guest_id, "guest_id")
        idem = _idem("EraseGuest", request.idempotency_key, request)

        async def work(conn: Any) -> pb.EraseGuestResponse:
            guest = await self._store.get_guest(guest_id)
            rules.require(rules.may_decide_for(caller(), guest), "erase this guest")
            at = self._clock.now()
            await self._store.erase_guest(conn, guest_id, at)
            return pb.EraseGuestResponse(guest_id=guest_id, erased_at=validation.to_timestamp(at))

        reply = await self._store.idempotent(
            idem, pb.EraseGuestResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._revocations.revoke(Kind.GUEST, guest_id)
        self._after_write(guest_id)
        return reply

    # --- devices and staff ---------------------------------------------------

    async def RegisterDevice(
        self, request: pb.RegisterDeviceRequest, context: Context
    ) -> pb.RegisterDeviceResponse:
        kind = validation.enum_value(request.kind, common_pb2.DeviceKind, "kind")
        name = validation.text(request.name, "name", max_len=100)
        zone = validation.ref(request.place.zone_id, "place.zone_id", required=False)
        node = validation.ref(request.place.node_id, "place.node_id", required=False)
        venue_ref = validation.ref(request.venue_ref, "venue_ref", required=False)
        idem = _idem("RegisterDevice", request.idempotency_key, request)
        device_id = str(uuid.uuid4())

        async def work(conn: Any) -> pb.RegisterDeviceResponse:
            secret = service_secrets.derive(self._master, f"device:{device_id}")
            device = await self._store.register_device(
                conn, device_id, kind, name, zone, node, venue_ref, _hash(secret)
            )
            return pb.RegisterDeviceResponse(device=messages.device_pb(device))

        # The secret is never stored: it derives from the master and the id, so a
        # retried registration can hand out the same secret again.
        reply = await self._store.idempotent(
            idem, pb.RegisterDeviceResponse.FromString, lambda r: r.SerializeToString(), work
        )
        reply.secret = service_secrets.derive(self._master, f"device:{reply.device.device_id}")
        return reply

    async def GetDevice(
        self, request: pb.GetDeviceRequest, context: Context
    ) -> pb.GetDeviceResponse:
        device = await self._store.get_device(validation.ident(request.device_id, "device_id"))
        return pb.GetDeviceResponse(device=messages.device_pb(device))

    async def ListDevices(
        self, request: pb.ListDevicesRequest, context: Context
    ) -> pb.ListDevicesResponse:
        if request.kind:
            validation.enum_value(request.kind, common_pb2.DeviceKind, "kind")
        size = paging.page_size(request.page.page_size)
        after = paging.decode("devices", request.page.page_token)
        found = await self._store.list_devices(
            request.kind, request.include_revoked, after, size + 1
        )
        token = paging.next_token(
            "devices", found, size, lambda d: [d.created_at.isoformat(), d.device_id]
        )
        return pb.ListDevicesResponse(
            devices=[messages.device_pb(d) for d in found[:size]], next_page_token=token
        )

    async def RevokeDevice(
        self, request: pb.RevokeDeviceRequest, context: Context
    ) -> pb.RevokeDeviceResponse:
        device_id = validation.ident(request.device_id, "device_id")
        device = await self._store.revoke_device(device_id, self._clock.now())
        self._revocations.revoke(Kind.DEVICE, device_id)
        self._hub.poke()
        return pb.RevokeDeviceResponse(device=messages.device_pb(device))

    async def CreateStaff(
        self, request: pb.CreateStaffRequest, context: Context
    ) -> pb.CreateStaffResponse:
        name = validation.text(request.display_name, "display_name", max_len=100)
        role = validation.enum_value(request.role, common_pb2.StaffRole, "role")
        idem = _idem("CreateStaff", request.idempotency_key, request)
        staff_id = str(uuid.uuid4())

        async def work(conn: Any) -> pb.CreateStaffResponse:
            secret = service_secrets.derive(self._master, f"staff:{staff_id}")
            staff = await self._store.create_staff(conn, staff_id, name, role, _hash(secret))
            return pb.CreateStaffResponse(staff=messages.staff_pb(staff))

        reply = await self._store.idempotent(
            idem, pb.CreateStaffResponse.FromString, lambda r: r.SerializeToString(), work
        )
        reply.secret = service_secrets.derive(self._master, f"staff:{reply.staff.staff_id}")
        return reply

    async def ListStaff(
        self, request: pb.ListStaffRequest, context: Context
    ) -> pb.ListStaffResponse:
        size = paging.page_size(request.page.page_size)
        after = paging.decode("staff", request.page.page_token)
        found = await self._store.list_staff(request.include_revoked, after, size + 1)
        token = paging.next_token(
            "staff", found, size, lambda s: [s.created_at.isoformat(), s.staff_id]
        )
        return pb.ListStaffResponse(
            staff=[messages.staff_pb(s) for s in found[:size]], next_page_token=token
        )

    async def RevokeStaff(
        self, request: pb.RevokeStaffRequest, context: Context
    ) -> pb.RevokeStaffResponse:
        staff_id = validation.ident(request.staff_id, "staff_id")
        if staff_id == caller().subject:
            raise FailedPrecondition("staff cannot revoke themselves", reason="SELF_REVOKE")
        staff = await self._store.revoke_staff(staff_id, self._clock.now())
        self._revocations.revoke(Kind.STAFF, staff_id)
        self._hub.poke()
        return pb.RevokeStaffResponse(staff=messages.staff_pb(staff))

    # --- tokens --------------------------------------------------------------

    async def CreateAppLink(
        self, request: pb.CreateAppLinkRequest, context: Context
    ) -> pb.CreateAppLinkResponse:
        guest = await self._managed_guest(request.guest_id)
        if guest.role != ADULT:
            raise FailedPrecondition("children have no app login", reason="CHILD_NO_LOGIN")
        code = secrets.token_urlsafe(18)
        expires = datetime.now(UTC) + timedelta(seconds=rules.APP_LINK_LIFETIME_S)
        await self._store.create_app_link(guest.guest_id, _hash(code), expires)
        return pb.CreateAppLinkResponse(link_code=code, expires_at=validation.to_timestamp(expires))

    async def IssueToken(
        self, request: pb.IssueTokenRequest, context: Context
    ) -> pb.IssueTokenResponse:
        which = request.WhichOneof("credential")
        if which is None:
            raise InvalidArgument("credential", "required: one of the credential kinds")
        principal = await getattr(self, f"_login_{which}")(getattr(request, which))
        return self._issue(principal)

    async def _login_guest_password(self, cred: pb.GuestPassword) -> Principal:
        email = validation.text(cred.email, "guest_password.email", max_len=254)
        if not cred.password:
            raise InvalidArgument("guest_password.password", "required")
        self._limiter.check(email.lower())
        found = await self._store.login(email)
        stored = found[1] if found else passwords.dummy_hash()
        ok = await asyncio.to_thread(passwords.verify_password, cred.password, stored)
        if not ok or found is None:
            self._limiter.failed(email.lower())
            raise Unauthenticated("e-mail or password not recognized")
        self._limiter.succeeded(email.lower())
        guest = found[0]
        return Principal(Kind.GUEST, subject=guest.guest_id, party_id=guest.party_id)

    async def _login_app_link_code(self, cred: pb.AppLinkCode) -> Principal:
        code = validation.text(cred.link_code, "app_link_code.link_code", max_len=64)
        guest = await self._store.redeem_app_link(_hash(code), datetime.now(UTC))
        if guest is None:
            raise Unauthenticated("link code unknown, used or expired")
        return Principal(Kind.GUEST, subject=guest.guest_id, party_id=guest.party_id)

    async def _login_device_secret(self, cred: pb.DeviceSecret) -> Principal:
        device_id = validation.ident(cred.device_id, "device_secret.device_id")
        found = await self._store.device_secret_hash(device_id)
        if found is None or not hmac.compare_digest(found[1], _hash(cred.secret)):
            raise Unauthenticated("device credential not recognized")
        device = found[0]
        if not device.active:
            raise Unauthenticated("device revoked")
        return Principal(
            Kind.DEVICE,
            subject=device.device_id,
            device_kind=device.kind,
            venue_ref=device.venue_ref,
        )

    async def _login_staff_secret(self, cred: pb.StaffSecret) -> Principal:
        staff_id = validation.ident(cred.staff_id, "staff_secret.staff_id")
        found = await self._store.staff_secret_hash(staff_id)
        if found is None or not hmac.compare_digest(found[1], _hash(cred.secret)):
            raise Unauthenticated("staff credential not recognized")
        staff = found[0]
        if not staff.active:
            raise Unauthenticated("staff credential revoked")
        return Principal(Kind.STAFF, subject=staff.staff_id, staff_role=staff.role)

    async def _login_service_secret(self, cred: pb.ServiceSecret) -> Principal:
        name = cred.service
        if name not in SERVICE_PORTS or name == "identity":
            raise InvalidArgument("service_secret.service", "not a service of the suite")
        if not service_secrets.matches(self._master, name, cred.secret):
            raise Unauthenticated("service credential not recognized")
        return Principal(Kind.SERVICE, subject=name)

    async def GetSigningKeys(
        self, request: pb.GetSigningKeysRequest, context: Context
    ) -> pb.GetSigningKeysResponse:
        return pb.GetSigningKeysResponse(jwks_json=json.dumps(self._key.jwks()))

    # --- events --------------------------------------------------------------

    async def WatchIdentityEvents(
        self, request: pb.WatchIdentityEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchIdentityEventsResponse]:
        async for event in events.serve_watch(
            self._hub, request.start, pb.WatchIdentityEventsResponse.FromString
        ):
            yield event
