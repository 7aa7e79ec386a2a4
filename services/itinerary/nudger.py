"""Runs the nudge engine for a party whenever something about it changes.

Events (a tap, a move, a wait, a status, a booking, a plan change) mark the
party dirty; a few workers take dirty parties one at a time (never the same
party twice at once, so a guest's budget is never raced), gather the routing
facts the engine asks for, run the rules and the budget for each adult of the
party, and store what was sent, held back and withdrawn in one transaction with
the feed events that deliver it. A timer wakes parties whose situation changes
with time alone (a reservation approaching, a party falling behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
import uuid
from datetime import date, datetime

from opentelemetry import metrics, trace

from services.itinerary import budget, engine, planning, progress
from services.itinerary.directory import Directory
from services.itinerary.facts import VenueFacts
from services.itinerary.live import LiveVenue
from services.itinerary.model import (
    ACCEPTED,
    ACK_ACCEPTED,
    ACK_DISMISSED,
    ACK_SEEN,
    DISMISSED,
    EXPIRED,
    GO_NOW,
    SEEN,
    SENT,
    SERVICE_KINDS,
    WITHDRAWN,
    Candidate,
    GuestNudgeState,
    KindFeedback,
    MoveStop,
    Nudge,
    OpenRoute,
    Plan,
    Preferences,
    SkipStop,
)
from services.itinerary.plans import PlanBook, booking_of
from services.itinerary.router import Router
from services.itinerary.store import CandidateRow, ItineraryStore, QueueBooking, Stored
from services.platform import semconv
from services.platform.clock import VenueClock
from services.platform.errors import FailedPrecondition, PermissionDenied
from services.platform.events import EventHub
from venue.itinerary.v1 import itinerary_pb2 as pb

log = logging.getLogger("venue.itinerary.nudger")
_tracer = trace.get_tracer("venue.itinerary")
_meter = metrics.get_meter("venue.itinerary")
# docs/observability.md (names in services/platform/semconv.py): one counter by
# kind and what became of the nudge, so the dashboards read them side by side.
_nudges = semconv.counter(_meter, semconv.ITINERARY_NUDGES)
_eval_time = _meter.create_histogram(
    "venue.itinerary.evaluation.duration", unit="ms", description="One party's evaluation"
)

WORKERS = 4
NUDGE_ACCEPTED = int(pb.REPLAN_REASON_NUDGE_ACCEPTED)


OUTCOME_SENT = "sent"
OUTCOME_WITHHELD = "suppressed"
OUTCOME_WITHDRAWN = "withdrawn"
ACK_OUTCOMES = {ACK_SEEN: "seen", ACK_ACCEPTED: "accepted", ACK_DISMISSED: "dismissed"}


def _kind(kind: int) -> str:
    return pb.NudgeKind.Name(kind)  # type: ignore[arg-type]


def _count(kind: int, outcome: str, n: int = 1) -> None:
    _nudges.add(
        n,
        {
            semconv.NUDGE_KIND: semconv.strip_enum(_kind(kind), "NUDGE_KIND_"),
            semconv.OUTCOME: outcome,
        },
    )


class Nudger:
    def __init__(
        self,
        store: ItineraryStore,
        plans: PlanBook,
        facts: VenueFacts,
        directory: Directory,
        live: LiveVenue,
        router: Router,
        clock: VenueClock,
        hub: EventHub,
    ) -> None:
        self._store = store
        self._plans = plans
        self._facts = facts
        self._directory = directory
        self._live = live
        self._router = router
        self._clock = clock
        self._hub = hub
        self._states: dict[str, GuestNudgeState] = {}
        self._prefs: dict[str, Preferences] = {}
        self._candidates: set[tuple[str, date, str]] = set()
        self._dirty: dict[str, None] = {}
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._timers: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._timer_wake = asyncio.Event()
        self.evaluations = 0
        # Attraction -> parties with an open "go now" for it: a wait that grows
        # back wakes them so the nudge can be withdrawn.
        self._watch: dict[str, set[str]] = {}
        plans.on_change(lambda plan, _content: self.touch(plan.party_id))

    # --- start-up ------------------------------------------------------------------

    async def load(self) -> None:
        today = self._facts.venue_date(self._clock.now())
        for prefs in await self._store.all_preferences():
            self._prefs[prefs.guest_id] = prefs
        for nudge in await self._store.nudges_on(today):
            self._state(nudge.guest_id, today).record_sent(nudge)
            self._settle(nudge)
        for guest_id, key in await self._store.candidate_keys_on(today):
            self._candidates.add((guest_id, today, key))
        for plan in self._plans.plans_today():
            self.touch(plan.party_id)

    def _settle(self, nudge: Nudge) -> None:
        state = self._states.get(nudge.guest_id)
        if state is None:
            return
        if nudge.status in (ACCEPTED, DISMISSED):
            state.record_ack(
                nudge.kind, ACK_ACCEPTED if nudge.status == ACCEPTED else ACK_DISMISSED
            )
        if nudge.status not in (SENT, SEEN):
            state.open_nudges.pop(nudge.nudge_id, None)

    def _state(self, guest_id: str, day: date) -> GuestNudgeState:
        state = self._states.get(guest_id)
        if state is None or state.day != day:
            feedback = state.feedback if state is not None else {}
            state = GuestNudgeState(guest_id, day, feedback=feedback)
            self._states[guest_id] = state
        return state

    # --- scheduling ----------------------------------------------------------------

    def touch(self, party_id: str) -> None:
        """Evaluate this party soon (an event concerns it)."""
        self._dirty[party_id] = None
        self._wake.set()

    def touch_guest(self, guest_id: str) -> None:
        party = self._directory.party_of(guest_id)
        if party:
            self.touch(party)

    def _schedule(self, party_id: str, at: datetime) -> None:
        wall = self._clock.wall_at(at)
        current = self._due.get(party_id)
        if current is not None and current <= wall and current > time.time():
            return
        self._due[party_id] = wall
        heapq.heappush(self._timers, (wall, party_id))
        self._timer_wake.set()

    async def run(self) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(WORKERS)]
        try:
            await self._timer_loop()
        finally:
            for worker in workers:
                worker.cancel()

    async def _timer_loop(self) -> None:
        while True:
            now = time.time()
            while self._timers and self._timers[0][0] <= now:
                wall, party = heapq.heappop(self._timers)
                if self._due.get(party) == wall:
                    del self._due[party]
                    self.touch(party)
            delay = self._timers[0][0] - now if self._timers else 60.0
            self._timer_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), max(0.01, min(delay, 60.0)))

    def _take(self) -> str | None:
        for party in self._dirty:
            if party not in self._busy:
                del self._dirty[party]
                return party
        return None

    async def _worker(self) -> None:
        while True:
            party = self._take()
            if party is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._busy.add(party)
            try:
                await self.evaluate(party)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("evaluation failed", extra={"party_id": party}, exc_info=True)
            finally:
                self._busy.discard(party)
                if party in self._dirty:
                    self._wake.set()

    # --- evaluation ----------------------------------------------------------------

    def _can_receive(self, guest_id: str, now: datetime) -> bool:
        if not self._directory.nudges_allowed(guest_id):
            return False
        state = self._states.get(guest_id)
        if state is None:
            return True
        cap = self._facts.budget.for_guest(self._prefs.get(guest_id)).max_per_hour
        return budget.hourly_room(state, now, cap)

    async def evaluate(self, party_id: str) -> int:
        """Run the engine for one party now; returns the nudges sent."""
        plan = self._plans.cached(party_id)
        if plan is None:
            return 0
        started = time.perf_counter()
        self.evaluations += 1
        with _tracer.start_as_current_span("itinerary.evaluate") as span:
            span.set_attribute(semconv.PARTY, party_id)
            sent = await self._evaluate(plan)
            span.set_attribute("venue.nudges.sent", sent)
        _eval_time.record((time.perf_counter() - started) * 1000.0)
        return sent

    async def _evaluate(self, plan: Plan) -> int:
        now = self._clock.now()
        day = self._facts.venue_date(now)
        missed = progress.mark_missed(plan, now, self._facts)
        if missed is not None:
            plan = (
                await self._plans.progress(
                    plan.plan_id, lambda p: progress.mark_missed(p, now, self._facts)
                )
                or plan
            )
        adults = self._directory.adults(plan.party_id)
        live = self._live
        first_offset = progress.offset_s(plan, now, None)
        wants = engine.wants(
            plan, self._facts, live.lines, live.forecast_wait, now, first_offset, live.density
        )
        receptive = any(self._can_receive(g, now) for g in adults)
        walks: dict[str, float] = {}
        pois = (
            set(wants.walk_to)
            if receptive
            else {b.poi_id for b in plan.bookings if b.called_at is not None}
        )
        if pois and plan.place:
            walks = await self._router.walks(plan.place, pois, plan.settings)
        nxt = plan.next_stop()
        offset = progress.offset_s(plan, now, walks.get(nxt.poi_id) if nxt else None)
        snacks: tuple[engine.SnackOption, ...] = ()
        route = None
        if receptive and wants.snacks and plan.place:
            snacks = await self._router.snacks(
                plan.place, plan.settings, now, engine.SNACK_MAX_WALK_S
            )
        if receptive and wants.route_to and plan.place:
            route = await self._router.route_option(
                plan.place, wants.route_to, plan.settings, live.density, now
            )
        reason = engine.replan_reason(plan, live.lines, live.forecast_wait, now, offset)
        if reason is not None:
            self._plans.request_replan(plan.plan_id, reason)
        situation = engine.Situation(
            now, plan, self._facts, live.lines, live.forecast_wait, walks, offset, snacks, route
        )
        candidates = engine.candidates(situation)
        withdrawn = [
            n
            for g in adults
            for n in self._open(g, now)
            if n.plan_id == plan.plan_id and not engine.still_valid(n, situation)
        ]
        check = engine.next_check(situation)
        if check is not None:
            self._schedule(plan.party_id, check)
        return await self._decide(plan.party_id, plan.plan_id, candidates, withdrawn, now, day)

    def _open(self, guest_id: str, now: datetime) -> list[Nudge]:
        state = self._states.get(guest_id)
        if state is None:
            return []
        return [n for n in state.open_nudges.values() if n.is_open(now)]

    async def _decide(
        self,
        party_id: str,
        plan_id: str,
        candidates: list[Candidate],
        withdrawn: list[Nudge],
        now: datetime,
        day: date,
        guests: list[str] | None = None,
    ) -> int:
        sends: list[tuple[Nudge, date]] = []
        rows: list[CandidateRow] = []
        withdrawing = frozenset(n.nudge_id for n in withdrawn)
        for guest_id in guests if guests is not None else self._directory.adults(party_id):
            mine = [
                c
                for c in candidates
                if guest_id in self._directory.recipients(party_id, c.guest_ids)
                or guest_id in c.guest_ids
            ]
            if not mine:
                continue
            state = self._state(guest_id, day)
            decisions = budget.select(
                mine,
                state,
                self._prefs.get(guest_id),
                self._facts.budget,
                self._directory.nudges_allowed(guest_id),
                now,
                withdrawing,
            )
            for d in decisions:
                cand = d.candidate
                if d.why == budget.DUPLICATE and cand.dedup_key in state.sent_keys:
                    continue
                seen = (guest_id, day, cand.dedup_key)
                if seen not in self._candidates:
                    self._candidates.add(seen)
                    rows.append(CandidateRow(guest_id, day, cand.dedup_key, cand.kind, now, d.why))
                    # Once per candidate and guest, as the ops stats count it:
                    # a candidate held back at every re-evaluation is one.
                    if not d.send and d.why != budget.DUPLICATE:
                        _count(cand.kind, OUTCOME_WITHHELD)
                if d.send:
                    sends.append((self._nudge(guest_id, party_id, plan_id, cand, now), day))
        if not sends and not rows and not withdrawn:
            return 0
        stored, pulled = await self._store.record_decisions(sends, rows, withdrawn, now)
        self._recorded(party_id, day, stored, pulled, withdrawn)
        self._hub.poke()
        return len(stored)

    def _recorded(
        self,
        party_id: str,
        day: date,
        stored: list[Nudge],
        pulled: list[Nudge],
        withdrawn: list[Nudge],
    ) -> None:
        """Bring the in-memory budget state and the metric up to what was stored."""
        for nudge in stored:
            self._state(nudge.guest_id, day).record_sent(nudge)
            _count(nudge.kind, OUTCOME_SENT)
            if nudge.kind == GO_NOW and isinstance(nudge.action, OpenRoute):
                self._watch.setdefault(nudge.action.destination_poi_id, set()).add(party_id)
        for nudge in pulled:
            _count(nudge.kind, OUTCOME_WITHDRAWN)
        for nudge in withdrawn:
            holder = self._states.get(nudge.guest_id)
            if holder is not None:
                holder.open_nudges.pop(nudge.nudge_id, None)

    @staticmethod
    def _nudge(guest_id: str, party_id: str, plan_id: str, c: Candidate, now: datetime) -> Nudge:
        return Nudge(
            nudge_id=str(uuid.uuid4()),
            guest_id=guest_id,
            party_id=party_id,
            plan_id=plan_id,
            kind=c.kind,
            dedup_key=c.dedup_key,
            subject=c.subject,
            title=c.title,
            body=c.body,
            reason=c.reason,
            action=c.action,
            time_saved_s=max(0.0, c.time_saved_s),
            urgency=c.urgency,
            status=SENT,
            created_at=now,
            expires_at=max(c.expires_at, now),
        )

    def watching(self, poi_id: str) -> list[str]:
        """Parties with an open "go now" for this attraction."""
        parties = self._watch.get(poi_id)
        if not parties:
            return []
        now = self._clock.now()
        still = {
            party
            for party in parties
            if any(
                n.kind == GO_NOW and n.is_open(now)
                for g in self._directory.adults(party)
                for n in self._open(g, now)
            )
        }
        self._watch[poi_id] = still
        return sorted(still)

    # --- boarding calls for parties without a plan ------------------------------------

    async def boarding_called(self, booking: QueueBooking) -> int:
        """A virtual-queue group was called for a party that keeps no plan: the
        service message still goes out (parties with a plan get it from the
        engine once the booking is in their plan)."""
        now = self._clock.now()
        day = self._facts.venue_date(now)
        if self._plans.cached(booking.party_id, day) is not None:
            return 0
        cand = engine.boarding_candidate(booking_of("", booking), self._facts, now, None)
        if cand is None:
            return 0
        guests = self._directory.recipients(booking.party_id, booking.guest_ids) or [
            g for g in booking.guest_ids if g not in self._directory.erased
        ]
        return await self._decide(booking.party_id, "", [cand], [], now, day, guests)

    # --- consent and erasure ---------------------------------------------------------

    async def consent_withdrawn(self, guest_id: str) -> None:
        """Personalized nudges turned off: withdraw the open ones now."""
        now = self._clock.now()
        open_ = [n for n in self._open(guest_id, now) if n.kind not in SERVICE_KINDS]
        if open_:
            _, pulled = await self._store.record_decisions([], [], open_, now)
            for n in pulled:
                _count(n.kind, OUTCOME_WITHDRAWN)
            state = self._states.get(guest_id)
            for n in open_:
                if state is not None:
                    state.open_nudges.pop(n.nudge_id, None)
            self._hub.poke()

    def forget(self, guest_id: str) -> None:
        self._states.pop(guest_id, None)
        self._prefs.pop(guest_id, None)
        self._candidates = {c for c in self._candidates if c[0] != guest_id}

    # --- acknowledgements ------------------------------------------------------------

    async def acknowledge(
        self, nudge_id: str, guest_id: str, ack: int, at: datetime
    ) -> tuple[Nudge, Stored | None]:
        nudge = await self._store.get_nudge(nudge_id)
        if nudge.guest_id != guest_id:
            raise PermissionDenied("not your nudge")
        now = self._clock.now()

        def decide(current: Nudge) -> int | None:
            status = current.status_at(now)
            if ack == ACK_SEEN:
                return SEEN if current.status == SENT else None
            if ack == ACK_ACCEPTED:
                if current.status == ACCEPTED:
                    return None
                if current.status == DISMISSED:
                    raise FailedPrecondition(
                        "the nudge was dismissed", reason="NUDGE_DISMISSED", subject="ack"
                    )
                if status == WITHDRAWN:
                    raise FailedPrecondition(
                        "the nudge no longer applies", reason="NUDGE_WITHDRAWN", subject="ack"
                    )
                if status == EXPIRED:
                    raise FailedPrecondition(
                        "the nudge has expired", reason="NUDGE_EXPIRED", subject="ack"
                    )
                return ACCEPTED
            if current.status in (DISMISSED, WITHDRAWN):
                return None
            if current.status == ACCEPTED:
                raise FailedPrecondition(
                    "the nudge was accepted", reason="NUDGE_ACCEPTED", subject="ack"
                )
            return DISMISSED

        updated, changed = await self._store.acknowledge(nudge_id, ack, at, decide)
        if not changed:
            return updated, None
        self._hub.poke()
        _count(updated.kind, ACK_OUTCOMES[ack])
        held = self._states.get(guest_id)
        if held is not None:
            state = held
            if ack in (ACK_ACCEPTED, ACK_DISMISSED):
                state.record_ack(updated.kind, ack)
                state.open_nudges.pop(nudge_id, None)
            elif nudge_id in state.open_nudges:
                state.open_nudges[nudge_id] = updated
        plan = None
        if ack == ACK_ACCEPTED and updated.plan_id:
            plan = await self._apply(updated)
        return updated, plan

    async def _apply(self, nudge: Nudge) -> Stored | None:
        action = nudge.action
        if isinstance(action, SkipStop):

            def edit(plan: Plan) -> Plan | None:
                return planning.skip_stop(plan, action.stop_id)
        elif isinstance(action, MoveStop):
            now = self._clock.now()

            def edit(plan: Plan) -> Plan | None:
                return planning.move_stop(plan, action.stop_id, action.before_stop_id, now)
        else:
            return None
        before = await self._plans.get(nudge.plan_id)
        result = await self._plans.change(nudge.plan_id, edit, reason=NUDGE_ACCEPTED)
        assert not isinstance(result, bytes)
        return None if result.plan.version == before.plan.version else result

    # --- preferences -----------------------------------------------------------------

    def preferences(self, guest_id: str) -> Preferences:
        return self._prefs.get(guest_id) or Preferences(guest_id)

    async def set_preferences(self, prefs: Preferences) -> Preferences:
        await self._store.set_preferences(prefs, self._clock.now())
        self._prefs[prefs.guest_id] = prefs
        self.touch_guest(prefs.guest_id)
        return prefs

    def feedback(self, guest_id: str) -> dict[int, KindFeedback]:
        state = self._states.get(guest_id)
        return dict(state.feedback) if state else {}
