"""The plan book: today's plans in memory (the nudge engine reads them on every
event), every write through the store under optimistic concurrency, and the
optimizer called outside any transaction.

Writes are of two sorts. Content changes (an edit, a booking, a replan) bump
the public version, are announced on the stream and in the party's feeds, and
are what `expected_version` guards. Progress (taps, places) changes only the
internal revision, so a family member's edit is refused only by another edit.

Replans requested by the engine (a ride down, a wait jump, a party behind) go
through a small queue: at most a few optimizer calls at once, one per plan,
the most urgent first. Plans saved while routing was unreachable are retried in
the background until they are optimized.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime

import asyncpg
from opentelemetry import metrics

from services.itinerary import planning
from services.itinerary.directory import Directory
from services.itinerary.facts import VenueFacts
from services.itinerary.model import (
    UPCOMING,
    Booking,
    Place,
    Plan,
    PlanSettings,
    Wish,
)
from services.itinerary.planning import Answer
from services.itinerary.router import Router, RoutingUnavailable
from services.itinerary.store import Announce, ItineraryStore, QueueBooking, Stale, Stored
from services.platform import semconv
from services.platform.clock import VenueClock
from services.platform.errors import Aborted
from services.platform.events import EventHub
from services.platform.idempotency import Idem
from venue.itinerary.v1 import itinerary_pb2 as pb

log = logging.getLogger("venue.itinerary.plans")

CREATED = int(pb.REPLAN_REASON_CREATED)
BOOKING_CHANGED = int(pb.REPLAN_REASON_BOOKING_CHANGED)
ATTRACTION_DOWN = int(pb.REPLAN_REASON_ATTRACTION_DOWN)
BEHIND = int(pb.REPLAN_REASON_BEHIND_SCHEDULE)
# Most urgent first.
URGENCY: dict[int, int] = {ATTRACTION_DOWN: 0, BOOKING_CHANGED: 1, BEHIND: 2}
RETRIES = 6
REPLAN_WORKERS = 2
RETRY_UNOPTIMIZED_S = 5.0

_meter = metrics.get_meter("venue.itinerary")
_replans = _meter.create_counter(
    "venue.itinerary.replans", unit="{plan}", description="Plans re-optimized, by reason"
)

Listener = Callable[[Plan, bool], None]


class PlanBook:
    def __init__(
        self,
        store: ItineraryStore,
        facts: VenueFacts,
        router: Router,
        directory: Directory,
        clock: VenueClock,
        hub: EventHub,
    ) -> None:
        self._store = store
        self._facts = facts
        self._router = router
        self._directory = directory
        self._clock = clock
        self._hub = hub
        self._plans: dict[str, Stored] = {}
        self._by_party: dict[tuple[str, date], str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._listeners: list[Listener] = []
        self._pending: dict[str, int] = {}
        self._wake = asyncio.Event()

    # --- reading -------------------------------------------------------------

    def today(self) -> date:
        return self._facts.venue_date(self._clock.now())

    def on_change(self, listener: Listener) -> None:
        """`listener(plan, content_changed)` after every committed write."""
        self._listeners.append(listener)

    async def load_day(self, day: date) -> int:
        found = await self._store.plans_on(day)
        for stored in found:
            self._remember(stored)
        return len(found)

    def _remember(self, stored: Stored) -> None:
        current = self._plans.get(stored.plan.plan_id)
        if current is not None and current.revision > stored.revision:
            return
        self._plans[stored.plan.plan_id] = stored
        self._by_party[(stored.plan.party_id, stored.plan.date)] = stored.plan.plan_id

    def cached(self, party_id: str, day: date | None = None) -> Plan | None:
        plan_id = self._by_party.get((party_id, day or self.today()))
        stored = self._plans.get(plan_id) if plan_id else None
        return stored.plan if stored else None

    def plans_today(self) -> list[Plan]:
        today = self.today()
        return [s.plan for s in self._plans.values() if s.plan.date == today]

    def parties_visiting(self, poi_id: str) -> list[str]:
        """Parties with today's plan still to visit a point of interest."""
        return [
            p.party_id
            for p in self.plans_today()
            if any(s.poi_id == poi_id and s.open for s in p.stops)
            or any(
                p.wish(k.wish_id) and p.wish(k.wish_id).poi_id == poi_id  # type: ignore[union-attr]
                for k in p.skipped
            )
        ]

    async def get(self, plan_id: str, fresh: bool = False) -> Stored:
        if not fresh and plan_id in self._plans:
            return self._plans[plan_id]
        stored = await self._store.get_plan(plan_id)
        self._remember(stored)
        return stored

    async def of_party(self, party_id: str, day: date) -> Stored | None:
        plan_id = self._by_party.get((party_id, day))
        if plan_id is not None:
            return self._plans[plan_id]
        stored = await self._store.plan_of_party(party_id, day)
        if stored is not None:
            self._remember(stored)
        return stored

    def note_place(self, plan_id: str, place: Place, at: datetime | None) -> None:
        """Where the party is, in memory only: positions change every few
        minutes and are fleeting; the next write of the plan keeps the latest."""
        stored = self._plans.get(plan_id)
        if stored is None:
            return
        plan = replace(stored.plan, place=place, place_at=at or stored.plan.place_at)
        self._plans[plan_id] = Stored(plan, stored.revision)

    def _lock(self, plan_id: str) -> asyncio.Lock:
        return self._locks.setdefault(plan_id, asyncio.Lock())

    def _announce(self, plan: Plan) -> Announce:
        return Announce(self._directory.adults(plan.party_id))

    def _committed(self, stored: Stored, content: bool) -> None:
        self._remember(stored)
        self._hub.poke()
        for listener in self._listeners:
            listener(stored.plan, content)

    # --- optimizing ------------------------------------------------------------

    async def optimize(self, plan: Plan, now: datetime, reason: int) -> Plan:
        """The plan re-optimized from where the party is; unoptimized (and
        retried later) when routing cannot be reached."""
        q = planning.question(plan, self._facts, now)
        if not q.items:
            return planning.merge(plan, q, Answer((), ()), now, reason)
        try:
            answer = await self._router.plan(q, plan.settings)
        except RoutingUnavailable:
            self._wake.set()
            return planning.unoptimized(plan, q, reason)
        _replans.add(1, {semconv.REASON: pb.ReplanReason.Name(reason)})  # type: ignore[arg-type]
        return planning.merge(plan, q, answer, now, reason)

    # --- writing ---------------------------------------------------------------

    async def create(
        self,
        party_id: str,
        day: date,
        settings: PlanSettings,
        wishes: tuple[Wish, ...],
        idem: Idem | None,
        reply: Callable[[Stored], bytes],
    ) -> Stored | bytes:
        """A new plan for the party's day, optimized; a retried request (same
        key) gets the first reply's bytes back."""
        now = self._clock.now()
        plan_id = str(uuid.uuid4())
        bookings = tuple(
            booking_of(plan_id, b) for b in await self._store.queue_bookings_of(party_id)
        )
        plan = Plan(
            plan_id=plan_id,
            party_id=party_id,
            date=day,
            version=1,
            settings=settings,
            wishes=wishes,
            bookings=bookings,
            stops=(),
            skipped=(),
            last_replan_reason=CREATED,
            planned_at=None,
            created_at=now,
            updated_at=now,
        )
        plan = await self.optimize(plan, now, CREATED)
        result: list[Stored] = []

        async def work(conn: asyncpg.Connection) -> bytes:
            stored = await self._store.insert_plan(conn, plan, self._announce(plan))
            result.append(stored)
            return reply(stored)

        raw = await self._store.idempotent(idem, lambda b: b, lambda b: b, work)
        if not result:
            return raw  # a retry: the first reply
        self._committed(result[0], True)
        return result[0]

    async def change(
        self,
        plan_id: str,
        edit: Callable[[Plan], Plan | None],
        *,
        reason: int,
        expected_version: int = 0,
        optimize: bool = True,
        idem: Idem | None = None,
        reply: Callable[[Stored], bytes] | None = None,
    ) -> Stored | bytes:
        """Apply a content change (then re-optimize), retrying on a concurrent
        write. `edit` returns None when there is nothing to change."""
        async with self._lock(plan_id):
            for attempt in range(RETRIES):
                stored = await self.get(plan_id, fresh=attempt > 0)
                plan = stored.plan
                if expected_version and plan.version != expected_version:
                    raise Aborted(
                        f"the plan is at version {plan.version}, not {expected_version}: "
                        "reload it and apply the change again",
                        reason="PLAN_VERSION_MISMATCH",
                    )
                edited = edit(plan)
                if edited is None:
                    return stored
                now = self._clock.now()
                if optimize:
                    unchanged = edited == plan
                    edited = await self.optimize(edited, now, reason)
                    if unchanged and not edited.optimized:
                        return stored  # a replan that could not reach routing: retried later
                else:
                    edited = replace(edited, last_replan_reason=reason)
                edited = edited.bump(now)
                try:
                    result = await self._save(stored, edited, idem, reply)
                except Stale:
                    continue
                if isinstance(result, bytes):
                    return result
                self._committed(result, True)
                return result
        raise Aborted("the plan kept changing; try again", reason="PLAN_BUSY")

    async def _save(
        self,
        stored: Stored,
        plan: Plan,
        idem: Idem | None,
        reply: Callable[[Stored], bytes] | None,
    ) -> Stored | bytes:
        if idem is None or not idem.key:
            return await self._store.save_plan(plan, stored.revision, self._announce(plan))
        saved: list[Stored] = []

        async def work(conn: asyncpg.Connection) -> bytes:
            result = await self._store.save_plan(plan, stored.revision, self._announce(plan), conn)
            saved.append(result)
            assert reply is not None
            return reply(result)

        raw = await self._store.idempotent(idem, lambda b: b, lambda b: b, work)
        return saved[0] if saved else raw

    async def progress(self, plan_id: str, update: Callable[[Plan], Plan | None]) -> Plan | None:
        """Record progress (no version bump, no announcement); None if nothing
        changed."""
        async with self._lock(plan_id):
            for attempt in range(RETRIES):
                stored = await self.get(plan_id, fresh=attempt > 0)
                updated = update(stored.plan)
                if updated is None:
                    return None
                updated = replace(updated, updated_at=self._clock.now())
                try:
                    saved = await self._store.save_plan(updated, stored.revision)
                except Stale:
                    continue
                self._committed(saved, False)
                return saved.plan
        log.warning("progress not recorded: plan kept changing", extra={"plan_id": plan_id})
        return None

    # --- queue bookings ------------------------------------------------------------

    async def sync_queue_booking(self, b: QueueBooking) -> Plan | None:
        """Bring a queue booking into the party's plan of its day (added, its
        window moved, or removed when cancelled), and replan."""
        day = self._facts.venue_date(b.window.start if b.window else b.updated_at)
        stored = await self.of_party(b.party_id, day)
        if stored is None:
            return None
        plan_id = stored.plan.plan_id
        wanted = booking_of(plan_id, b)

        def edit(plan: Plan) -> Plan | None:
            current = plan.booking(wanted.booking_id)
            if not b.active:
                if current is None:
                    return None
                used = any(
                    s.booking_id == current.booking_id and s.state not in (UPCOMING,)
                    for s in plan.stops
                )
                if used:
                    return None
                return replace(
                    plan,
                    bookings=tuple(x for x in plan.bookings if x.booking_id != current.booking_id),
                    stops=tuple(s for s in plan.stops if s.booking_id != current.booking_id),
                )
            if current == wanted or b.booking_id in plan.dropped_refs:
                return None
            others = tuple(x for x in plan.bookings if x.booking_id != wanted.booking_id)
            return replace(plan, bookings=(*others, wanted))

        result = await self.change(plan_id, edit, reason=BOOKING_CHANGED)
        assert not isinstance(result, bytes)
        return result.plan

    # --- replans the engine asks for ----------------------------------------------

    def request_replan(self, plan_id: str, reason: int) -> None:
        current = self._pending.get(plan_id)
        if current is None or URGENCY.get(reason, 9) < URGENCY.get(current, 9):
            self._pending[plan_id] = reason
        self._wake.set()

    async def run_replans(self) -> None:
        """Background: the replan queue, and retries of unoptimized plans."""
        workers = [asyncio.create_task(self._replan_worker()) for _ in range(REPLAN_WORKERS)]
        try:
            while True:
                await asyncio.sleep(RETRY_UNOPTIMIZED_S)
                if not self._router.available:
                    continue
                for plan in self.plans_today():
                    if plan.planned_at is None and plan.plan_id not in self._pending:
                        self._pending[plan.plan_id] = plan.last_replan_reason or CREATED
                        self._wake.set()
        finally:
            for worker in workers:
                worker.cancel()

    async def _replan_worker(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            plan_id = min(self._pending, key=lambda p: URGENCY.get(self._pending[p], 9))
            reason = self._pending.pop(plan_id)
            try:
                await self.replan(plan_id, reason)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("replan failed", extra={"plan_id": plan_id}, exc_info=True)
                await asyncio.sleep(0.5)

    async def replan(self, plan_id: str, reason: int) -> Stored:
        now = self._clock.now()

        def edit(plan: Plan) -> Plan:
            # Marked even if routing fails, so a party behind is not replanned in a loop.
            if reason == BEHIND:
                return replace(plan, behind_replan_at=now)
            return plan

        result = await self.change(plan_id, edit, reason=reason)
        assert not isinstance(result, bytes)
        return result


def booking_of(plan_id: str, b: QueueBooking) -> Booking:
    """A queue booking as a booking of the plan."""
    kind = (
        pb.PLAN_BOOKING_KIND_VIRTUAL_QUEUE
        if b.kind == pb.PLAN_BOOKING_KIND_VIRTUAL_QUEUE
        else pb.PLAN_BOOKING_KIND_RETURN_TIME
    )
    return Booking(
        booking_id=(
            planning.booking_id_for_queue(plan_id, b.booking_id) if plan_id else b.booking_id
        ),
        kind=kind,
        poi_id=b.attraction_id,
        window=b.window,
        external_ref=b.booking_id,
        guest_ids=b.guest_ids,
        called_at=b.called_at,
    )
