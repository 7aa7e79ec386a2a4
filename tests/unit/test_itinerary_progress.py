"""Progress from taps, places and charges, and the schedule offset."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.itinerary import progress
from services.itinerary.model import (
    DONE,
    IN_PROGRESS,
    MEAL_RESERVATION,
    MISSED,
    RETURN_TIME,
    UPCOMING,
    Booking,
    Place,
    Window,
)
from services.itinerary.progress import Tap, TapKind
from tests.unit.test_itinerary_kit import FACTS, MIN, at, plan_of, stop


def tap(kind: TapKind, ride: str = "", minute: int = 0, tap_id: str = "", hour: int = 10) -> Tap:
    return Tap(
        tap_id or f"{kind.value}-{ride}-{hour}-{minute}",
        kind,
        "guest-1",
        at(hour, minute),
        ride,
        FACTS.pois[ride].place if ride else Place("plaza", "n.gate"),
    )


def test_standby_then_boarding_takes_a_stop_through_its_states() -> None:
    plan = plan_of(stop("boats", at(10)), stop("coaster", at(11)))
    joined = progress.apply_tap(plan, tap(TapKind.STANDBY, "boats", 2), FACTS)
    assert joined is not None
    assert [s.state for s in joined.stops] == [IN_PROGRESS, UPCOMING]
    assert joined.stops[0].joined_at == at(10, 2)
    assert joined.place == FACTS.pois["boats"].place
    rode = progress.apply_tap(joined, tap(TapKind.BOARDING, "boats", 20), FACTS)
    assert rode is not None
    boats = rode.stops[0]
    assert boats.state == DONE and boats.actual_start_at == at(10, 20)
    assert boats.actual_end_at == at(10, 28)  # an 8-minute ride
    assert rode.next_stop() == rode.stops[1]


def test_a_replayed_tap_changes_nothing() -> None:
    plan = plan_of(stop("boats", at(10)))
    once = progress.apply_tap(plan, tap(TapKind.BOARDING, "boats", 5, "t1"), FACTS)
    assert once is not None
    assert progress.apply_tap(once, tap(TapKind.BOARDING, "boats", 5, "t1"), FACTS) is None


def test_boarding_without_a_standby_tap_and_rides_off_the_plan() -> None:
    plan = plan_of(stop("boats", at(10)))
    rode = progress.apply_tap(plan, tap(TapKind.BOARDING, "boats", 5), FACTS)
    assert rode is not None and rode.stops[0].state == DONE
    off_plan = progress.apply_tap(plan, tap(TapKind.BOARDING, "teacups", 5), FACTS)
    assert off_plan is not None
    assert off_plan.stops == plan.stops and off_plan.place == FACTS.pois["teacups"].place


def test_joining_another_line_abandons_the_first() -> None:
    plan = plan_of(stop("boats", at(10)), stop("coaster", at(11)))
    joined = progress.apply_tap(plan, tap(TapKind.STANDBY, "boats", 2), FACTS)
    assert joined is not None
    moved = progress.apply_tap(joined, tap(TapKind.STANDBY, "coaster", 9), FACTS)
    assert moved is not None
    assert [s.state for s in moved.stops] == [UPCOMING, IN_PROGRESS]


def test_merge_tap_uses_the_booking_stop() -> None:
    booking = Booking("b1", RETURN_TIME, "coaster", Window(at(11), at(12)), "q1")
    plan = plan_of(
        stop("coaster", at(10)),
        stop("coaster", at(11), booking_id="b1", window=booking.window),
        bookings=(booking,),
    )
    merged = progress.apply_tap(plan, tap(TapKind.MERGE, "coaster", 5, hour=11), FACTS)
    assert merged is not None
    assert [s.state for s in merged.stops] == [UPCOMING, IN_PROGRESS]


def test_gates_say_when_the_party_is_in_the_venue() -> None:
    plan = plan_of(stop("boats", at(10)), entered=None)
    assert not plan.in_venue(at(9))
    inside = progress.apply_tap(plan, tap(TapKind.ENTRY, minute=5, hour=9), FACTS)
    assert inside is not None and inside.in_venue(at(9, 6))
    out = progress.apply_tap(inside, tap(TapKind.EXIT, minute=0, hour=15), FACTS)
    assert out is not None and not out.in_venue(at(15, 1))
    back = progress.apply_tap(out, tap(TapKind.ENTRY, minute=30, hour=15), FACTS)
    assert back is not None and back.in_venue(at(15, 31))


def test_location_starts_and_ends_stops_without_lines() -> None:
    plan = plan_of(stop("boats", at(10)), stop("show", at(11), must=False))
    there = progress.apply_place(plan, Place("show.big", "n.show"), at(11, 2), FACTS)
    assert there is not None and there.stops[1].state == IN_PROGRESS
    brief = progress.apply_place(there, Place("plaza", "n.x"), at(11, 3), FACTS)
    assert brief is not None and brief.stops[1].state == UPCOMING
    stayed = progress.apply_place(there, Place("plaza", "n.x"), at(11, 35), FACTS)
    assert stayed is not None and stayed.stops[1].state == DONE
    # Lines are followed by taps only: walking into a queue zone changes no stop.
    queue = progress.apply_place(plan, Place("queue.boats", "n.q"), at(10), FACTS)
    assert queue is not None and queue.stops == plan.stops
    # An older report than the last one is ignored.
    assert progress.apply_place(stayed, Place("food.cart", "n.c"), at(11), FACTS) is None


def test_a_charge_at_the_restaurant_finishes_the_meal() -> None:
    plan = plan_of(stop("diner", at(12), must=False))
    ate = progress.apply_charge(plan, "diner", at(12, 40))
    assert ate is not None and ate.stops[0].state == DONE
    assert progress.apply_charge(plan, "cart", at(12, 40)) is None


def test_a_window_passed_unused_is_missed_after_the_grace() -> None:
    booking = Booking("b1", RETURN_TIME, "coaster", Window(at(11), at(12)), "q1")
    lunch = Booking("b2", MEAL_RESERVATION, "diner", Window(at(12), at(12, 10)))
    plan = plan_of(
        stop("coaster", at(11), booking_id="b1", window=booking.window),
        stop("diner", at(12), booking_id="b2", window=lunch.window),
        bookings=(booking, lunch),
    )
    assert progress.mark_missed(plan, at(12, 5), FACTS) is None
    meal_only = progress.mark_missed(plan, at(12, 12), FACTS)
    assert meal_only is not None
    assert [s.state for s in meal_only.stops] == [UPCOMING, MISSED]
    # The return window's late grace (15 min) has run out too.
    later = progress.mark_missed(plan, at(12, 16), FACTS)
    assert later is not None
    assert [s.state for s in later.stops] == [MISSED, MISSED]


def test_offset_ahead_behind_and_in_line() -> None:
    plan = plan_of(stop("boats", at(10), walk_min=5, wait_min=20), stop("coaster", at(11)))
    # At 9:40, 5 minutes away from a stop due at 10:00: 15 minutes ahead.
    assert progress.offset_s(plan, at(9, 40), None) == -15 * MIN
    # With a measured 12-minute walk from where the party is: 8 minutes ahead.
    assert progress.offset_s(plan, at(9, 40), 12 * MIN) == -8 * MIN
    assert progress.offset_s(plan, at(10, 10), None) == 15 * MIN
    joined = progress.apply_tap(plan, tap(TapKind.STANDBY, "boats", 7), FACTS)
    assert joined is not None
    assert progress.offset_s(joined, at(10, 15), None) == 7 * MIN
    # Still in line 10 minutes after the planned boarding at 10:20.
    assert progress.offset_s(joined, at(10, 30), None) == 10 * MIN


def test_offset_is_unknown_before_optimizing_and_after_leaving() -> None:
    plan = plan_of(stop("boats", at(10)))
    assert progress.offset_s(replace(plan, planned_at=None), at(10), None) is None
    left = replace(plan, left_at=at(12))
    assert progress.offset_s(left, at(12, 5), None) is None
    late = replace(plan, entered_at=None, place_at=None)
    assert progress.offset_s(late, at(9, 30), None) == 0.0
    assert progress.offset_s(late, at(10, 30), None) == 35 * MIN


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(TapKind)),
            st.sampled_from(["boats", "coaster", "teacups"]),
            st.integers(0, 600),
        ),
        max_size=25,
    )
)
def test_taps_in_any_order_keep_the_plan_sound(taps: list[tuple[TapKind, str, int]]) -> None:
    plan = plan_of(stop("boats", at(10)), stop("coaster", at(11)), stop("teacups", at(12)))
    done_before: set[str] = set()
    for i, (kind, ride, minute) in enumerate(taps):
        t = Tap(
            f"t{i}",
            kind,
            "guest-1",
            at(9) + timedelta(minutes=minute),
            ride,
            FACTS.pois[ride].place,
        )
        after = progress.apply_tap(plan, t, FACTS)
        assert after is not None
        plan = after
        done = {s.stop_id for s in plan.stops if s.state == DONE}
        assert done >= done_before  # a ridden stop stays ridden
        done_before = done
        assert sum(1 for s in plan.stops if s.state == IN_PROGRESS) <= 1
        assert [s.stop_id for s in plan.stops] == [s.stop_id for s in plan.stops]
