"""The itinerary gRPC servicer: parse, authorize, call the plan book or the
nudger, answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import grpc

from services.itinerary import messages, progress, requests, stats
from services.itinerary.directory import Directory
from services.itinerary.facts import VenueFacts
from services.itinerary.feed import Feeds
from services.itinerary.model import DONE, IN_PROGRESS, MISSED, Plan, Window
from services.itinerary.nudger import Nudger
from services.itinerary.plans import PlanBook
from services.itinerary.router import Router
from services.itinerary.store import ItineraryStore, Stored
from services.platform import events, idempotency, paging, validation
from services.platform.clients import Clients
from services.platform.clock import VenueClock
from services.platform.errors import InvalidArgument, NotFound, PermissionDenied
from services.platform.events import EventHub
from services.platform.idempotency import Idem
from services.platform.principal import caller
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.itinerary.v1 import itinerary_pb2 as pb
from venue.itinerary.v1 import itinerary_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

WISH_LIST_CHANGED = int(pb.REPLAN_REASON_WISH_LIST_CHANGED)
SETTINGS_CHANGED = int(pb.REPLAN_REASON_SETTINGS_CHANGED)
BOOKING_CHANGED = int(pb.REPLAN_REASON_BOOKING_CHANGED)
GUEST_REQUESTED = int(pb.REPLAN_REASON_GUEST_REQUESTED)


def _idem(method: str, key: str, request: Any) -> Idem:
    return Idem(
        scope=f"{method}:{caller().log_id}",
        key=idempotency.check_key(key),
        digest=idempotency.request_hash(request),
    )


class ItineraryServicer(itinerary_pb2_grpc.ItineraryServiceServicer):
    def __init__(
        self,
        store: ItineraryStore,
        plans: PlanBook,
        nudger: Nudger,
        feeds: Feeds,
        facts: VenueFacts,
        directory: Directory,
        router: Router,
        clients: Clients,
        clock: VenueClock,
        hub: EventHub,
    ) -> None:
        self._store = store
        self._plans = plans
        self._nudger = nudger
        self._feeds = feeds
        self._facts = facts
        self._directory = directory
        self._router = router
        self._clients = clients
        self._clock = clock
        self._hub = hub

    # --- helpers -------------------------------------------------------------------

    def _today(self) -> Any:
        return self._facts.venue_date(self._clock.now())

    def _own_party(self, party_id: str) -> str:
        party_id = validation.ident(party_id, "party_id")
        who = caller()
        if who.is_guest and who.party_id != party_id:
            raise PermissionDenied("not allowed to act for another party")
        return party_id

    async def _plan_for_caller(self, plan_id: str) -> Stored:
        stored = await self._plans.get(validation.ident(plan_id, "plan_id"))
        who = caller()
        if who.is_guest and who.party_id != stored.plan.party_id:
            raise PermissionDenied("not your party's plan")
        return stored

    def _members(self, party_id: str) -> set[str] | None:
        members = self._directory.members(party_id)
        return set(members) if members else None

    def _plan_pb(self, plan: Plan) -> pb.Plan:
        now = self._clock.now()
        nxt = plan.next_stop()
        walk = None
        if nxt is not None and plan.place:
            walk = self._router.cached_walk(plan.place, nxt.poi_id, plan.settings)
        return messages.plan_pb(plan, progress.summary(plan, now, walk))

    def _plan_reply(self, make: Callable[[pb.Plan], Any]) -> Callable[[Stored], bytes]:
        return lambda stored: bytes(make(self._plan_pb(stored.plan)).SerializeToString())

    async def _guest_known(self, guest_id: str) -> None:
        """Make sure the directory knows a guest (identity's stream may lag)."""
        if self._directory.member(guest_id) is not None:
            return
        stub = identity_pb2_grpc.IdentityServiceStub(self._clients.channel("identity"))
        try:
            reply = await stub.GetGuest(ipb.GetGuestRequest(guest_id=guest_id))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound("guest", guest_id) from None
            raise
        g = reply.guest
        self._directory.learn(
            g.guest_id,
            g.party_id,
            g.role,
            g.consent.personalized_nudges,
            g.consent.location_tracking,
        )

    async def _may_manage_guest(self, guest_id: str, staff_may: bool = False) -> str:
        """The guest themselves, an adult of their party, or (where allowed) OPS."""
        guest_id = validation.ident(guest_id, "guest_id")
        who = caller()
        if who.is_staff() and staff_may:
            return guest_id
        if not who.is_guest:
            raise PermissionDenied("only the guest or an adult of their party")
        if who.subject == guest_id:
            return guest_id
        await self._guest_known(guest_id)
        await self._guest_known(who.subject)
        same_party = self._directory.party_of(guest_id) == who.party_id
        if not same_party or not self._directory.is_adult(who.subject):
            raise PermissionDenied("only the guest or an adult of their party")
        return guest_id

    # --- the plan ------------------------------------------------------------------

    async def CreatePlan(
        self, request: pb.CreatePlanRequest, context: Context
    ) -> pb.CreatePlanResponse:
        party_id = self._own_party(request.party_id)
        day = requests.venue_date(request.date, "date", self._today())
        settings = requests.settings(request.settings, "settings", self._facts, day)
        wishes = requests.wishes(
            request.wish_list, "wish_list", self._facts, day, set(), self._members(party_id)
        )
        idem = _idem("CreatePlan", request.idempotency_key, request)
        result = await self._plans.create(
            party_id,
            day,
            settings,
            wishes,
            idem,
            self._plan_reply(lambda p: pb.CreatePlanResponse(plan=p)),
        )
        if isinstance(result, bytes):
            return pb.CreatePlanResponse.FromString(result)
        return pb.CreatePlanResponse(plan=self._plan_pb(result.plan))

    async def GetPlan(self, request: pb.GetPlanRequest, context: Context) -> pb.GetPlanResponse:
        party_id = self._own_party(request.party_id)
        today = self._today()
        day = (
            today
            if not request.HasField("date")
            else requests.venue_date(
                request.date, "date", today - timedelta(days=requests.MAX_DAYS_AHEAD)
            )
        )
        stored = await self._plans.of_party(party_id, day)
        if stored is None:
            raise NotFound("plan", f"{party_id}/{day.isoformat()}")
        return pb.GetPlanResponse(plan=self._plan_pb(stored.plan))

    async def UpdateWishList(
        self, request: pb.UpdateWishListRequest, context: Context
    ) -> pb.UpdateWishListResponse:
        stored = await self._plan_for_caller(request.plan_id)
        current = stored.plan
        wishes = requests.wishes(
            request.wish_list,
            "wish_list",
            self._facts,
            current.date,
            {w.wish_id for w in current.wishes},
            self._members(current.party_id),
        )
        if request.expected_version < 0:
            raise InvalidArgument("expected_version", "must not be negative")
        idem = _idem("UpdateWishList", request.idempotency_key, request)

        def edit(plan: Plan) -> Plan:
            kept = {w.wish_id for w in wishes}
            return replace(
                plan,
                wishes=wishes,
                guest_skipped=frozenset(w for w in plan.guest_skipped if w in kept),
                not_before=tuple((w, t) for w, t in plan.not_before if w in kept),
                stops=tuple(
                    s for s in plan.stops if not s.wish_id or s.wish_id in kept or not s.open
                ),
            )

        result = await self._plans.change(
            current.plan_id,
            edit,
            reason=WISH_LIST_CHANGED,
            expected_version=request.expected_version,
            idem=idem,
            reply=self._plan_reply(lambda p: pb.UpdateWishListResponse(plan=p)),
        )
        if isinstance(result, bytes):
            return pb.UpdateWishListResponse.FromString(result)
        return pb.UpdateWishListResponse(plan=self._plan_pb(result.plan))

    async def UpdatePlanSettings(
        self, request: pb.UpdatePlanSettingsRequest, context: Context
    ) -> pb.UpdatePlanSettingsResponse:
        stored = await self._plan_for_caller(request.plan_id)
        settings = requests.settings(request.settings, "settings", self._facts, stored.plan.date)
        if request.expected_version < 0:
            raise InvalidArgument("expected_version", "must not be negative")

        def edit(plan: Plan) -> Plan | None:
            return None if plan.settings == settings else replace(plan, settings=settings)

        result = await self._plans.change(
            stored.plan.plan_id,
            edit,
            reason=SETTINGS_CHANGED,
            expected_version=request.expected_version,
        )
        assert not isinstance(result, bytes)
        return pb.UpdatePlanSettingsResponse(plan=self._plan_pb(result.plan))

    async def AddBooking(
        self, request: pb.AddBookingRequest, context: Context
    ) -> pb.AddBookingResponse:
        stored = await self._plan_for_caller(request.plan_id)
        booking = requests.booking(
            request.booking,
            "booking",
            self._facts,
            stored.plan.date,
            self._members(stored.plan.party_id),
        )
        idem = _idem("AddBooking", request.idempotency_key, request)

        def edit(plan: Plan) -> Plan:
            return replace(plan, bookings=(*plan.bookings, booking))

        def reply(s: Stored) -> bytes:
            return pb.AddBookingResponse(
                booking=messages.booking_pb(booking), plan=self._plan_pb(s.plan)
            ).SerializeToString()

        result = await self._plans.change(
            stored.plan.plan_id, edit, reason=BOOKING_CHANGED, idem=idem, reply=reply
        )
        if isinstance(result, bytes):
            return pb.AddBookingResponse.FromString(result)
        return pb.AddBookingResponse.FromString(reply(result))

    async def RemoveBooking(
        self, request: pb.RemoveBookingRequest, context: Context
    ) -> pb.RemoveBookingResponse:
        stored = await self._plan_for_caller(request.plan_id)
        booking_id = validation.ident(request.booking_id, "booking_id")

        def edit(plan: Plan) -> Plan | None:
            booking = plan.booking(booking_id)
            if booking is None:
                return None  # already removed
            used = any(
                s.booking_id == booking_id and s.state in (DONE, IN_PROGRESS, MISSED)
                for s in plan.stops
            )
            dropped = plan.dropped_refs | ({booking.external_ref} if booking.from_queue else set())
            return replace(
                plan,
                bookings=tuple(b for b in plan.bookings if b.booking_id != booking_id),
                stops=tuple(s for s in plan.stops if s.booking_id != booking_id or used),
                dropped_refs=frozenset(dropped),
            )

        result = await self._plans.change(stored.plan.plan_id, edit, reason=BOOKING_CHANGED)
        assert not isinstance(result, bytes)
        return pb.RemoveBookingResponse(plan=self._plan_pb(result.plan))

    async def Replan(self, request: pb.ReplanRequest, context: Context) -> pb.ReplanResponse:
        stored = await self._plan_for_caller(request.plan_id)
        here = requests.place(request.current_place, "current_place", self._facts, False)
        now = self._clock.now()

        def edit(plan: Plan) -> Plan:
            return replace(plan, place=here, place_at=now) if here else plan

        result = await self._plans.change(stored.plan.plan_id, edit, reason=GUEST_REQUESTED)
        assert not isinstance(result, bytes)
        return pb.ReplanResponse(plan=self._plan_pb(result.plan))

    # --- nudges --------------------------------------------------------------------

    async def SubscribeNudges(
        self, request: pb.SubscribeNudgesRequest, context: Context
    ) -> AsyncIterator[pb.SubscribeNudgesResponse]:
        validation.text(request.app_session_id, "app_session_id", max_len=100, required=False)
        after = events.start_cursor(request.start)
        since = None
        if not request.start.cursor and not request.start.from_now:
            since = self._facts.at_minute(self._today(), 0)
        async for event in self._feeds.follow(caller().subject, after, since):
            response = pb.SubscribeNudgesResponse.FromString(event.payload)
            response.cursor = event.cursor.encode()
            response.occurred_at.FromDatetime(event.occurred_at)
            yield response

    async def AcknowledgeNudge(
        self, request: pb.AcknowledgeNudgeRequest, context: Context
    ) -> pb.AcknowledgeNudgeResponse:
        nudge_id = validation.ident(request.nudge_id, "nudge_id")
        ack = validation.enum_value(request.ack, pb.NudgeAckKind, "ack")
        now = self._clock.now()
        at = requests.at_or_now(request.acknowledged_at, "acknowledged_at", now)
        nudge, plan = await self._nudger.acknowledge(nudge_id, caller().subject, ack, at)
        reply = pb.AcknowledgeNudgeResponse(nudge=messages.nudge_pb(nudge, now))
        if plan is not None:
            reply.plan.CopyFrom(self._plan_pb(plan.plan))
        return reply

    async def GetNudgePreferences(
        self, request: pb.GetNudgePreferencesRequest, context: Context
    ) -> pb.GetNudgePreferencesResponse:
        guest_id = await self._may_manage_guest(request.guest_id)
        return pb.GetNudgePreferencesResponse(
            preferences=messages.preferences_pb(self._nudger.preferences(guest_id))
        )

    async def SetNudgePreferences(
        self, request: pb.SetNudgePreferencesRequest, context: Context
    ) -> pb.SetNudgePreferencesResponse:
        prefs = requests.preferences(
            request.preferences, "preferences", self._facts.budget.max_per_hour
        )
        await self._may_manage_guest(prefs.guest_id)
        saved = await self._nudger.set_preferences(prefs)
        return pb.SetNudgePreferencesResponse(preferences=messages.preferences_pb(saved))

    async def ListNudges(
        self, request: pb.ListNudgesRequest, context: Context
    ) -> pb.ListNudgesResponse:
        guest_id = await self._may_manage_guest(request.guest_id, staff_may=True)
        period = None
        if request.HasField("period"):
            period = requests.window(request.period, "period")
        size = paging.page_size(request.page.page_size)
        last = paging.decode("nudges", request.page.page_token)
        after = None
        if last is not None:
            try:
                after = (datetime.fromisoformat(str(last[0])), str(last[1]))
            except (ValueError, IndexError):
                raise InvalidArgument("page.page_token", "not a token from this list") from None
        found = await self._store.list_nudges(guest_id, period, after, size + 1)
        token = paging.next_token(
            "nudges", found, size, lambda n: [n.created_at.isoformat(), n.nudge_id]
        )
        now = self._clock.now()
        return pb.ListNudgesResponse(
            nudges=[messages.nudge_pb(n, now) for n in found[:size]], next_page_token=token
        )

    async def GetNudgeStats(
        self, request: pb.GetNudgeStatsRequest, context: Context
    ) -> pb.GetNudgeStatsResponse:
        now = self._clock.now()
        period = requests.window(request.period, "period") if request.HasField("period") else None
        if period is None:
            start = self._facts.at_minute(self._today(), 0)
            period = Window(start, start + timedelta(days=1))
        counts = await self._store.kind_counts(period, now)
        median, most = stats.per_guest(await self._store.send_times(period))
        return pb.GetNudgeStatsResponse(
            by_kind=[
                pb.NudgeKindStats(
                    kind=c.kind,  # type: ignore[arg-type]
                    candidates=c.candidates,
                    withheld=c.withheld,
                    sent=c.sent,
                    seen=c.seen,
                    accepted=c.accepted,
                    dismissed=c.dismissed,
                    ignored=c.ignored,
                    withdrawn=c.withdrawn,
                )
                for c in counts
            ],
            guests_subscribed=self._feeds.guests_subscribed,
            median_per_guest_hour=median,
            max_per_guest_hour=most,
        )

    async def WatchItineraryEvents(
        self, request: pb.WatchItineraryEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchItineraryEventsResponse]:
        kinds = []
        for i, kind in enumerate(request.kinds):
            if kind not in messages.STREAM_KINDS:
                raise InvalidArgument(f"kinds[{i}]", "not an itinerary event kind")
            kinds.append(messages.STREAM_KINDS[kind])
        async for event in events.serve_watch(
            self._hub,
            request.start,
            pb.WatchItineraryEventsResponse.FromString,
            kinds=kinds or list(messages.STREAM_KINDS.values()),
        ):
            yield event
