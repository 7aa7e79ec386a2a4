"""Turning a plan into the optimizer's question and its answer back into stops:
pure. The optimizer itself is routing's PlanItinerary (stateless); this module
decides what is left to plan, from where and when, and keeps what already
happened (done, missed, in progress) in front of the new order.

Stop ids are derived from the plan and the wish or booking they serve, so a stop
keeps its id across replans and a nudge's "skip this stop" still means the same
stop after the order changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import IntEnum

from services.itinerary.facts import VenueFacts
from services.itinerary.model import (
    DONE,
    IN_PROGRESS,
    MISSED,
    MUST_DO,
    SHOW,
    SKIPPED,
    UPCOMING,
    Booking,
    Place,
    Plan,
    SkippedWish,
    Stop,
    Window,
)
from services.venue_model import PoiKind
from venue.itinerary.v1 import itinerary_pb2 as pb

GUEST_CHOICE = int(pb.SKIP_REASON_GUEST_CHOICE)
WINDOW_PASSED = int(pb.SKIP_REASON_WINDOW_PASSED)
NOT_OPERATING = int(pb.SKIP_REASON_NOT_OPERATING)
# A show stop is fixed-time once a performance is chosen: be there for its start.
SHOW_DOORS = timedelta(minutes=5)


class ItemKind(IntEnum):
    """routing.v1.PlanItemKind, by number."""

    ATTRACTION = 1
    BOOKED_ATTRACTION = 2
    MEAL = 3
    SHOW = 4
    VISIT = 5


@dataclass(frozen=True, slots=True)
class Item:
    """One item of the optimizer's question."""

    item_id: str
    poi_id: str
    kind: ItemKind
    must_do: bool
    window: Window | None
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class Question:
    start: Place
    start_at: datetime
    leave_at: datetime
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class RoutedStop:
    item_id: str
    arrive_at: datetime
    walk_s: float
    wait_s: float
    start_at: datetime
    end_at: datetime
    route_zones: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoutedSkip:
    item_id: str
    reason: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    stops: tuple[RoutedStop, ...]
    skipped: tuple[RoutedSkip, ...]


def stop_id(plan_id: str, *, wish_id: str = "", booking_id: str = "") -> str:
    name = f"wish:{wish_id}" if wish_id else f"booking:{booking_id}"
    return str(uuid.uuid5(uuid.UUID(plan_id), name))


def booking_id_for_queue(plan_id: str, queue_booking_id: str) -> str:
    """A queue booking's id in the plan: the same one however often it is seen."""
    return str(uuid.uuid5(uuid.UUID(plan_id), f"queue:{queue_booking_id}"))


def item_kind(facts: VenueFacts, poi_id: str) -> ItemKind:
    fact = facts.poi(poi_id)
    if fact is None:
        return ItemKind.VISIT
    if fact.is_attraction:
        return ItemKind.ATTRACTION
    if fact.kind == PoiKind.SHOW:
        return ItemKind.SHOW
    if fact.kind == PoiKind.FOOD:
        return ItemKind.MEAL
    return ItemKind.VISIT


def _booking_kind(facts: VenueFacts, booking: Booking) -> ItemKind:
    if booking.from_queue:
        return ItemKind.BOOKED_ATTRACTION
    if booking.kind == SHOW:
        return ItemKind.SHOW
    return ItemKind.MEAL


def finished_wishes(plan: Plan) -> set[str]:
    return {s.wish_id for s in plan.stops if s.wish_id and s.state in (DONE, IN_PROGRESS)}


def _live_bookings(plan: Plan) -> list[Booking]:
    settled = {s.booking_id for s in plan.stops if s.booking_id and s.state in (DONE, MISSED)}
    return [b for b in plan.bookings if b.booking_id not in settled]


def served_by_booking(plan: Plan) -> dict[str, str]:
    """Wish id -> booking id, for wishes a queue booking already covers (a return
    time for a ride on the wish list replaces its standby visit)."""
    served: dict[str, str] = {}
    bookings = [b for b in _live_bookings(plan) if b.from_queue]
    for wish in plan.wishes:
        match = next((b for b in bookings if b.poi_id == wish.poi_id), None)
        if match is not None:
            served[wish.wish_id] = match.booking_id
    return served


def items(plan: Plan, facts: VenueFacts) -> list[Item]:
    """What is left to plan: wishes not done, skipped or served by a booking,
    and bookings with a window that have not happened."""
    done = finished_wishes(plan)
    served = served_by_booking(plan)
    found: list[Item] = []
    for wish in plan.wishes:
        if wish.wish_id in done or wish.wish_id in plan.guest_skipped or wish.wish_id in served:
            continue
        window = wish.window
        not_before = plan.not_before_of(wish.wish_id)
        if not_before is not None:
            end = window.end if window else (plan.settings.leave_at or facts.closing(plan.date))
            start = max(not_before, window.start) if window else not_before
            window = Window(start, max(end, start + timedelta(minutes=1)))
        found.append(
            Item(
                item_id=stop_id(plan.plan_id, wish_id=wish.wish_id),
                poi_id=wish.poi_id,
                kind=item_kind(facts, wish.poi_id),
                must_do=wish.priority == MUST_DO,
                window=window,
                duration_s=wish.duration_s,
            )
        )
    in_progress = {s.booking_id for s in plan.stops if s.booking_id and s.state == IN_PROGRESS}
    for booking in _live_bookings(plan):
        if booking.window is None or booking.booking_id in in_progress:
            continue
        found.append(
            Item(
                item_id=stop_id(plan.plan_id, booking_id=booking.booking_id),
                poi_id=booking.poi_id,
                kind=_booking_kind(facts, booking),
                # A booking is a commitment: kept unless it cannot be made.
                must_do=True,
                window=booking.window,
                duration_s=None,
            )
        )
    return found


def question(plan: Plan, facts: VenueFacts, now: datetime) -> Question:
    """Where and when the rest of the day starts, and what is in it."""
    day_open = facts.opening(plan.date)
    leave = plan.settings.leave_at or facts.closing(plan.date)
    start_at = max(now, plan.settings.arrive_at or day_open)
    place = plan.place if plan.in_venue(now) and plan.place else Place()
    busy = next((s for s in plan.stops if s.state == IN_PROGRESS), None)
    if busy is not None:
        # Plan from the end of what the party is doing now.
        fact = facts.poi(busy.poi_id)
        if fact is not None:
            place = fact.place
        if busy.end_at is not None:
            start_at = max(start_at, busy.end_at)
    if not place:
        place = plan.settings.start_place or facts.entrance
    return Question(place, start_at, max(leave, start_at), tuple(items(plan, facts)))


def _history(plan: Plan) -> list[Stop]:
    return [s for s in plan.stops if s.state in (DONE, MISSED, IN_PROGRESS)]


def _stop_for(plan: Plan, item: Item) -> Stop:
    wish_id = booking_id = ""
    for wish in plan.wishes:
        if stop_id(plan.plan_id, wish_id=wish.wish_id) == item.item_id:
            wish_id = wish.wish_id
    if not wish_id:
        for booking in plan.bookings:
            if stop_id(plan.plan_id, booking_id=booking.booking_id) == item.item_id:
                booking_id = booking.booking_id
    return Stop(
        stop_id=item.item_id,
        poi_id=item.poi_id,
        wish_id=wish_id,
        booking_id=booking_id,
        must_do=item.must_do if wish_id else True,
        window=item.window if (booking_id or item.window) else None,
    )


def merge(plan: Plan, q: Question, answer: Answer, now: datetime, reason: int) -> Plan:
    """The plan with the optimizer's order after what already happened."""
    by_id = {item.item_id: item for item in q.items}
    wish_must = {w.wish_id: w.priority == MUST_DO for w in plan.wishes}
    stops = _history(plan)
    seen = {s.stop_id for s in stops}
    for routed in answer.stops:
        item = by_id.get(routed.item_id)
        if item is None or routed.item_id in seen:
            continue
        base = _stop_for(plan, item)
        window = base.window
        if item.kind is ItemKind.SHOW and window is None:
            window = Window(routed.start_at, routed.start_at + SHOW_DOORS)
        stops.append(
            replace(
                base,
                state=UPCOMING,
                must_do=wish_must.get(base.wish_id, True) if base.wish_id else True,
                window=window,
                arrive_at=routed.arrive_at,
                walk_s=routed.walk_s,
                wait_s=routed.wait_s,
                start_at=routed.start_at,
                end_at=routed.end_at,
                route_zones=routed.route_zones,
            )
        )
        seen.add(routed.item_id)
    skipped: list[SkippedWish] = []
    for skip in answer.skipped:
        item = by_id.get(skip.item_id)
        if item is None or skip.item_id in seen:
            continue
        base = _stop_for(plan, item)
        stops.append(replace(base, state=SKIPPED))
        seen.add(skip.item_id)
        if base.wish_id:
            skipped.append(SkippedWish(base.wish_id, skip.reason, skip.detail))
    # Items the optimizer did not mention at all are kept, unplanned, at the end.
    for item in q.items:
        if item.item_id not in seen:
            stops.append(replace(_stop_for(plan, item), state=SKIPPED))
            seen.add(item.item_id)
    skipped += [
        SkippedWish(w, GUEST_CHOICE, "you chose to skip it") for w in sorted(plan.guest_skipped)
    ]
    before = plan.next_stop()
    return replace(
        plan,
        stops=tuple(stops),
        skipped=tuple(skipped),
        planned_at=now,
        last_replan_reason=reason,
        previous_next_stop_id=before.stop_id if before else "",
    )


def unoptimized(plan: Plan, q: Question, reason: int) -> Plan:
    """The plan while the optimizer cannot be reached: the wish list's order,
    no predictions, planned_at unset so the app shows it is still being
    optimized; the service retries in the background."""
    stops = _history(plan)
    seen = {s.stop_id for s in stops}
    ordered = sorted(q.items, key=lambda i: i.window.start if i.window else q.leave_at)
    for item in ordered:
        if item.item_id not in seen:
            stops.append(_stop_for(plan, item))
            seen.add(item.item_id)
    stops += _guest_skipped(plan, seen)
    skipped = tuple(
        SkippedWish(w, GUEST_CHOICE, "you chose to skip it") for w in sorted(plan.guest_skipped)
    )
    return replace(
        plan, stops=tuple(stops), skipped=skipped, planned_at=None, last_replan_reason=reason
    )


def _guest_skipped(plan: Plan, seen: set[str]) -> list[Stop]:
    """The stops the guest chose to skip, kept (crossed out) at the end."""
    found: list[Stop] = []
    for wish in plan.wishes:
        sid = stop_id(plan.plan_id, wish_id=wish.wish_id)
        if wish.wish_id in plan.guest_skipped and sid not in seen:
            found.append(
                Stop(
                    sid,
                    wish.poi_id,
                    SKIPPED,
                    wish_id=wish.wish_id,
                    must_do=wish.priority == MUST_DO,
                )
            )
            seen.add(sid)
    return found


# --- the guest's own changes ---------------------------------------------------


def skip_stop(plan: Plan, stop_id_: str) -> Plan | None:
    """Drop an upcoming stop on the guest's word (a wish; bookings stay)."""
    stop = plan.stop(stop_id_)
    if stop is None or stop.state != UPCOMING or not stop.wish_id:
        return None
    stops = tuple(replace(s, state=SKIPPED) if s.stop_id == stop_id_ else s for s in plan.stops)
    return replace(plan, stops=stops, guest_skipped=plan.guest_skipped | {stop.wish_id})


def move_stop(plan: Plan, stop_id_: str, before_stop_id: str, now: datetime) -> Plan | None:
    """Move an upcoming wish later: it may not start before the stop it is to
    precede is due (or, to the end, before the last other stop is due)."""
    stop = plan.stop(stop_id_)
    if stop is None or stop.state != UPCOMING or not stop.wish_id:
        return None
    others = [s for s in plan.stops if s.state == UPCOMING and s.stop_id != stop_id_]
    anchor: Stop | None
    if before_stop_id:
        target = plan.stop(before_stop_id)
        if target is None or target.state != UPCOMING:
            return None
        index = next(i for i, s in enumerate(others) if s.stop_id == before_stop_id)
        anchor = others[index - 1] if index > 0 else None
    else:
        anchor = others[-1] if others else None
    not_before = now
    if anchor is not None and anchor.start_at is not None:
        not_before = max(now, anchor.start_at)
    constraints = dict(plan.not_before)
    constraints[stop.wish_id] = not_before
    return replace(plan, not_before=tuple(sorted(constraints.items())))


def upcoming_ids(stops: Sequence[Stop]) -> list[str]:
    return [s.stop_id for s in stops if s.state == UPCOMING]
