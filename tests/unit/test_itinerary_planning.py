"""What goes to the optimizer, and how its answer becomes the plan's stops."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from services.itinerary import planning
from services.itinerary.model import (
    DONE,
    IN_PROGRESS,
    MUST_DO,
    NICE_TO_DO,
    RETURN_TIME,
    SKIPPED,
    UPCOMING,
    Booking,
    Place,
    Plan,
    Window,
    Wish,
)
from services.itinerary.planning import Answer, ItemKind, RoutedSkip, RoutedStop
from tests.unit.test_itinerary_kit import FACTS, MIN, PLAN_ID, at, plan_of

WISH = {
    name: f"00000000-0000-4000-8000-00000000000{i}"
    for i, name in enumerate(["coaster", "boats", "show", "diner", "teacups"], start=1)
}


def wishful(**changes: object) -> Plan:
    plan = plan_of(planned=None)
    wishes = (
        Wish(WISH["coaster"], "coaster", MUST_DO),
        Wish(WISH["boats"], "boats", NICE_TO_DO),
        Wish(WISH["show"], "show", NICE_TO_DO),
        Wish(WISH["diner"], "diner", MUST_DO, Window(at(12), at(13))),
    )
    return replace(plan, wishes=wishes, stops=(), **changes)  # type: ignore[arg-type]


def test_items_map_kinds_and_windows() -> None:
    found = {i.poi_id: i for i in planning.items(wishful(), FACTS)}
    assert found["coaster"].kind is ItemKind.ATTRACTION and found["coaster"].must_do
    assert found["show"].kind is ItemKind.SHOW and not found["show"].must_do
    assert found["diner"].kind is ItemKind.MEAL
    assert found["diner"].window == Window(at(12), at(13))
    assert found["coaster"].item_id == planning.stop_id(PLAN_ID, wish_id=WISH["coaster"])


def test_a_return_time_replaces_the_standby_visit() -> None:
    booking = Booking("b1", RETURN_TIME, "coaster", Window(at(14), at(15)), "q1")
    found = planning.items(wishful(bookings=(booking,)), FACTS)
    coaster = [i for i in found if i.poi_id == "coaster"]
    assert [i.kind for i in coaster] == [ItemKind.BOOKED_ATTRACTION]
    assert coaster[0].window == booking.window and coaster[0].must_do
    waiting = replace(booking, window=None)
    assert not [
        i
        for i in planning.items(wishful(bookings=(waiting,)), FACTS)
        if i.kind is ItemKind.BOOKED_ATTRACTION
    ]


def answer_for(plan: Plan, order: list[str], skip: dict[str, int] | None = None) -> Answer:
    q = planning.question(plan, FACTS, at(9))
    by_poi = {i.poi_id: i for i in q.items}
    t = at(9, 10)
    stops = []
    for poi in order:
        stops.append(
            RoutedStop(
                by_poi[poi].item_id,
                t,
                5 * MIN,
                10 * MIN,
                t + timedelta(minutes=10),
                t + timedelta(minutes=20),
                ("plaza",),
            )
        )
        t += timedelta(minutes=30)
    skipped = tuple(RoutedSkip(by_poi[p].item_id, r, "why") for p, r in (skip or {}).items())
    return Answer(tuple(stops), skipped)


def test_merge_follows_the_optimizer_and_records_skips() -> None:
    plan = wishful()
    q = planning.question(plan, FACTS, at(9))
    merged = planning.merge(
        plan, q, answer_for(plan, ["boats", "coaster", "show"], {"diner": 4}), at(9), 1
    )
    assert [s.poi_id for s in merged.stops] == ["boats", "coaster", "show", "diner"]
    assert [s.state for s in merged.stops] == [UPCOMING, UPCOMING, UPCOMING, SKIPPED]
    assert merged.skipped[0].wish_id == WISH["diner"] and merged.skipped[0].reason == 4
    assert merged.planned_at == at(9) and merged.optimized
    show = merged.stops[2]
    assert show.window is not None and show.window.start == show.start_at
    assert merged.stops[1].must_do and not merged.stops[0].must_do


def test_replanning_keeps_what_happened_in_front() -> None:
    plan = wishful()
    q = planning.question(plan, FACTS, at(9))
    merged = planning.merge(
        plan, q, answer_for(plan, ["boats", "coaster", "show", "diner"]), at(9), 1
    )
    boats, coaster = merged.stops[0], merged.stops[1]
    progressed = replace(
        merged,
        stops=(
            replace(boats, state=DONE),
            replace(coaster, state=IN_PROGRESS, joined_at=at(9, 50)),
            *merged.stops[2:],
        ),
        entered_at=at(9),
        place=Place("plaza", "n.gate"),
    )
    q2 = planning.question(progressed, FACTS, at(10))
    assert {i.poi_id for i in q2.items} == {"show", "diner"}
    # Planning resumes at the ride the party is in line for, when it ends.
    assert q2.start == FACTS.pois["coaster"].place and q2.start_at == coaster.end_at
    again = planning.merge(progressed, q2, answer_for(progressed, ["diner", "show"]), at(10), 8)
    assert [s.poi_id for s in again.stops] == ["boats", "coaster", "diner", "show"]
    assert [s.state for s in again.stops][:2] == [DONE, IN_PROGRESS]
    assert again.stops[2].stop_id == merged.stops[3].stop_id  # ids survive replans
    assert again.previous_next_stop_id == coaster.stop_id


def test_without_the_optimizer_the_wish_order_is_kept_unpredicted() -> None:
    plan = wishful()
    q = planning.question(plan, FACTS, at(9))
    waiting = planning.unoptimized(plan, q, 1)
    assert not waiting.optimized
    assert {s.poi_id for s in waiting.stops} == {"coaster", "boats", "show", "diner"}
    assert all(s.arrive_at is None for s in waiting.stops)


def test_the_guest_skips_and_moves_stops() -> None:
    plan = wishful()
    q = planning.question(plan, FACTS, at(9))
    merged = planning.merge(
        plan, q, answer_for(plan, ["boats", "coaster", "show", "diner"]), at(9), 1
    )
    boats = merged.stops[0]
    skipped = planning.skip_stop(merged, boats.stop_id)
    assert skipped is not None and WISH["boats"] in skipped.guest_skipped
    assert "boats" not in {i.poi_id for i in planning.items(skipped, FACTS)}
    assert planning.skip_stop(skipped, boats.stop_id) is None  # already skipped
    moved = planning.move_stop(merged, boats.stop_id, "", at(9))
    assert moved is not None
    # To the end: not before the last other stop is due.
    item = next(i for i in planning.items(moved, FACTS) if i.poi_id == "boats")
    assert item.window is not None and item.window.start == merged.stops[3].start_at
    booking_stop = planning.move_stop(merged, "nope", "", at(9))
    assert booking_stop is None


def test_question_starts_at_the_gate_before_arrival() -> None:
    plan = replace(wishful(), entered_at=None)
    q = planning.question(plan, FACTS, at(8))
    assert q.start == plan.settings.start_place
    assert q.start_at == at(9)  # opening
    assert q.leave_at == at(21)
