"""Virtual queues and return-time bookings: the writes, their capacity and
holding rules under locks, the calls of virtual-queue groups, windows that
pass, and what the tip board shows about availability.

Capacity decisions for one attraction are serialized by a transaction-scoped
advisory lock, and holdings per guest by one lock per guest (taken in a fixed
order), so concurrent bookings can never overfill a window or exceed a
guest's limit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date

import asyncpg

from services.platform.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from services.platform.idempotency import Idem
from services.queue import bookings as rules
from services.queue.access_client import AccessClient, AccessRefused, AccessUnavailable
from services.queue.bookings import Window
from services.queue.estimate import NO_RETURNS, ReturnArrivals
from services.queue.live import Availability, EventRow, LiveTwin
from services.queue.messages import booking_message, dur, instant, seconds, time_range
from services.queue.parties import PartyDirectory
from services.queue.passes import PassKeeper
from services.queue.schedule import CLOSED, DOWN, SCHEDULED
from services.queue.store import BookingRecord, QueueStore, VirtualQueueState
from services.queue.venue_lines import VenueLines
from venue.access.v1 import access_pb2 as apb
from venue.queue.v1 import queue_pb2 as pb

log = logging.getLogger("venue.queue.bookings")

BOOKING_CREATED = "booking_created"
BOOKING_CALLED = "booking_called"
BOOKING_CANCELLED = "booking_cancelled"
AVAILABILITY_EVERY = 5.0
# Until the day shows how many booked guests come, assume most do.
SHOW_PRIOR, SHOW_PRIOR_WEIGHT = 0.9, 20.0


@dataclass(frozen=True, slots=True)
class Slot:
    window: Window
    remaining: int


class BookingDesk:
    def __init__(
        self,
        store: QueueStore,
        live: LiveTwin,
        lines: VenueLines,
        parties: PartyDirectory,
        access: AccessClient,
        passes: PassKeeper,
    ) -> None:
        self.store = store
        self.live = live
        self.lines = lines
        self.parties = parties
        self.access = access
        self.passes = passes
        self._availability: dict[str, Availability] = {}
        self._waiting: dict[str, list[tuple[int, int]]] = {}
        self._vq_state: dict[str, VirtualQueueState] = {}
        self._show_rate = SHOW_PRIOR
        self._availability_at = -math.inf
        live.availability = self.availability_of
        live.on_closed_for_day = self.close_for_day

    # --- the day and its windows ------------------------------------------------

    def day(self, t: float) -> date:
        return self.live.twin.calendar.venue_date(t)

    def windows(self, attraction: str, t: float) -> list[Window]:
        opens_at, closes_at = self.live.twin.hours_of(attraction, t)
        return rules.return_windows(opens_at, closes_at, self.lines.slot_minutes)

    def capacity(self, attraction: str, window: Window) -> int:
        spec = self.lines.specs[attraction]
        return rules.window_capacity(
            self.live.throughput_per_hour(attraction),
            spec.nameplate_per_hour,
            self.lines.return_share,
            window,
        )

    def _throughput(self, attraction: str) -> tuple[float, float]:
        return self.live.throughput_per_hour(attraction), self.lines.specs[
            attraction
        ].nameplate_per_hour

    # --- who books ----------------------------------------------------------------

    async def party_of(self, guest_ids: list[str], caller_party: str | None) -> str:
        """The one party all `guest_ids` belong to (and the caller's, for a guest)."""
        found = await self.parties.resolve(guest_ids)
        parties = set()
        for guest_id in guest_ids:
            party = found[guest_id]
            if party is None:
                raise NotFound("guest", guest_id)
            parties.add(party)
        if len(parties) != 1:
            raise InvalidArgument("guest_ids", "must all be members of one party")
        party_id = parties.pop()
        if caller_party is not None and party_id != caller_party:
            raise PermissionDenied("not allowed to book for another party")
        return party_id

    async def check_tickets(self, party_id: str, guest_ids: list[str], t: float) -> None:
        """Where the venue has gates, every guest needs a park ticket for today."""
        if not self.lines.has_gates:
            return
        try:
            holders = await self.access.ticket_holders(party_id, self.day(t))
        except AccessUnavailable:
            raise Unavailable("cannot check tickets right now; try again") from None
        except AccessRefused as err:
            log.warning("access refused a ticket check", extra={"code": err.code.name})
            raise Unavailable("cannot check tickets right now; try again") from None
        for guest_id in guest_ids:
            if guest_id not in holders:
                raise FailedPrecondition(
                    "the guest holds no park ticket for today",
                    reason="NO_VALID_TICKET",
                    subject=guest_id,
                )

    async def _check_holdings(
        self, conn: asyncpg.Connection, attraction: str, guests: list[str]
    ) -> None:
        await self.store.lock_guests(conn, guests)
        held, here = await self.store.holdings(conn, guests, attraction, list(rules.ACTIVE))
        violation = rules.holdings_violation(guests, held, here, self.lines.max_holdings)
        if violation is not None:
            guest, why = violation
            reason = "ALREADY_BOOKED" if guest in here else "HOLDING_LIMIT"
            raise FailedPrecondition(f"the guest {why}", reason=reason, subject=guest)

    # --- writes -----------------------------------------------------------------

    async def book_return_time(
        self,
        attraction: str,
        guests: list[str],
        party_id: str,
        window: Window | None,
        idem: Idem,
        t: float,
    ) -> BookingRecord:
        spec = self.lines.specs[attraction]
        if not spec.return_time:
            raise FailedPrecondition(
                "this attraction offers no return times",
                reason="RETURN_TIME_NOT_OFFERED",
                subject=attraction,
            )
        self._require_open_today(attraction, t)
        windows = self.windows(attraction, t)
        if window is not None and window not in windows:
            raise InvalidArgument("window", "not one of the attraction's return windows today")
        if window is not None and not rules.bookable(window, t):
            raise FailedPrecondition(
                "that window has passed", reason="WINDOW_PASSED", subject=attraction
            )
        await self.check_tickets(party_id, guests, t)
        candidates = (
            [window] if window is not None else [w for w in windows if rules.bookable(w, t)]
        )

        async def work(conn: asyncpg.Connection) -> str:
            await self.store.lock_attraction(conn, attraction)
            await self._check_holdings(conn, attraction, guests)
            for candidate in candidates:
                booked = await self.store.booked_in_window(
                    conn,
                    attraction,
                    instant(candidate.start),
                    rules.RETURN_TIME,
                    list(rules.HOLDING),
                )
                if rules.admit(booked, len(guests), self.capacity(attraction, candidate)):
                    booking_id = await self.store.insert_booking(
                        conn,
                        kind=rules.RETURN_TIME,
                        status=rules.CONFIRMED,
                        attraction_id=attraction,
                        party_id=party_id,
                        day=self.day(t),
                        guest_ids=guests,
                        boarding_group=0,
                        window=(instant(candidate.start), instant(candidate.end)),
                        rebooked_from=None,
                        at=instant(t),
                    )
                    await self._event(conn, BOOKING_CREATED, booking_id, t)
                    return booking_id
            if window is not None:
                raise FailedPrecondition(
                    "that window is full", reason="WINDOW_FULL", subject=attraction
                )
            raise FailedPrecondition(
                "return times are sold out today", reason="SOLD_OUT", subject=attraction
            )

        booking_id = await self.store.idempotent(idem, bytes.decode, str.encode, work)
        return await self._after_write(booking_id, attraction)

    async def join_virtual_queue(
        self, attraction: str, guests: list[str], party_id: str, idem: Idem, t: float
    ) -> BookingRecord:
        spec = self.lines.specs[attraction]
        if not spec.virtual_queue:
            raise FailedPrecondition(
                "this attraction runs no virtual queue",
                reason="VIRTUAL_QUEUE_NOT_OFFERED",
                subject=attraction,
            )
        self._require_open_today(attraction, t)
        await self.check_tickets(party_id, guests, t)
        day = self.day(t)

        async def work(conn: asyncpg.Connection) -> str:
            await self.store.lock_attraction(conn, attraction)
            await self._check_holdings(conn, attraction, guests)
            state = await self.store.virtual_queue(conn, attraction, day)
            size = rules.group_size(*self._throughput(attraction), self.lines.return_share)
            group, next_group, next_guests = rules.assign_group(
                state.next_group,
                state.next_group_guests,
                len(guests),
                size,
                state.last_called_group,
            )
            call_at = self._estimated_call(attraction, state, group, t)
            _, closes_at = self.live.twin.hours_of(attraction, t)
            if call_at + self.lines.slot_minutes * 60.0 > closes_at:
                raise FailedPrecondition(
                    "the virtual queue is full for today",
                    reason="VIRTUAL_QUEUE_FULL",
                    subject=attraction,
                )
            await self.store.save_virtual_queue(
                conn,
                VirtualQueueState(
                    attraction,
                    day,
                    next_group,
                    next_guests,
                    state.last_called_group,
                    state.next_call_at,
                ),
            )
            booking_id = await self.store.insert_booking(
                conn,
                kind=rules.VIRTUAL_QUEUE,
                status=rules.WAITING,
                attraction_id=attraction,
                party_id=party_id,
                day=day,
                guest_ids=guests,
                boarding_group=group,
                window=None,
                rebooked_from=None,
                at=instant(t),
            )
            await self._event(conn, BOOKING_CREATED, booking_id, t)
            return booking_id

        booking_id = await self.store.idempotent(idem, bytes.decode, str.encode, work)
        await self._refresh_virtual_queue(attraction, t)
        return await self._after_write(booking_id, attraction)

    async def cancel(
        self, booking_id: str, reason: int, revoke_reason: int, t: float
    ) -> BookingRecord:
        async with self.store.pool.acquire() as conn, conn.transaction():
            record = await self.store.get_booking(booking_id, conn, lock=True)
            if record is None:
                raise NotFound("booking", booking_id)
            verdict = rules.cancellable(record.status)
            if verdict is None:
                raise FailedPrecondition(
                    "the booking was already used or has expired",
                    reason="BOOKING_FINISHED",
                    subject=booking_id,
                )
            if verdict:
                await self.store.cancel_booking(
                    conn, booking_id, reason, revoke_reason, instant(t), rules.CANCELLED
                )
                await self._event(conn, BOOKING_CANCELLED, booking_id, t)
        return await self._after_write(booking_id, record.attraction_id)

    async def rebook(self, booking_id: str, window: Window, idem: Idem, t: float) -> BookingRecord:
        record = await self.store.get_booking(booking_id)
        if record is None:
            raise NotFound("booking", booking_id)
        attraction = record.attraction_id
        if record.kind != rules.RETURN_TIME:
            raise FailedPrecondition(
                "only return-time bookings can move to another window",
                reason="NOT_REBOOKABLE",
                subject=booking_id,
            )
        if window not in self.windows(attraction, t):
            raise InvalidArgument("window", "not one of the attraction's return windows today")
        if not rules.bookable(window, t):
            raise FailedPrecondition(
                "that window has passed", reason="WINDOW_PASSED", subject=attraction
            )

        async def work(conn: asyncpg.Connection) -> str:
            await self.store.lock_attraction(conn, attraction)
            current = await self.store.get_booking(booking_id, conn, lock=True)
            assert current is not None
            if current.status != rules.CONFIRMED:
                raise FailedPrecondition(
                    "only a confirmed booking can be moved",
                    reason="BOOKING_NOT_ACTIVE",
                    subject=booking_id,
                )
            if current.window_start is not None and seconds(current.window_start) == window.start:
                raise FailedPrecondition(
                    "the booking is already in that window",
                    reason="SAME_WINDOW",
                    subject=booking_id,
                )
            guests = current.guest_ids
            booked = await self.store.booked_in_window(
                conn, attraction, instant(window.start), rules.RETURN_TIME, list(rules.HOLDING)
            )
            if not rules.admit(booked, len(guests), self.capacity(attraction, window)):
                raise FailedPrecondition(
                    "that window is full", reason="WINDOW_FULL", subject=attraction
                )
            new_id = await self.store.insert_booking(
                conn,
                kind=rules.RETURN_TIME,
                status=rules.CONFIRMED,
                attraction_id=attraction,
                party_id=current.party_id,
                day=current.venue_date,
                guest_ids=guests,
                boarding_group=0,
                window=(instant(window.start), instant(window.end)),
                rebooked_from=booking_id,
                at=instant(t),
            )
            await self.store.cancel_booking(
                conn,
                booking_id,
                pb.CANCEL_REASON_REBOOKED,
                apb.REVOCATION_REASON_REBOOKED,
                instant(t),
                rules.CANCELLED,
            )
            await self._event(conn, BOOKING_CANCELLED, booking_id, t)
            await self._event(conn, BOOKING_CREATED, new_id, t)
            return new_id

        new_id = await self.store.idempotent(idem, bytes.decode, str.encode, work)
        # The old passes are revoked before the reply too: a guest told of the
        # move should not find both windows open at the merge.
        return await self._after_write(new_id, attraction, booking_id)

    async def _after_write(self, booking_id: str, attraction: str, *others: str) -> BookingRecord:
        """After commit: deliver the events, write the passes now if access
        answers (the keeper retries otherwise), and show availability."""
        self.live.hub.poke()
        try:
            for changed in (*others, booking_id):
                if not await self.passes.sync(changed):
                    break
        except Exception:
            log.warning("writing passes failed; the keeper retries", exc_info=True)
        self.passes.poke()
        self._availability_at = -math.inf
        record = await self.store.get_booking(booking_id)
        assert record is not None
        return record

    def _require_open_today(self, attraction: str, t: float) -> None:
        status = self.live.twin.status(attraction, t)
        _, closes_at = self.live.twin.hours_of(attraction, t)
        if (status.status == CLOSED and status.reason != SCHEDULED) or t >= closes_at:
            raise FailedPrecondition(
                "the attraction is closed for the rest of the day",
                reason="ATTRACTION_CLOSED",
                subject=attraction,
            )

    async def _event(self, conn: asyncpg.Connection, kind: str, booking_id: str, t: float) -> None:
        record = await self.store.get_booking(booking_id, conn)
        assert record is not None
        message = booking_message(record, self._call_estimate(record, t))
        if kind == BOOKING_CREATED:
            payload = pb.WatchQueueEventsResponse(
                booking_created=pb.BookingCreated(booking=message)
            )
        elif kind == BOOKING_CALLED:
            payload = pb.WatchQueueEventsResponse(booking_called=pb.BookingCalled(booking=message))
        else:
            payload = pb.WatchQueueEventsResponse(
                booking_cancelled=pb.BookingCancelled(booking=message)
            )
        await self.store.append_events(
            conn, [(kind, record.attraction_id, payload.SerializeToString(), instant(t))]
        )

    # --- reads --------------------------------------------------------------------

    async def slots(
        self, attraction: str, t: float, start: float, end: float, party: int
    ) -> list[Slot]:
        booked = await self.store.booked_by_window(
            attraction, self.day(t), rules.RETURN_TIME, list(rules.HOLDING)
        )
        found: list[Slot] = []
        for window in self.windows(attraction, t):
            if window.end <= start or window.start >= end or not rules.bookable(window, t):
                continue
            taken = booked.get(instant(window.start), 0)
            remaining = max(self.capacity(attraction, window) - taken, 0)
            if remaining >= party:
                found.append(Slot(window, remaining))
        return found

    def message(self, record: BookingRecord, t: float) -> pb.Booking:
        return booking_message(record, self._call_estimate(record, t))

    def _call_estimate(self, record: BookingRecord, t: float) -> float | None:
        if record.status != rules.WAITING:
            return None
        state = self._vq_state.get(record.attraction_id)
        if state is None:
            state = VirtualQueueState(record.attraction_id, record.venue_date, 1, 0, 0, None)
        return self._estimated_call(record.attraction_id, state, record.boarding_group, t)

    def _estimated_call(
        self, attraction: str, state: VirtualQueueState, group: int, t: float
    ) -> float:
        """When `group` will be called: the groups before it, at the call rate."""
        if group <= state.last_called_group:
            return t
        opens_at, _ = self.live.twin.hours_of(attraction, t)
        start = max(t, opens_at)
        if state.next_call_at is not None:
            start = max(start, seconds(state.next_call_at))
        rate = rules.call_rate(*self._throughput(attraction), self.lines.return_share, 0.0)
        waiting = self._waiting.get(attraction, [])
        ahead = sum(guests for g, guests in waiting if state.last_called_group < g < group)
        return start + ahead / rate

    def availability_of(self, attraction: str) -> Availability:
        found = self._availability.get(attraction)
        if found is not None:
            return found
        spec = self.lines.specs[attraction]
        return (
            pb.ReturnTimeAvailability(offered=spec.return_time),
            pb.VirtualQueueAvailability(offered=spec.virtual_queue),
        )

    # --- facts from access and identity -----------------------------------------------

    async def on_access(
        self,
        conn: asyncpg.Connection,
        used: list[tuple[str, float]],
        revoked: list[str],
        t: float,
    ) -> None:
        """Passes used at a merge, and passes access revoked itself (staff)."""
        for entitlement_id, at in used:
            found = await self.store.redeem(conn, entitlement_id, instant(at))
            if found is not None and found[1]:
                await self.store.finish_window(conn, found[0], rules.REDEEMED)
        for entitlement_id in revoked:
            found = await self.store.pass_revoked_elsewhere(conn, entitlement_id)
            if found is None or not found[1]:
                continue
            record = await self.store.get_booking(found[0], conn, lock=True)
            if record is not None and rules.cancellable(record.status):
                await self.store.cancel_booking(
                    conn,
                    record.booking_id,
                    pb.CANCEL_REASON_STAFF,
                    apb.REVOCATION_REASON_STAFF,
                    instant(t),
                    rules.CANCELLED,
                )
                await self._event(conn, BOOKING_CANCELLED, record.booking_id, t)

    async def erase(self, guest_id: str, t: float) -> None:
        """An erased guest leaves their bookings; a booking left empty is cancelled."""
        async with self.store.pool.acquire() as conn, conn.transaction():
            booking_ids = await self.store.bookings_of_guest(conn, guest_id, list(rules.ACTIVE))
            await self.store.erase_guest(conn, guest_id)
            for booking_id in booking_ids:
                if await self.store.live_guests(conn, booking_id) == 0:
                    await self.store.cancel_booking(
                        conn,
                        booking_id,
                        pb.CANCEL_REASON_GUEST_ERASED,
                        apb.REVOCATION_REASON_GUEST_ERASED,
                        instant(t),
                        rules.CANCELLED,
                    )
                    await self._event(conn, BOOKING_CANCELLED, booking_id, t)
        self.live.hub.poke()
        self.passes.poke()

    async def close_for_day(
        self, conn: asyncpg.Connection, attraction: str, t: float
    ) -> list[EventRow]:
        """Ops closed the attraction for the rest of the day: its bookings end."""
        for booking_id in await self.store.active_bookings_at(
            conn, attraction, self.day(t), list(rules.ACTIVE)
        ):
            await self.store.cancel_booking(
                conn,
                booking_id,
                pb.CANCEL_REASON_ATTRACTION_CLOSED,
                apb.REVOCATION_REASON_ATTRACTION_CLOSED,
                instant(t),
                rules.CANCELLED,
            )
            await self._event(conn, BOOKING_CANCELLED, booking_id, t)
        self.passes.poke()
        return []

    # --- the clock --------------------------------------------------------------------

    async def tick(self) -> None:
        """Windows that passed, virtual-queue groups due a call, the merges the
        twin should expect, and the tip board's availability."""
        t = self.live.now()
        called = False
        async with self.store.pool.acquire() as conn, conn.transaction():
            late = self.lines.late_grace_minutes * 60.0
            for booking_id, used in await self.store.due_to_finish(
                conn, instant(t - late), [rules.CONFIRMED, rules.CALLED]
            ):
                status = rules.expired_status(used)
                await self.store.finish_window(conn, booking_id, status)
                if status == rules.EXPIRED:
                    await self._event(conn, BOOKING_CANCELLED, booking_id, t)
            for attraction, spec in self.lines.specs.items():
                if spec.virtual_queue:
                    called |= await self._call_next(conn, attraction, t)
        self.live.hub.poke()
        if called:
            self.passes.poke()
        await self._expect_merges(t)
        if called or t - self._availability_at >= AVAILABILITY_EVERY * self.live.clock.speed:
            self._availability_at = t
            await self._refresh_availability(t)

    async def _call_next(self, conn: asyncpg.Connection, attraction: str, t: float) -> bool:
        status = self.live.twin.status(attraction, t)
        opens_at, closes_at = self.live.twin.hours_of(attraction, t)
        if status.status in (CLOSED, DOWN) or not opens_at <= t < closes_at:
            return False
        day = self.day(t)
        state = await self.store.virtual_queue(conn, attraction, day)
        if state.next_call_at is not None and t < seconds(state.next_call_at):
            return False
        waiting = await self.store.waiting_by_group(attraction, day, rules.WAITING)
        self._waiting[attraction] = waiting
        due = [(g, guests) for g, guests in waiting if g > state.last_called_group]
        if not due:
            return False
        group, guests = due[0]
        window = (instant(t), instant(min(t + self.lines.slot_minutes * 60.0, closes_at)))
        booking_ids = await self.store.call_group(
            conn, attraction, day, group, window, instant(t), rules.WAITING, rules.CALLED
        )
        merging = self.live.twin.returns.get(attraction, NO_RETURNS).rate_at(t)
        rate = rules.call_rate(*self._throughput(attraction), self.lines.return_share, merging)
        state = VirtualQueueState(
            attraction,
            day,
            state.next_group,
            state.next_group_guests,
            group,
            instant(t + guests / rate),
        )
        await self.store.save_virtual_queue(conn, state)
        self._vq_state[attraction] = state
        for booking_id in booking_ids:
            await self._event(conn, BOOKING_CALLED, booking_id, t)
        return True

    async def _expect_merges(self, t: float) -> None:
        """Tell the twin how many booked guests will merge, and when."""
        day = self.day(t)
        redeemed, booked = await self.store.show_rate(
            day, instant(t - self.lines.late_grace_minutes * 60.0)
        )
        self._show_rate = (redeemed + SHOW_PRIOR * SHOW_PRIOR_WEIGHT) / (booked + SHOW_PRIOR_WEIGHT)
        early = self.lines.early_grace_minutes * 60.0
        segments: dict[str, list[tuple[float, float, float]]] = {}
        for attraction, start, end, guests in await self.store.expected_merges(
            day, [rules.CONFIRMED, rules.CALLED]
        ):
            segments.setdefault(attraction, []).append(
                (seconds(start) - early, seconds(end), guests * self._show_rate)
            )
        for attraction, spec in self.lines.specs.items():
            if spec.return_time or spec.virtual_queue:
                found = tuple(sorted(segments.get(attraction, [])))
                self.live.twin.set_returns(
                    attraction, ReturnArrivals(found) if found else NO_RETURNS
                )

    async def _refresh_virtual_queue(self, attraction: str, t: float) -> None:
        day = self.day(t)
        self._waiting[attraction] = await self.store.waiting_by_group(
            attraction, day, rules.WAITING
        )
        self._vq_state[attraction] = await self.store.virtual_queue_state(attraction, day)

    async def _refresh_availability(self, t: float) -> None:
        for attraction, spec in self.lines.specs.items():
            if not (spec.return_time or spec.virtual_queue):
                continue
            return_time = pb.ReturnTimeAvailability(offered=spec.return_time)
            if spec.return_time:
                open_slots = await self.slots(attraction, t, t, math.inf, 1)
                if open_slots:
                    first = open_slots[0].window
                    return_time.next_window.CopyFrom(time_range(first.start, first.end))
            virtual_queue = pb.VirtualQueueAvailability(offered=spec.virtual_queue)
            if spec.virtual_queue:
                await self._refresh_virtual_queue(attraction, t)
                state = self._vq_state[attraction]
                size = rules.group_size(*self._throughput(attraction), self.lines.return_share)
                next_group, _, _ = rules.assign_group(
                    state.next_group, state.next_group_guests, 1, size, state.last_called_group
                )
                call_at = self._estimated_call(attraction, state, next_group, t)
                _, closes_at = self.live.twin.hours_of(attraction, t)
                status = self.live.twin.status(attraction, t)
                open_today = (
                    not (status.status == CLOSED and status.reason != SCHEDULED) and t < closes_at
                )
                virtual_queue.joinable = (
                    open_today and call_at + self.lines.slot_minutes * 60.0 <= closes_at
                )
                virtual_queue.last_called_group = state.last_called_group
                virtual_queue.next_group = next_group
                virtual_queue.estimated_call_in.CopyFrom(dur(call_at - t))
            availability = (return_time, virtual_queue)
            if self._availability.get(attraction) != availability:
                self._availability[attraction] = availability
                self.live.availability_changed(attraction)
