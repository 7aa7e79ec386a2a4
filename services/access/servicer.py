"""The access gRPC servicer: parse, authorize, call the domain and store, answer."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import grpc

from services.access import entitlements, ledger, messages, party_setup
from services.access.bands import BandDirectory
from services.access.decisions import Wearer
from services.access.entitlements import ACTIVE, REVOKED
from services.access.identity_client import IdentityClient
from services.access.payments import Cashier, Purchase
from services.access.records import AccessPointState, BandRule, ChargeRow, EntitlementRecord
from services.access.store import AccessStore, TopUpWrite
from services.access.taps import PointStates, TapDesk
from services.access.venue_index import PointInfo, VenueIndex
from services.platform import events, idempotency, paging, validation
from services.platform.clock import VenueClock
from services.platform.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.platform.idempotency import Idem
from services.platform.principal import Principal, caller
from venue.access.v1 import access_pb2 as pb
from venue.access.v1 import access_pb2_grpc
from venue.identity.v1 import identity_pb2 as ipb

Context = grpc.aio.ServicerContext[Any, Any]

_BAND_UID = re.compile(r"^[0-9A-Za-z:_-]{4,64}$")
MAX_STATEMENT_PERIOD = timedelta(days=800)
MAX_WATCH_ATTRACTIONS = 200


def _idem(method: str, key: str, request: Any, *, required: bool = False) -> Idem:
    return Idem(
        scope=f"{method}:{caller().log_id}",
        key=idempotency.check_key(key, required=required),
        digest=idempotency.request_hash(request),
    )


def hot_digest(request: pb.TapRequest | pb.ChargeRequest) -> bytes:
    """`idempotency.request_hash` of a tap or charge, byte for byte, without
    copying the request (the hot paths' cost): the key is cleared for the hash
    and put back."""
    key = request.idempotency_key
    request.idempotency_key = ""
    try:
        return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
    finally:
        request.idempotency_key = key


def _band_uid(value: str) -> str:
    if not value:
        raise InvalidArgument("band_uid", "required")
    if not _BAND_UID.match(value):
        raise InvalidArgument("band_uid", "4 to 64 characters of 0-9, A-Z, a-z, ':', '_' or '-'")
    return value


def _entitlement_cursor(after: list[Any] | None) -> tuple[datetime, str] | None:
    """(created_at, entitlement_id) of the last entitlement of the previous page."""
    if after is None:
        return None
    try:
        created_at, entitlement_id = after
        return datetime.fromisoformat(created_at), str(uuid.UUID(entitlement_id))
    except (TypeError, ValueError):
        raise InvalidArgument("page.page_token", "not a token from this list") from None


def _own_party(who: Principal, party_id: str) -> None:
    if who.is_guest and who.party_id != party_id:
        raise PermissionDenied("not allowed to act for another party")


class AccessServicer(access_pb2_grpc.AccessServiceServicer):
    def __init__(
        self,
        store: AccessStore,
        venue: VenueIndex,
        directory: BandDirectory,
        states: PointStates,
        taps: TapDesk,
        cashier: Cashier,
        hub: events.EventHub,
        clock: VenueClock,
        identity: IdentityClient,
    ) -> None:
        self._store = store
        self._venue = venue
        self._directory = directory
        self._states = states
        self._taps = taps
        self._cashier = cashier
        self._hub = hub
        self._clock = clock
        self._identity = identity

    # --- helpers --------------------------------------------------------------------

    async def _guest(self, guest_id: str) -> tuple[str, int]:
        """(party_id, role) of a guest, from the band map or else identity."""
        known = self._directory.guest(guest_id)
        if known is not None:
            return known.party_id, known.role
        found = await self._identity.guest(guest_id)
        if found is None:
            raise NotFound("guest", guest_id)
        return found

    def _require_adult(self, who: Principal) -> None:
        """Money and PIN rules are for the party's adults (children have no
        login of their own; this holds even if one somehow had a token)."""
        if who.is_guest:
            known = self._directory.guest(who.subject)
            if known is not None and known.role == ipb.PARTY_ROLE_CHILD:
                raise PermissionDenied("only an adult of the party may do this")

    def _party(self, party_id: str) -> str:
        party_id = validation.ident(party_id, "party_id")
        _own_party(caller(), party_id)
        return party_id

    def _now(self) -> datetime:
        return self._clock.now()

    # --- entitlements ---------------------------------------------------------------

    async def CreateEntitlement(
        self, request: pb.CreateEntitlementRequest, context: Context
    ) -> pb.CreateEntitlementResponse:
        guest_id = validation.ident(request.guest_id, "guest_id")
        fields = entitlements.draft_from_request(
            request.WhichOneof("details"), request, self._venue
        )
        external_ref = validation.text(
            request.external_ref, "external_ref", max_len=100, required=False
        )
        who = caller()
        entitlements.require_issuer(who, fields["kind"], "issue")
        idem = _idem("CreateEntitlement", request.idempotency_key, request)
        party_id, _ = await self._guest(guest_id)
        now = self._now()
        record = entitlements.with_validity(
            EntitlementRecord(
                entitlement_id=str(uuid.uuid4()),
                status=ACTIVE,
                guest_id=guest_id,
                party_id=party_id,
                external_ref=external_ref,
                created_at=now,
                created_by=who.log_id,
                **fields,
            ),
            self._venue,
        )

        async def work(conn: asyncpg.Connection) -> pb.CreateEntitlementResponse:
            created = await self._store.create_entitlement(conn, record)
            return pb.CreateEntitlementResponse(entitlement=messages.entitlement_pb(created, now))

        reply = await self._store.idempotent(
            idem, pb.CreateEntitlementResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._hub.poke()
        return reply

    async def _readable_entitlement(self, entitlement_id: str) -> EntitlementRecord:
        record = await self._store.get_entitlement(
            validation.ident(entitlement_id, "entitlement_id")
        )
        _own_party(caller(), record.party_id)
        return record

    async def GetEntitlement(
        self, request: pb.GetEntitlementRequest, context: Context
    ) -> pb.GetEntitlementResponse:
        record = await self._readable_entitlement(request.entitlement_id)
        return pb.GetEntitlementResponse(entitlement=messages.entitlement_pb(record, self._now()))

    async def ListEntitlements(
        self, request: pb.ListEntitlementsRequest, context: Context
    ) -> pb.ListEntitlementsResponse:
        if bool(request.guest_id) == bool(request.party_id):
            raise InvalidArgument("guest_id", "give exactly one of guest_id and party_id")
        guest_id = party_id = None
        if request.guest_id:
            guest_id = validation.ident(request.guest_id, "guest_id")
            if caller().is_guest:
                _own_party(caller(), (await self._guest(guest_id))[0])
        else:
            party_id = self._party(request.party_id)
        kinds = [
            validation.enum_value(k, pb.EntitlementKind, f"kinds[{i}]")
            for i, k in enumerate(request.kinds)
        ]
        size = paging.page_size(request.page.page_size)
        after = _entitlement_cursor(paging.decode("entitlements", request.page.page_token))
        now = self._now()
        found = await self._store.list_entitlements(
            guest_id=guest_id,
            party_id=party_id,
            kinds=kinds,
            current_only=not request.include_inactive,
            now=now,
            after=after,
            limit=size + 1,
        )
        token = paging.next_token(
            "entitlements",
            found,
            size,
            lambda e: [e.created_at.isoformat() if e.created_at else "", e.entitlement_id],
        )
        return pb.ListEntitlementsResponse(
            entitlements=[messages.entitlement_pb(e, now) for e in found[:size]],
            next_page_token=token,
        )

    async def UpdateEntitlement(
        self, request: pb.UpdateEntitlementRequest, context: Context
    ) -> pb.UpdateEntitlementResponse:
        entitlement_id = validation.ident(request.entitlement_id, "entitlement_id")
        entitlements.time_range(request.window, "window", entitlements.MAX_STAY)
        idem = _idem("UpdateEntitlement", request.idempotency_key, request)
        who = caller()
        now = self._now()

        def change(current: EntitlementRecord) -> EntitlementRecord:
            entitlements.require_issuer(who, current.kind, "move")
            start, end = entitlements.movable_window(current.kind, request.window)
            if current.status != ACTIVE:
                raise FailedPrecondition(
                    "only an active entitlement can be moved",
                    reason="NOT_ACTIVE",
                    subject="entitlement_id",
                )
            moved = dataclasses.replace(current, window_start=start, window_end=end)
            return entitlements.with_validity(moved, self._venue)

        async def work(conn: asyncpg.Connection) -> pb.UpdateEntitlementResponse:
            updated = await self._store.change_entitlement(conn, entitlement_id, change, now)
            return pb.UpdateEntitlementResponse(entitlement=messages.entitlement_pb(updated, now))

        reply = await self._store.idempotent(
            idem, pb.UpdateEntitlementResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._hub.poke()
        return reply

    async def RevokeEntitlement(
        self, request: pb.RevokeEntitlementRequest, context: Context
    ) -> pb.RevokeEntitlementResponse:
        entitlement_id = validation.ident(request.entitlement_id, "entitlement_id")
        reason = validation.enum_value(request.reason, pb.RevocationReason, "reason")
        who = caller()
        now = self._now()

        def change(current: EntitlementRecord) -> EntitlementRecord | None:
            if not entitlements.may_revoke(who, current.kind):
                raise PermissionDenied("not allowed to revoke this kind of entitlement")
            if current.status == REVOKED:
                return None
            return dataclasses.replace(
                current, status=REVOKED, revoked_at=now, revocation_reason=reason
            )

        async def work(conn: asyncpg.Connection) -> pb.RevokeEntitlementResponse:
            revoked = await self._store.change_entitlement(conn, entitlement_id, change, now)
            return pb.RevokeEntitlementResponse(entitlement=messages.entitlement_pb(revoked, now))

        reply = await self._store.transaction(work)
        self._hub.poke()
        return reply

    async def SetUpParty(
        self, request: pb.SetUpPartyRequest, context: Context
    ) -> pb.SetUpPartyResponse:
        draft = party_setup.parse(request, self._venue)
        who = caller()
        if draft.ticket is not None:
            entitlements.require_issuer(who, draft.ticket["kind"], "issue")
        if draft.room_key is not None:
            entitlements.require_issuer(who, draft.room_key["kind"], "issue")
        idem = _idem("SetUpParty", request.idempotency_key, request, required=True)
        party_id = draft.party_id
        await self._require_members(party_id, draft)
        now = self._now()

        def record(guest_id: str, fields: dict[str, Any]) -> EntitlementRecord:
            return entitlements.with_validity(
                EntitlementRecord(
                    entitlement_id=str(uuid.uuid4()),
                    status=ACTIVE,
                    guest_id=guest_id,
                    party_id=party_id,
                    external_ref=draft.external_ref,
                    created_at=now,
                    created_by=who.log_id,
                    **fields,
                ),
                self._venue,
            )

        ticket = draft.ticket
        records = [record(g, ticket) for g in draft.ticket_guest_ids] if ticket else []
        if draft.room_key is not None:
            records.append(record(draft.room_key_guest_id, draft.room_key))
        top_up = (
            TopUpWrite(
                ledger.top_up_postings(party_id, draft.funding_source, draft.top_up_minor),
                draft.top_up_minor,
                draft.payment_reference,
            )
            if draft.top_up_minor is not None
            else None
        )
        pin_hash = self._cashier.pin_hash(party_id, draft.pin) if draft.pin is not None else None

        async def work(conn: asyncpg.Connection) -> pb.SetUpPartyResponse:
            created, entry_id = await self._store.set_up_party(
                conn,
                party_id=party_id,
                records=records,
                currency=self._venue.currency,
                top_up=top_up,
                pin_hash=pin_hash,
                at=now,
            )
            return pb.SetUpPartyResponse(
                entitlements=[messages.entitlement_pb(r, now) for r in created],
                top_up_entry_id=entry_id,
            )

        reply = await self._store.idempotent(
            idem, pb.SetUpPartyResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._hub.poke()
        reply.wallet.CopyFrom(await self._wallet_pb(party_id))
        return reply

    async def _require_members(self, party_id: str, draft: party_setup.SetUpDraft) -> None:
        """Every guest the set-up names is of the party (one question to identity
        when the band map has not heard of them yet); the party exists."""
        named = draft.guest_ids
        known = {g: self._directory.guest(g) for g in named}
        if named and all(k is not None and k.party_id == party_id for k in known.values()):
            return
        if not named and self._directory.has_party(party_id):
            return
        members = await self._identity.party_members(party_id)
        if members is None:
            raise NotFound("party", party_id)
        for i, guest_id in enumerate(draft.ticket_guest_ids):
            if guest_id not in members:
                raise InvalidArgument(f"ticket_guest_ids[{i}]", "not a member of the party")
        if draft.room_key_guest_id and draft.room_key_guest_id not in members:
            raise InvalidArgument("room_key_guest_id", "not a member of the party")

    # --- access points --------------------------------------------------------------

    async def ListAccessPoints(
        self, request: pb.ListAccessPointsRequest, context: Context
    ) -> pb.ListAccessPointsResponse:
        if request.kind:
            validation.enum_value(request.kind, pb.AccessPointKind, "kind")
        attraction = validation.ref(request.attraction_id, "attraction_id", required=False)
        size = paging.page_size(request.page.page_size)
        after = paging.decode("access_points", request.page.page_token)
        start = 0
        if after is not None:
            if len(after) != 1 or not isinstance(after[0], int) or after[0] < 0:
                raise InvalidArgument("page.page_token", "not a token from this list")
            start = after[0] + 1
        chosen: list[tuple[int, PointInfo]] = []
        points = self._venue.ordered_points
        index = start
        while index < len(points) and len(chosen) <= size:
            point = points[index]
            if (not request.kind or point.kind == request.kind) and (
                not attraction or point.attraction_id == attraction
            ):
                chosen.append((index, point))
            index += 1
        token = paging.next_token("access_points", chosen, size, lambda pair: [pair[0]])
        return pb.ListAccessPointsResponse(
            access_points=[
                messages.access_point_pb(p, self._states.get(p.access_point_id))
                for _, p in chosen[:size]
            ],
            next_page_token=token,
        )

    def _point(self, access_point_id: str) -> PointInfo:
        ap = validation.ref(access_point_id, "access_point_id")
        point = self._venue.point(ap)
        if point is None:
            raise NotFound("access point", ap)
        return point

    async def GetAccessPoint(
        self, request: pb.GetAccessPointRequest, context: Context
    ) -> pb.GetAccessPointResponse:
        point = self._point(request.access_point_id)
        return pb.GetAccessPointResponse(
            access_point=messages.access_point_pb(point, self._states.get(point.access_point_id))
        )

    async def SetAccessPointState(
        self, request: pb.SetAccessPointStateRequest, context: Context
    ) -> pb.SetAccessPointStateResponse:
        point = self._point(request.access_point_id)
        state = validation.enum_value(request.state, pb.AccessPointState, "state")
        closing = state == pb.ACCESS_POINT_STATE_CLOSED
        reason = validation.text(request.reason, "reason", max_len=200, required=closing)
        record = AccessPointState(
            point.access_point_id, not closing, reason if closing else "", self._now()
        )
        await self._store.set_point_state(
            record,
            caller().log_id,
            point.attraction_id,
            lambda s: messages.access_point_state_changed(messages.access_point_pb(point, s)),
        )
        self._states.put(record)
        self._hub.poke()
        return pb.SetAccessPointStateResponse(access_point=messages.access_point_pb(point, record))

    # --- taps -----------------------------------------------------------------------

    async def Tap(self, request: pb.TapRequest, context: Context) -> pb.TapResponse:
        who = caller()
        point = self._point(request.access_point_id)
        if who.venue_ref != point.access_point_id:
            raise PermissionDenied("this device serves another access point")
        if who.device_kind not in point.devices:
            raise PermissionDenied("this kind of device does not tap at this access point")
        uid = _band_uid(request.band_uid)
        tapped_at = validation.required_timestamp(request.tapped_at, "tapped_at")
        key = idempotency.check_key(request.idempotency_key, required=True)
        return await self._taps.tap(
            point,
            uid,
            tapped_at,
            f"Tap:{who.log_id}",
            key,
            hot_digest(request),
        )

    # --- wallets --------------------------------------------------------------------

    async def _wallet_pb(self, party_id: str) -> pb.Wallet:
        record = await self._store.get_wallet(party_id)
        currency = self._venue.currency
        wallet = pb.Wallet(
            party_id=party_id,
            balance=messages.money(record.balance_minor if record else 0, currency),
            pin_set=bool(record and record.pin_set),
            pin_locked=bool(record and record.pin_locked),
            pin_required_above=messages.money(self._venue.pin_threshold_minor, currency),
        )
        if record is not None and record.updated_at is not None:
            wallet.updated_at.CopyFrom(validation.to_timestamp(record.updated_at))
        bands = self._directory.party_bands(party_id)
        if bands:
            ids = [b.band_id for b in bands]
            rules = await self._store.band_rules(ids)
            spent = await self._store.spent(ids, self._venue.day_of(self._now()))
            wallet.bands.extend(self._band_spending(b, rules.get(b.band_id), spent) for b in bands)
        return wallet

    def _band_spending(
        self, band: Wearer, rule: BandRule | None, spent: dict[str, int]
    ) -> pb.BandSpending:
        currency = self._venue.currency
        message = pb.BandSpending(
            band_id=band.band_id,
            guest_id=band.guest_id,
            charging_enabled=ledger.charging_enabled(
                rule.charging_enabled if rule else None, band.role
            ),
            spent_today=messages.money(spent.get(band.band_id, 0), currency),
        )
        if rule is not None and rule.daily_limit_minor is not None:
            message.daily_limit.CopyFrom(messages.money(rule.daily_limit_minor, currency))
        return message

    async def GetWallet(
        self, request: pb.GetWalletRequest, context: Context
    ) -> pb.GetWalletResponse:
        party_id = self._party(request.party_id)
        return pb.GetWalletResponse(wallet=await self._wallet_pb(party_id))

    async def TopUp(self, request: pb.TopUpRequest, context: Context) -> pb.TopUpResponse:
        party_id = self._party(request.party_id)
        amount = ledger.money(
            request.amount, "amount", self._venue.currency, maximum=ledger.MAX_TOP_UP_MINOR
        )
        assert amount is not None
        source = validation.enum_value(request.funding_source, pb.FundingSource, "funding_source")
        reference = validation.text(
            request.payment_reference, "payment_reference", max_len=100, required=False
        )
        idem = _idem("TopUp", request.idempotency_key, request, required=True)
        self._require_adult(caller())
        await self._guard_party_exists(party_id)
        now = self._now()

        async def work(conn: asyncpg.Connection) -> pb.TopUpResponse:
            entry_id, _ = await self._store.top_up(
                conn,
                party_id=party_id,
                currency=self._venue.currency,
                postings=ledger.top_up_postings(party_id, source, amount),
                amount_minor=amount,
                reference=reference,
                at=now,
            )
            return pb.TopUpResponse(entry_id=entry_id)

        reply = await self._store.idempotent(
            idem, pb.TopUpResponse.FromString, lambda r: r.SerializeToString(), work
        )
        reply.wallet.CopyFrom(await self._wallet_pb(party_id))
        return reply

    async def _guard_party_exists(self, party_id: str) -> None:
        """A wallet is opened only for a party identity knows (a guest's token
        already names their own)."""
        if caller().is_guest or self._directory.has_party(party_id):
            return
        if not await self._identity.party_exists(party_id):
            raise NotFound("party", party_id)

    async def Charge(self, request: pb.ChargeRequest, context: Context) -> pb.ChargeResponse:
        who = caller()
        merchant_id = validation.ref(request.merchant_id, "merchant_id")
        payer = request.WhichOneof("payer")
        if payer is None:
            raise InvalidArgument("payer", "required: band_uid or guest_id")
        if who.is_device():
            till_merchant = self._venue.merchant_of_till(who.venue_ref)
            if till_merchant is None:
                raise PermissionDenied("this device is not a till of the venue")
            if till_merchant != merchant_id:
                raise PermissionDenied("a till charges only for its own merchant")
            if payer != "band_uid":
                raise PermissionDenied("a till charges a band")
        else:
            if not self._venue.is_merchant(merchant_id):
                raise InvalidArgument("merchant_id", "not a merchant of this venue")
            if payer != "guest_id":
                raise PermissionDenied("services charge the signed-in guest, by guest_id")
        currency = self._venue.currency
        amount = ledger.money(request.amount, "amount", currency, maximum=ledger.MAX_CHARGE_MINOR)
        assert amount is not None
        if request.items and ledger.items_total(request.items, currency) != amount:
            raise InvalidArgument("amount", "must equal the sum of the items")
        pin = ledger.pin(request.pin) if request.HasField("pin") else None
        charged_at = validation.required_timestamp(request.charged_at, "charged_at")
        key = idempotency.check_key(request.idempotency_key, required=True)
        if payer == "band_uid":
            wearer = await self._directory.wearer(_band_uid(request.band_uid))
        else:
            guest_id = validation.ident(request.guest_id, "guest_id")
            party_id, role = await self._guest(guest_id)
            band_id = self._directory.active_band_of(guest_id) or ""
            wearer = Wearer(band_id, guest_id, party_id, True, role, 0)
        purchase = Purchase(
            merchant_id=merchant_id,
            at_till=payer == "band_uid",
            items=request.items,
            amount_minor=amount,
            pin=pin,
            charged_at=charged_at,
            scope=f"Charge:{who.log_id}",
            key=key,
            digest=hot_digest(request),
            created_by=who.log_id,
        )
        return await self._cashier.charge(purchase, wearer)

    def _may_see_charge(self, who: Principal, charge: ChargeRow) -> None:
        if who.is_device():
            if self._venue.merchant_of_till(who.venue_ref) != charge.merchant_id:
                raise PermissionDenied("a till sees only its own merchant's charges")
        elif who.is_guest and who.party_id != charge.party_id:
            raise PermissionDenied("not allowed to see another party's charges")

    async def GetCharge(
        self, request: pb.GetChargeRequest, context: Context
    ) -> pb.GetChargeResponse:
        charge = await self._store.get_charge(validation.ident(request.charge_id, "charge_id"))
        self._may_see_charge(caller(), charge)
        return pb.GetChargeResponse(charge=messages.charge_record_pb(charge))

    async def Refund(self, request: pb.RefundRequest, context: Context) -> pb.RefundResponse:
        charge_id = validation.ident(request.charge_id, "charge_id")
        requested = None
        if request.HasField("amount"):
            requested = ledger.money(
                request.amount, "amount", self._venue.currency, maximum=ledger.MAX_CHARGE_MINOR
            )
        reason = validation.text(request.reason, "reason", max_len=200, required=False)
        at = validation.timestamp(request.refunded_at, "refunded_at", required=False)
        idem = _idem("Refund", request.idempotency_key, request, required=True)
        who = caller()
        refunded_at = at or self._now()

        def decide(charge: ChargeRow) -> int:
            if who.is_device():
                self._may_see_charge(who, charge)
            elif who.is_service() and charge.created_by != who.log_id:
                raise PermissionDenied("a service refunds only its own charges")
            if charge.result != pb.CHARGE_RESULT_APPROVED:
                raise FailedPrecondition(
                    "a declined charge has nothing to refund",
                    reason="NOT_APPROVED",
                    subject="charge_id",
                )
            return ledger.refund_amount(requested, charge.amount_minor, charge.refunded_minor)

        async def work(conn: asyncpg.Connection) -> pb.RefundResponse:
            refund_id, amount, after = await self._store.refund(
                conn,
                charge_id=charge_id,
                decide=decide,
                reason=reason,
                at=refunded_at,
                by=who.log_id,
                postings=lambda c, a: ledger.refund_postings(c.party_id, c.merchant_id, a),
            )
            return pb.RefundResponse(
                refund_id=refund_id,
                amount=messages.money(amount, after.currency),
                charge=messages.charge_record_pb(after),
            )

        reply = await self._store.idempotent(
            idem, pb.RefundResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._hub.poke()
        return reply

    async def SetPin(self, request: pb.SetPinRequest, context: Context) -> pb.SetPinResponse:
        party_id = self._party(request.party_id)
        pin = ledger.pin(request.pin)
        self._require_adult(caller())
        await self._guard_party_exists(party_id)
        await self._store.set_pin(
            party_id, self._cashier.pin_hash(party_id, pin), self._venue.currency, self._now()
        )
        return pb.SetPinResponse(wallet=await self._wallet_pb(party_id))

    async def SetBandSpendingLimit(
        self, request: pb.SetBandSpendingLimitRequest, context: Context
    ) -> pb.SetBandSpendingLimitResponse:
        band_id = validation.ident(request.band_id, "band_id")
        limit = None
        if request.HasField("daily_limit"):
            limit = ledger.money(
                request.daily_limit,
                "daily_limit",
                self._venue.currency,
                maximum=ledger.MAX_CHARGE_MINOR,
            )
        band = self._directory.band(band_id)
        if band is None:
            raise NotFound("band", band_id)
        who = caller()
        _own_party(who, band.party_id)
        self._require_adult(who)
        if not band.active:
            raise FailedPrecondition(
                "this band is deactivated", reason="BAND_DEACTIVATED", subject="band_id"
            )
        rule = BandRule(band_id, band.guest_id, request.charging_enabled, limit)
        await self._store.set_band_rule(band.party_id, rule, self._venue.currency, self._now())
        spent = await self._store.spent([band_id], self._venue.day_of(self._now()))
        return pb.SetBandSpendingLimitResponse(band=self._band_spending(band, rule, spent))

    async def GetStatement(
        self, request: pb.GetStatementRequest, context: Context
    ) -> pb.GetStatementResponse:
        party_id = self._party(request.party_id)
        period = entitlements.time_range(
            request.period, "period", MAX_STATEMENT_PERIOD, required=False
        )
        size = paging.page_size(request.page.page_size)
        after = paging.decode("statement", request.page.page_token)
        before_seq = None
        if after is not None:
            if len(after) != 1 or not isinstance(after[0], int):
                raise InvalidArgument("page.page_token", "not a token from this list")
            before_seq = after[0]
        statement = await self._store.statement(
            party_id,
            period[0] if period else None,
            period[1] if period else None,
            before_seq,
            size + 1,
        )
        token = paging.next_token("statement", statement.rows, size, lambda r: [r.seq])
        return pb.GetStatementResponse(
            lines=[messages.statement_line_pb(r) for r in statement.rows[:size]],
            balance=messages.money(statement.balance_minor, self._venue.currency),
            next_page_token=token,
        )

    # --- events -------------------------------------------------------------------

    async def WatchAccessEvents(
        self, request: pb.WatchAccessEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchAccessEventsResponse]:
        kinds = {
            messages.EVENT_KINDS[validation.enum_value(k, pb.AccessEventKind, f"kinds[{i}]")]
            for i, k in enumerate(request.kinds)
        }
        if len(request.attraction_ids) > MAX_WATCH_ATTRACTIONS:
            raise InvalidArgument("attraction_ids", f"at most {MAX_WATCH_ATTRACTIONS}")
        attractions = {
            validation.ref(a, f"attraction_ids[{i}]") for i, a in enumerate(request.attraction_ids)
        }
        after = events.start_cursor(request.start)
        async for event in self._hub.subscribe(after, kinds or None):
            if (
                attractions
                and event.kind in messages.BY_ATTRACTION
                and event.key not in attractions
            ):
                continue
            response = pb.WatchAccessEventsResponse.FromString(event.payload)
            response.cursor = event.cursor.encode()
            response.occurred_at.FromDatetime(event.occurred_at)
            if event.traceparent:
                response.traceparent = event.traceparent
            yield response
