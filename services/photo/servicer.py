"""The photo gRPC servicer: parse, authorize, call the store or the domain, answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
from opentelemetry import trace

from services.photo import captures as capture_rules
from services.photo import messages
from services.photo.bands import Bands, Wearer, band_uid
from services.photo.captures import MAX_BATCH, CheckedCapture
from services.photo.catalog import Catalog
from services.photo.linker import Linker
from services.photo.purchases import Purchases
from services.photo.records import PhotoRecord, StatsRow
from services.photo.store import PhotoStore
from services.photo.telemetry import PhotoMetrics
from services.platform import events, idempotency, paging, semconv, validation
from services.platform.clock import VenueClock
from services.platform.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.platform.idempotency import Idem
from services.platform.principal import caller
from venue.common.v1 import common_pb2
from venue.photo.v1 import photo_pb2 as pb
from venue.photo.v1 import photo_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

# Packages may be bought for a visit this far ahead.
PACKAGE_AHEAD = timedelta(days=366)
MAX_STATS_PERIOD = timedelta(days=366)


def _idem(method: str, key: str, request: Any) -> Idem:
    return Idem(
        scope=f"{method}:{caller().log_id}",
        key=idempotency.check_key(key),
        digest=idempotency.request_hash(request),
    )


def _after(token: list[Any] | None, field: str = "page.page_token") -> tuple[datetime, str] | None:
    if token is None:
        return None
    try:
        at, ident = token
        return datetime.fromisoformat(at), validation.ident(ident, field)
    except (TypeError, ValueError, InvalidArgument):
        raise InvalidArgument(field, "not a token from this list") from None


def _key(at: datetime, ident: str) -> list[str]:
    return [at.isoformat(), ident]


def _own_party(party_id: str, field: str = "party_id") -> str:
    party_id = validation.ident(party_id, field)
    who = caller()
    if who.is_guest and who.party_id != party_id:
        raise PermissionDenied("a guest sees only their own party's photos")
    return party_id


def _period(message: common_pb2.TimeRange, field: str) -> tuple[datetime | None, datetime | None]:
    start = validation.timestamp(message.start, f"{field}.start", required=False)
    end = validation.timestamp(message.end, f"{field}.end", required=False)
    if start is not None and end is not None and end <= start:
        raise InvalidArgument(f"{field}.end", "must be after the start")
    return start, end


def _date(message: common_pb2.VenueDate, field: str) -> date:
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        raise InvalidArgument(field, "not a calendar date") from None


def _tap_outcome(wearer: Wearer | None) -> tuple[int, str] | None:
    """The outcome of a band tap that cannot link, or None if it can."""
    if wearer is None:
        return pb.BAND_TAP_OUTCOME_UNKNOWN_BAND, "Band not recognized: please see a cast member"
    if not wearer.active:
        return pb.BAND_TAP_OUTCOME_BAND_DEACTIVATED, "This band is no longer active"
    return None


class PhotoServicer(photo_pb2_grpc.PhotoServiceServicer):
    def __init__(
        self,
        store: PhotoStore,
        catalog: Catalog,
        linker: Linker,
        bands: Bands,
        purchases: Purchases,
        hub: events.EventHub,
        clock: VenueClock,
        telemetry: PhotoMetrics,
    ) -> None:
        self._metrics = telemetry
        self._store = store
        self._catalog = catalog
        self._linker = linker
        self._bands = bands
        self._purchases = purchases
        self._hub = hub
        self._clock = clock
        self._linkable = frozenset(c.camera_id for c in catalog.ride_cameras)
        self._retention = catalog.retention

    # --- devices -------------------------------------------------------------

    async def IngestCaptures(
        self, request: pb.IngestCapturesRequest, context: Context
    ) -> pb.IngestCapturesResponse:
        if not request.captures:
            raise InvalidArgument("captures", "required: at least one capture")
        if len(request.captures) > MAX_BATCH:
            raise InvalidArgument("captures", f"at most {MAX_BATCH} captures per batch")
        idempotency.check_key(request.idempotency_key)
        who = caller()
        now = self._clock.now()
        checked = [
            capture_rules.check(c, who.venue_ref, self._catalog, now) for c in request.captures
        ]
        result = await self._store.ingest(
            who.subject,
            [c if isinstance(c, CheckedCapture) else None for c in checked],
            self._linkable,
            now,
        )
        reply = pb.IngestCapturesResponse()
        for capture, verdict, (photo_id, outcome, reason) in zip(
            request.captures, checked, result.acks, strict=True
        ):
            ack = reply.acks.add(capture_id=capture.capture_id)
            if isinstance(verdict, CheckedCapture):
                ack.outcome = outcome  # type: ignore[assignment]
                ack.reject_reason = reason  # type: ignore[assignment]
                ack.photo_id = photo_id
            else:
                ack.outcome = pb.CAPTURE_OUTCOME_REJECTED
                ack.reject_reason = verdict  # type: ignore[assignment]
            if ack.outcome == pb.CAPTURE_OUTCOME_REJECTED:
                self._metrics.captures("rejected")
        self._linker.captured(result.captured)
        self._hub.poke()
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(semconv.CAMERA, who.venue_ref)
            span.set_attribute("venue.photo.captures", len(request.captures))
            span.set_attribute("venue.photo.accepted", len(result.captured))
        return reply

    async def PhotographerTap(
        self, request: pb.PhotographerTapRequest, context: Context
    ) -> pb.PhotographerTapResponse:
        uid = band_uid(request.band_uid)
        tapped_at = validation.required_timestamp(request.tapped_at, "tapped_at")
        now = self._clock.now()
        if tapped_at > now + timedelta(seconds=self._catalog.config.future_seconds):
            raise InvalidArgument("tapped_at", "later than venue time now")
        who = caller()
        camera = self._catalog.camera(who.venue_ref)
        if camera is None:
            raise FailedPrecondition(
                "this device is not registered for a camera of the venue",
                reason="DEVICE_NOT_PLACED",
            )
        idem = _idem("PhotographerTap", request.idempotency_key, request)
        wearer = await self._bands.resolve(uid)
        refused = _tap_outcome(wearer)
        expires = tapped_at + timedelta(minutes=self._catalog.config.session_minutes)

        async def work(conn: Any) -> pb.PhotographerTapResponse:
            if refused is not None or wearer is None:
                # Still ends the device's previous session: its next photos
                # must not go to the guest before.
                await self._store.start_session(
                    conn, who.subject, camera.camera_id, None, None, tapped_at, tapped_at, now
                )
                outcome, text = refused or (pb.BAND_TAP_OUTCOME_UNKNOWN_BAND, "")
                return pb.PhotographerTapResponse(outcome=outcome, display_message=text)  # type: ignore[arg-type]
            session, _ = await self._store.start_session(
                conn,
                who.subject,
                camera.camera_id,
                wearer.guest_id,
                wearer.party_id,
                tapped_at,
                expires,
                now,
            )
            return pb.PhotographerTapResponse(
                outcome=pb.BAND_TAP_OUTCOME_LINKED,
                display_message="Photos now go to this guest's party",
                session_id=session.session_id,
                expires_at=validation.to_timestamp(session.expires_at),
            )

        reply = await self._store.idempotent(
            idem, pb.PhotographerTapResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._hub.poke()
        if wearer is not None:
            trace.get_current_span().set_attribute(semconv.GUEST, wearer.guest_id)
        return reply

    async def ListKioskPhotos(
        self, request: pb.ListKioskPhotosRequest, context: Context
    ) -> pb.ListKioskPhotosResponse:
        attraction = validation.ref(request.attraction_id, "attraction_id")
        since = validation.timestamp(request.since, "since", required=False)
        size = paging.page_size(request.page.page_size)
        listing = f"kiosk:{attraction}"
        after = _after(paging.decode(listing, request.page.page_token))
        who = caller()
        if who.is_device():
            if self._catalog.kiosks.get(who.venue_ref) != attraction:
                raise PermissionDenied("a kiosk shows only its own attraction's photos")
        elif not self._catalog.is_attraction(attraction):
            raise NotFound("attraction", attraction)
        if since is None:
            since = self._clock.now() - timedelta(minutes=self._catalog.config.kiosk_minutes)
        photos = await self._store.kiosk_photos(attraction, since, after, size + 1)
        token = paging.next_token(listing, photos, size, lambda p: _key(p.captured_at, p.photo_id))
        return pb.ListKioskPhotosResponse(
            photos=[messages.kiosk_photo_pb(p) for p in photos[:size]], next_page_token=token
        )

    async def ClaimPhoto(
        self, request: pb.ClaimPhotoRequest, context: Context
    ) -> pb.ClaimPhotoResponse:
        photo_id = validation.ident(request.photo_id, "photo_id")
        uid = band_uid(request.band_uid)
        tapped_at = validation.required_timestamp(request.tapped_at, "tapped_at")
        now = self._clock.now()
        config = self._catalog.config
        if tapped_at > now + timedelta(seconds=config.future_seconds):
            raise InvalidArgument("tapped_at", "later than venue time now")
        attraction = self._catalog.kiosks.get(caller().venue_ref)
        if attraction is None:
            raise FailedPrecondition(
                "this device is not registered for a photo kiosk of the venue",
                reason="DEVICE_NOT_PLACED",
            )
        idem = _idem("ClaimPhoto", request.idempotency_key, request)
        wearer = await self._bands.resolve(uid)
        refused = _tap_outcome(wearer)

        async def work(conn: Any) -> pb.ClaimPhotoResponse:
            if refused is not None or wearer is None:
                outcome, text = refused or (pb.BAND_TAP_OUTCOME_UNKNOWN_BAND, "")
                return pb.ClaimPhotoResponse(outcome=outcome, display_message=text)  # type: ignore[arg-type]
            photo = await self._store.photo_for_update(conn, photo_id)
            window = timedelta(minutes=config.claim_minutes)
            skew = timedelta(seconds=config.future_seconds)
            if (
                photo is None
                or photo.attraction_id != attraction
                or not tapped_at - window <= photo.captured_at <= tapped_at + skew
            ):
                return pb.ClaimPhotoResponse(
                    outcome=pb.BAND_TAP_OUTCOME_PHOTO_NOT_AVAILABLE,
                    display_message="This photo can no longer be claimed here",
                )
            new = await self._store.claim(
                conn, photo, wearer.party_id, wearer.guest_id, pb.LINK_SOURCE_KIOSK_CLAIM, now
            )
            if not new:
                return pb.ClaimPhotoResponse(
                    outcome=pb.BAND_TAP_OUTCOME_ALREADY_LINKED,
                    display_message="This photo is already in your account",
                )
            # Counted here, not on a replayed answer to a retried claim.
            self._metrics.captures("claimed")
            return pb.ClaimPhotoResponse(
                outcome=pb.BAND_TAP_OUTCOME_LINKED,
                display_message="Added to your photos in the app",
            )

        reply = await self._store.idempotent(
            idem, pb.ClaimPhotoResponse.FromString, lambda r: r.SerializeToString(), work
        )
        self._hub.poke()
        return reply

    # --- the guest's photos --------------------------------------------------

    async def ListPhotos(
        self, request: pb.ListPhotosRequest, context: Context
    ) -> pb.ListPhotosResponse:
        party_id = _own_party(request.party_id)
        attraction = validation.ref(request.attraction_id, "attraction_id", required=False)
        start, end = _period(request.period, "period")
        size = paging.page_size(request.page.page_size)
        listing = f"photos:{party_id}"
        after = _after(paging.decode(listing, request.page.page_token))
        views = await self._store.party_photos(party_id, attraction, start, end, after, size + 1)
        token = paging.next_token(
            listing, views, size, lambda v: _key(v.photo.captured_at, v.photo.photo_id)
        )
        return pb.ListPhotosResponse(
            photos=[messages.photo_pb(v, self._retention) for v in views[:size]],
            next_page_token=token,
        )

    async def GetPhoto(self, request: pb.GetPhotoRequest, context: Context) -> pb.GetPhotoResponse:
        photo_id = validation.ident(request.photo_id, "photo_id")
        who = caller()
        view = await self._store.view(photo_id, who.party_id if who.is_guest else None)
        if who.is_guest and not view.links:
            raise PermissionDenied("this photo is not in your party's account")
        return pb.GetPhotoResponse(photo=messages.photo_pb(view, self._retention))

    async def ListSuggestions(
        self, request: pb.ListSuggestionsRequest, context: Context
    ) -> pb.ListSuggestionsResponse:
        party_id = _own_party(request.party_id)
        size = paging.page_size(request.page.page_size)
        listing = f"suggestions:{party_id}"
        after = _after(paging.decode(listing, request.page.page_token))
        found = await self._store.suggestions(party_id, after, size + 1)
        token = paging.next_token(
            listing, found, size, lambda s: _key(s.boarded_at, s.suggestion_id)
        )
        return pb.ListSuggestionsResponse(
            suggestions=[
                messages.suggestion_pb(s, self._reason(s.photo, s.boarded_at), self._retention)
                for s in found[:size]
            ],
            next_page_token=token,
        )

    def _reason(self, photo: PhotoRecord, boarded_at: datetime) -> str:
        name = self._catalog.attraction_name(photo.attraction_id)
        return f"You boarded {name} at {self._catalog.local_clock(boarded_at)}"

    async def RespondToSuggestion(
        self, request: pb.RespondToSuggestionRequest, context: Context
    ) -> pb.RespondToSuggestionResponse:
        suggestion_id = validation.ident(request.suggestion_id, "suggestion_id")
        answer = validation.enum_value(request.answer, pb.SuggestionAnswer, "answer")
        named = [validation.ident(g, "guest_ids") for g in request.guest_ids]
        accept = answer == pb.SUGGESTION_ANSWER_IS_US
        if named and not accept:
            raise InvalidArgument("guest_ids", "only with the answer IS_US")
        who = caller()
        suggestion = await self._store.get_suggestion(suggestion_id)
        if suggestion.party_id != who.party_id:
            raise PermissionDenied("this suggestion is for another party")
        guest_ids: list[str] = []
        if accept:
            members = await self._store.party_members(suggestion.party_id)
            for guest_id in named:
                member = members.get(guest_id)
                if member is None:
                    raise InvalidArgument("guest_ids", "not a member of your party")
                # Someone with photo linking off is linked only by their own claim.
                if not member.photo_linking and guest_id != who.subject:
                    raise FailedPrecondition(
                        "this guest has photo linking turned off",
                        reason="NO_PHOTO_CONSENT",
                        subject="guest_ids",
                    )
            guest_ids = sorted(set(named)) or [
                g for g in suggestion.guest_ids if g in members and members[g].photo_linking
            ]
            guest_ids = guest_ids or [who.subject]
        await self._store.answer_suggestion(suggestion, accept, guest_ids, self._clock.now())
        self._hub.poke()
        if not accept:
            return pb.RespondToSuggestionResponse()
        self._metrics.captures("suggested")
        view = await self._store.view(suggestion.photo.photo_id, suggestion.party_id)
        return pb.RespondToSuggestionResponse(photo=messages.photo_pb(view, self._retention))

    async def UnlinkPhoto(
        self, request: pb.UnlinkPhotoRequest, context: Context
    ) -> pb.UnlinkPhotoResponse:
        photo_id = validation.ident(request.photo_id, "photo_id")
        party_id = _own_party(request.party_id)
        reason = validation.enum_value(request.reason, pb.UnlinkReason, "reason")
        if reason == pb.UNLINK_REASON_SUPERSEDED:
            raise InvalidArgument("reason", "only the service supersedes a link")
        photo = await self._store.get_photo(photo_id)
        if reason == pb.UNLINK_REASON_NOT_US:
            bought = await self._store.single_purchase(party_id, photo_id)
            if bought is not None:
                await self._purchases.refund_wrong_photo(bought)
        if not await self._store.unlink(photo, party_id, reason, self._clock.now()):
            raise NotFound("photo", photo_id)
        self._hub.poke()
        view = await self._store.view(photo_id, party_id)
        return pb.UnlinkPhotoResponse(photo=messages.photo_pb(view, self._retention))

    # --- buying --------------------------------------------------------------

    def _expect(self, price: common_pb2.Money, has: bool, minor: int) -> None:
        if not has:
            raise InvalidArgument("expected_price", "required: the price the app showed")
        if price.currency != self._catalog.currency or price.minor_units != minor:
            raise FailedPrecondition(
                "the price has changed: show the new price to the guest",
                reason="PRICE_CHANGED",
                subject="expected_price",
            )

    async def PurchasePhoto(
        self, request: pb.PurchasePhotoRequest, context: Context
    ) -> pb.PurchasePhotoResponse:
        photo_id = validation.ident(request.photo_id, "photo_id")
        key = idempotency.check_key(request.idempotency_key, required=True)
        if not request.HasField("expected_price"):
            raise InvalidArgument("expected_price", "required: the price the app showed")
        who = caller()
        view = await self._store.view(photo_id, who.party_id)
        if not view.links:
            raise PermissionDenied("this photo is not in your party's account")
        price = self._catalog.config.photo_price_minor
        self._expect(request.expected_price, True, price)
        purchase = await self._purchases.buy(
            scope=f"PurchasePhoto:{who.log_id}",
            key=key,
            digest=idempotency.request_hash(request),
            party_id=who.party_id,
            guest_id=who.subject,
            photo_id=photo_id,
            package_date=None,
            price_minor=price,
        )
        return pb.PurchasePhotoResponse(purchase=purchase)

    async def PurchasePhotoPackage(
        self, request: pb.PurchasePhotoPackageRequest, context: Context
    ) -> pb.PurchasePhotoPackageResponse:
        party_id = _own_party(request.party_id)
        key = idempotency.check_key(request.idempotency_key, required=True)
        if not request.HasField("expected_price"):
            raise InvalidArgument("expected_price", "required: the price the app showed")
        now = self._clock.now()
        today = self._catalog.venue_date(now)
        day = _date(request.date, "date") if request.HasField("date") else today
        if day > today + PACKAGE_AHEAD:
            raise InvalidArgument("date", "too far ahead")
        if day < self._catalog.venue_date(now - self._retention):
            raise InvalidArgument("date", "older than the venue keeps photos")
        price = self._catalog.config.package_price_minor
        self._expect(request.expected_price, True, price)
        who = caller()
        purchase = await self._purchases.buy(
            scope=f"PurchasePhotoPackage:{who.log_id}",
            key=key,
            digest=idempotency.request_hash(request),
            party_id=party_id,
            guest_id=who.subject,
            photo_id=None,
            package_date=day,
            price_minor=price,
        )
        return pb.PurchasePhotoPackageResponse(purchase=purchase)

    async def GetPhotoPrices(
        self, request: pb.GetPhotoPricesRequest, context: Context
    ) -> pb.GetPhotoPricesResponse:
        config, currency = self._catalog.config, self._catalog.currency
        return pb.GetPhotoPricesResponse(
            photo_price=messages.money(config.photo_price_minor, currency),
            package_price=messages.money(config.package_price_minor, currency),
        )

    # --- operations ----------------------------------------------------------

    async def GetPhotoStats(
        self, request: pb.GetPhotoStatsRequest, context: Context
    ) -> pb.GetPhotoStatsResponse:
        start, end = _period(request.period, "period")
        if start is None or end is None:
            if start is not None or end is not None:
                raise InvalidArgument("period", "give both start and end, or neither")
            start, end = self._catalog.day_bounds(self._catalog.venue_date(self._clock.now()))
        if end - start > MAX_STATS_PERIOD:
            raise InvalidArgument("period", "at most a year")
        rows = await self._store.stats(start, end)
        packages = await self._store.packages_bought(
            self._catalog.venue_date(start), self._catalog.venue_date(end) + timedelta(days=1)
        )
        reply = pb.GetPhotoStatsResponse(
            total=_stats_pb(_total(rows), ""),
            by_attraction=[_stats_pb(r, r.attraction_id) for r in rows if r.attraction_id],
        )
        reply.total.purchases += packages
        return reply

    async def WatchPhotoEvents(
        self, request: pb.WatchPhotoEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchPhotoEventsResponse]:
        kinds = []
        for kind in request.kinds:
            if kind not in messages.EVENT_KINDS:
                raise InvalidArgument("kinds", "not a photo event kind")
            kinds.append(messages.EVENT_KINDS[kind])
        attractions = {validation.ref(a, "attraction_ids") for a in request.attraction_ids}
        after = events.start_cursor(request.start)
        async for event in self._hub.subscribe(after, kinds or None):
            if attractions and event.key not in attractions:
                continue
            response = pb.WatchPhotoEventsResponse.FromString(event.payload)
            response.cursor = event.cursor.encode()
            response.occurred_at.FromDatetime(event.occurred_at.astimezone(UTC))
            if event.traceparent:
                response.traceparent = event.traceparent
            yield response


def _total(rows: list[StatsRow]) -> StatsRow:
    fields = [f for f in StatsRow.__dataclass_fields__ if f != "attraction_id"]
    return StatsRow("", **{f: sum(getattr(r, f) for r in rows) for f in fields})


def _stats_pb(row: StatsRow, attraction_id: str) -> pb.PhotoStats:
    return pb.PhotoStats(
        attraction_id=attraction_id,
        captures=row.captures,
        linked_by_boarding=row.linked_by_boarding,
        linked_by_photographer=row.linked_by_photographer,
        linked_by_kiosk=row.linked_by_kiosk,
        linked_by_suggestion=row.linked_by_suggestion,
        pending=row.pending,
        ambiguous=row.ambiguous,
        unlinked=row.unlinked,
        suggestions_offered=row.suggestions_offered,
        suggestions_confirmed=row.suggestions_confirmed,
        suggestions_rejected=row.suggestions_rejected,
        unlinked_as_wrong=row.unlinked_as_wrong,
        purchases=row.purchases,
    )
