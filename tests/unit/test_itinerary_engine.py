"""Each nudge rule in constructed situations: when it speaks, what it says, and
when it keeps quiet; plus what the engine asks routing for, what it withdraws
and when it asks for a replan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from services.itinerary import engine
from services.itinerary.engine import RouteOption, Situation, SnackOption
from services.itinerary.live import CLOSED, DOWN, OPEN, LiveVenue
from services.itinerary.model import (
    BETTER_ROUTE,
    BOARDING_GROUP_CALLED,
    DONE,
    GO_NOW,
    IN_PROGRESS,
    LEAVE_NOW,
    MEAL_RESERVATION,
    RETURN_TIME,
    RIDE_DOWN_REPLAN,
    SENT,
    SKIP_OR_MOVE,
    SKIPPED,
    SNACK_BREAK,
    TIME_CRITICAL,
    VIRTUAL_QUEUE,
    Booking,
    MoveStop,
    Nudge,
    OpenPlan,
    OpenRoute,
    Plan,
    SkippedWish,
    SkipStop,
    Window,
)
from tests.unit.test_itinerary_kit import FACTS, MIN, at, live_of, plan_of, stop


def situation(
    plan: Plan,
    now: datetime,
    venue: LiveVenue | None = None,
    walks: Mapping[str, float] | None = None,
    offset_min: float | None = 0.0,
    snacks: tuple[SnackOption, ...] = (),
    route: RouteOption | None = None,
) -> Situation:
    venue = venue or live_of()
    return Situation(
        now=now,
        plan=plan,
        facts=FACTS,
        lines=venue.lines,
        forecast=venue.forecast_wait,
        walks={k: v * MIN for k, v in (walks or {}).items()},
        offset_s=None if offset_min is None else offset_min * MIN,
        snacks=snacks,
        route=route,
    )


def kinds(s: Situation) -> list[int]:
    return [c.kind for c in engine.candidates(s)]


# --- go now -------------------------------------------------------------------


def two_rides() -> Plan:
    return plan_of(stop("boats", at(10), wait_min=10), stop("coaster", at(11), wait_min=45))


def test_go_now_when_a_later_must_do_is_far_below_forecast() -> None:
    venue = live_of(waits={"coaster": 10, "boats": 10}, forecasts={"coaster": 50, "boats": 10})
    [cand] = engine.go_now(situation(two_rides(), at(10), venue, walks={"coaster": 6}))
    assert cand.kind == GO_NOW
    assert isinstance(cand.action, OpenRoute) and cand.action.destination_poi_id == "coaster"
    # Planned 50 min in line (forecast at the planned time), 10 now, 6 min walk.
    assert cand.time_saved_s == (50 - 10 - 6) * MIN
    assert "must-do" in cand.reason and "10 min" in cand.reason and "50 min" in cand.reason


def test_no_go_now_for_nice_to_dos_small_drops_or_parties_in_line() -> None:
    walks = {"coaster": 6}
    small_drop = live_of(waits={"coaster": 40}, forecasts={"coaster": 50})
    assert engine.go_now(situation(two_rides(), at(10), small_drop, walks)) == []
    nice = plan_of(stop("boats", at(10)), stop("coaster", at(11), must=False))
    drop = live_of(waits={"coaster": 10}, forecasts={"coaster": 50})
    assert engine.go_now(situation(nice, at(10), drop, walks)) == []
    in_line = plan_of(
        replace(stop("boats", at(10)), state=IN_PROGRESS, joined_at=at(10)),
        stop("coaster", at(11), wait_min=45),
    )
    assert engine.go_now(situation(in_line, at(10, 5), drop, walks)) == []
    # The next stop: the party is heading there anyway.
    only = plan_of(stop("coaster", at(11), wait_min=45))
    assert engine.go_now(situation(only, at(10), drop, walks)) == []


def test_go_now_needs_the_ride_open() -> None:
    venue = live_of(waits={"coaster": 10}, forecasts={"coaster": 50}, status={"coaster": DOWN})
    assert engine.go_now(situation(two_rides(), at(10), venue, {"coaster": 6})) == []


# --- leave now ----------------------------------------------------------------


def lunch_plan() -> tuple[Plan, Booking]:
    booking = Booking("b-lunch", MEAL_RESERVATION, "diner", Window(at(12, 30), at(12, 45)))
    lunch = stop("diner", at(12, 30), wait_min=0, booking_id="b-lunch", window=booking.window)
    return plan_of(stop("boats", at(11)), lunch, bookings=(booking,)), booking


def test_leave_now_when_the_walk_eats_the_time_left() -> None:
    plan, _ = lunch_plan()
    walks = {"diner": 12}
    # Leave by 12:15 (12 min walk + 3 min buffer); the nudge comes 5 min before.
    assert LEAVE_NOW not in kinds(situation(plan, at(12, 5), walks=walks))
    [cand] = engine.leave_now(situation(plan, at(12, 10), walks=walks))
    assert cand.urgency == TIME_CRITICAL
    assert "12:30" in cand.body and "12-minute walk" in cand.body
    assert "12:15" in cand.reason
    assert cand.expires_at == at(12, 40)
    late = engine.leave_now(situation(plan, at(12, 20), walks=walks))
    assert late and late[0].title.startswith("Running late")


def test_no_leave_now_when_already_there_or_too_late() -> None:
    plan, _ = lunch_plan()
    assert engine.leave_now(situation(plan, at(12, 25), walks={"diner": 0.5})) == []
    assert engine.leave_now(situation(plan, at(12, 35), walks={"diner": 12})) == []


def test_return_time_is_worth_the_standby_wait_it_avoids() -> None:
    booking = Booking("b-rt", RETURN_TIME, "coaster", Window(at(14), at(15)), "q1")
    rt = stop("coaster", at(14), wait_min=5, booking_id="b-rt", window=booking.window)
    plan = plan_of(stop("boats", at(13)), rt, bookings=(booking,))
    venue = live_of(forecasts={"coaster": 70})
    [cand] = engine.leave_now(situation(plan, at(13, 45), venue, walks={"coaster": 10}))
    assert cand.time_saved_s == 70 * MIN
    assert cand.expires_at == at(15)


# --- snack break ----------------------------------------------------------------


def test_snack_when_well_ahead_and_a_short_line_is_close() -> None:
    plan = plan_of(stop("boats", at(11)))
    snacks = (
        SnackOption("diner", 2 * MIN, 15 * MIN),
        SnackOption("cart", 3 * MIN, None, ("n.1", "n.cart")),
    )
    [cand] = engine.snack_break(situation(plan, at(10), offset_min=-25, snacks=snacks))
    assert cand.kind == SNACK_BREAK and isinstance(cand.action, OpenRoute)
    assert cand.action.destination_poi_id == "cart"  # the diner's line is too long
    assert cand.action.node_ids == ("n.1", "n.cart")
    assert "25 min ahead" in cand.reason
    assert engine.snack_break(situation(plan, at(10), offset_min=-10, snacks=snacks)) == []
    far = (SnackOption("cart", 9 * MIN, 0),)
    assert engine.snack_break(situation(plan, at(10), offset_min=-25, snacks=far)) == []


# --- skip or move ---------------------------------------------------------------


def test_behind_suggests_skipping_the_costliest_nice_to_do() -> None:
    plan = plan_of(
        stop("boats", at(11), wait_min=10),
        stop("teacups", at(11, 30), wait_min=30, must=False),
        stop("spinner", at(12, 10), wait_min=10, must=False),
    )
    venue = live_of(forecasts={"teacups": 30, "spinner": 10})
    [cand] = engine.skip_or_move(situation(plan, at(11), venue, offset_min=25))
    assert cand.kind == SKIP_OR_MOVE and isinstance(cand.action, SkipStop)
    assert cand.action.stop_id == plan.stops[1].stop_id
    # Walk 5 + wait 30 + ride 2 minutes back.
    assert cand.time_saved_s == (5 + 30 + 2) * MIN
    assert "25 min behind" in cand.title
    assert engine.skip_or_move(situation(plan, at(11), venue, offset_min=5)) == []


def test_behind_suggests_moving_when_the_line_will_be_short_later() -> None:
    plan = plan_of(stop("boats", at(11)), stop("teacups", at(11, 30), wait_min=40, must=False))
    venue = LiveVenue()
    venue.forecasts = live_of(forecasts={"teacups": 40}).forecasts
    # Quiet in the last hours of the day.
    forecast = venue.forecasts["teacups"]
    forecast.waits = [40 * MIN if s < at(19) else 5 * MIN for s in forecast.starts]
    [cand] = engine.skip_or_move(situation(plan, at(11), venue, offset_min=20))
    assert isinstance(cand.action, MoveStop) and cand.action.before_stop_id == ""
    assert cand.time_saved_s == 35 * MIN


def test_must_dos_and_fixed_times_are_never_offered_for_skipping() -> None:
    plan, _ = lunch_plan()
    assert engine.skip_or_move(situation(plan, at(11), offset_min=40)) == []


# --- better route ----------------------------------------------------------------


def test_better_route_when_routing_found_a_faster_way() -> None:
    plan = plan_of(stop("boats", at(10), zones=("walk.main",)))
    route = RouteOption("boats", 14 * MIN, 8 * MIN, ("a", "b"), ("walk.main",))
    [cand] = engine.better_route(situation(plan, at(9, 50), route=route))
    assert cand.kind == BETTER_ROUTE and cand.time_saved_s == 6 * MIN
    assert isinstance(cand.action, OpenRoute) and cand.action.node_ids == ("a", "b")
    slower = RouteOption("boats", 8 * MIN, 9 * MIN, ("a",))
    assert engine.better_route(situation(plan, at(9, 50), route=slower)) == []
    other = RouteOption("coaster", 14 * MIN, 8 * MIN, ("a",))
    assert engine.better_route(situation(plan, at(9, 50), route=other)) == []


# --- ride down ---------------------------------------------------------------


def test_ride_down_tells_the_new_plan_once_it_is_replanned() -> None:
    coaster = stop("coaster", at(10, 30), wait_min=40)
    plan = plan_of(stop("boats", at(10)), coaster, planned=at(10, 1))
    plan = replace(plan, previous_next_stop_id=coaster.stop_id)
    venue = live_of(status={"coaster": DOWN}, since=at(10))
    [cand] = engine.ride_down(situation(plan, at(10, 2), venue, walks={"coaster": 7}))
    assert cand.kind == RIDE_DOWN_REPLAN and cand.action == OpenPlan(plan.version)
    assert cand.urgency == TIME_CRITICAL  # the party was heading there
    assert cand.time_saved_s == 7 * MIN + engine.OUTAGE_COST_S
    assert cand.dedup_key.startswith("ride_down:coaster:")
    # Before the replan (planned_at older than the outage) the engine waits for it.
    stale = replace(plan, planned_at=at(9, 50))
    assert engine.ride_down(situation(stale, at(10, 2), venue)) == []


def test_ride_closed_for_the_day_and_skipped_is_explained() -> None:
    coaster = replace(stop("coaster", at(10, 30)), state=SKIPPED)
    plan = plan_of(stop("boats", at(10)), coaster, planned=at(10, 1))
    venue = live_of(status={"coaster": CLOSED}, since=at(10))
    [cand] = engine.ride_down(situation(plan, at(10, 2), venue))
    assert "closed for the rest of the day" in cand.title and "off your plan" in cand.body


# --- boarding group called -----------------------------------------------------


def test_called_group_is_a_service_message_with_the_walk() -> None:
    booking = Booking(
        "b-vq",
        VIRTUAL_QUEUE,
        "coaster",
        Window(at(14), at(15)),
        "queue-booking-1",
        called_at=at(14),
    )
    plan = plan_of(stop("boats", at(13)), bookings=(booking,))
    cands = engine.candidates(situation(plan, at(14), walks={"coaster": 9}))
    [board] = [c for c in cands if c.kind == BOARDING_GROUP_CALLED]
    assert board.dedup_key == "board:queue-booking-1"
    assert "9-minute walk" in board.body and "15:00" in board.body
    waiting = replace(booking, window=None, called_at=None)
    assert engine.boarding_candidate(waiting, FACTS, at(14), 60.0) is None
    # Outside the venue, a boarding call still goes out; nothing else does.
    outside = replace(plan, entered_at=None)
    assert kinds(situation(outside, at(14), walks={"coaster": 9})) == [BOARDING_GROUP_CALLED]


# --- wants, withdrawals, checks, replans -----------------------------------------


def test_wants_asks_routing_only_for_what_could_matter() -> None:
    plan, _ = lunch_plan()
    venue = live_of(waits={"boats": 10}, forecasts={"boats": 10})
    quiet = engine.wants(plan, FACTS, venue.lines, venue.forecast_wait, at(10), 0.0, lambda z: 0)
    assert quiet.walk_to == {"boats"} and not quiet.snacks and not quiet.route_to
    soon = engine.wants(
        plan, FACTS, venue.lines, venue.forecast_wait, at(11, 45), -25 * MIN, lambda z: 0
    )
    assert soon.walk_to == {"boats", "diner"} and soon.snacks
    crowded = plan_of(stop("boats", at(10), zones=("walk.main", "queue.boats")))
    busy = engine.wants(
        crowded, FACTS, venue.lines, venue.forecast_wait, at(9, 50), 0.0, lambda z: 0.95
    )
    assert busy.route_to == "boats"
    outside = replace(plan, entered_at=None)
    assert (
        engine.wants(outside, FACTS, venue.lines, venue.forecast_wait, at(10), 0.0, lambda z: 1)
        == engine.Wants()
    )


def nudge_of(kind: int, subject: str, poi: str = "coaster") -> Nudge:
    return Nudge(
        "n1",
        "g",
        "p",
        "plan",
        kind,
        "k",
        subject,
        "t",
        "b",
        "r",
        OpenRoute(poi),
        600,
        2,
        SENT,
        at(10),
        at(11),
    )


def test_go_now_is_withdrawn_when_the_line_grows_back() -> None:
    plan = two_rides()
    coaster = plan.stops[1]
    nudge = nudge_of(GO_NOW, coaster.stop_id)
    still = live_of(waits={"coaster": 30}, forecasts={"coaster": 50})
    assert engine.still_valid(nudge, situation(plan, at(10, 5), still))
    grown = live_of(waits={"coaster": 48}, forecasts={"coaster": 50})
    assert not engine.still_valid(nudge, situation(plan, at(10, 5), grown))
    ridden = replace(plan, stops=(plan.stops[0], replace(coaster, state=DONE)))
    assert not engine.still_valid(nudge, situation(ridden, at(10, 5), still))


def test_next_check_wakes_before_a_reservation() -> None:
    plan, _ = lunch_plan()
    s = situation(plan, at(11, 40), walks={"diner": 12})
    # Leave by 12:15, nudge from 12:10; otherwise look again in 10 minutes.
    assert engine.next_check(s) == at(11, 50)
    assert engine.next_check(replace(s, now=at(12, 2))) == at(12, 10)


def test_next_check_is_never_sooner_than_a_minute() -> None:
    plan, _ = lunch_plan()
    outside = replace(plan, entered_at=None)
    # The reservation has started: nothing to wake for outside the venue.
    assert engine.next_check(situation(outside, at(12, 31))) is None
    assert engine.next_check(situation(outside, at(10))) == at(11, 30)
    # Inside: the leave-now due at 12:10 is 30 seconds away; look in a minute.
    almost = at(12, 9) + timedelta(seconds=30)
    assert engine.next_check(situation(plan, almost, walks={"diner": 12})) == almost + (
        timedelta(minutes=1)
    )
    # Past it (sent or held back), the regular look every 10 minutes.
    assert engine.next_check(situation(plan, at(12, 20), walks={"diner": 12})) == at(12, 30)


def test_replan_reasons() -> None:
    plan = two_rides()
    venue = live_of(waits={"coaster": 45, "boats": 10}, forecasts={"coaster": 45, "boats": 10})
    fc = venue.forecast_wait
    assert engine.replan_reason(plan, venue.lines, fc, at(9, 30), 0.0) is None
    down = live_of(status={"coaster": DOWN}, since=at(9, 20))
    assert engine.replan_reason(plan, down.lines, fc, at(9, 21), 0.0) == engine.ATTRACTION_DOWN
    jumped = live_of(waits={"boats": 40}, forecasts={"boats": 10})
    assert engine.replan_reason(plan, jumped.lines, jumped.forecast_wait, at(9, 30), 0.0) == (
        engine.WAIT_CHANGED
    )
    # Not within the cooldown after the last optimization.
    assert engine.replan_reason(plan, jumped.lines, jumped.forecast_wait, at(9, 5), 0.0) is None
    assert engine.replan_reason(plan, venue.lines, fc, at(9, 30), 25 * MIN) == (
        engine.BEHIND_SCHEDULE
    )
    recent = replace(plan, behind_replan_at=at(9, 25))
    assert engine.replan_reason(recent, venue.lines, fc, at(9, 30), 25 * MIN) is None


def test_reopened_ride_skipped_as_not_operating_is_brought_back() -> None:
    coaster = replace(stop("coaster", at(10, 30)), state=SKIPPED)
    plan = plan_of(stop("boats", at(10)), coaster, planned=at(10))
    plan = replace(plan, skipped=(SkippedWish(coaster.wish_id, engine.NOT_OPERATING),))
    venue = live_of(waits={"coaster": 5}, since=at(10, 20))
    venue.lines["coaster"].status = OPEN
    assert engine.replan_reason(plan, venue.lines, venue.forecast_wait, at(10, 21), 0.0) == (
        engine.ATTRACTION_DOWN
    )


def test_only_boarding_calls_before_the_party_arrives() -> None:
    plan, _ = lunch_plan()
    outside = replace(plan, entered_at=None)
    assert kinds(situation(outside, at(12, 10), walks={"diner": 12})) == []


def test_every_candidate_explains_itself() -> None:
    plan = plan_of(
        stop("boats", at(10), wait_min=10),
        stop("coaster", at(11), wait_min=45),
        stop("teacups", at(11, 30), wait_min=30, must=False),
    )
    venue = live_of(waits={"coaster": 5}, forecasts={"coaster": 50, "teacups": 30})
    s = situation(
        plan,
        at(10),
        venue,
        walks={"coaster": 5},
        offset_min=20,
        route=RouteOption("boats", 10 * MIN, 5 * MIN, ("x",)),
    )
    found = engine.candidates(s)
    assert {c.kind for c in found} >= {GO_NOW, SKIP_OR_MOVE, BETTER_ROUTE}
    for c in found:
        assert c.title and c.body and c.reason and c.expires_at > s.now
    assert timedelta(0) < found[0].expires_at - s.now <= timedelta(hours=1)
