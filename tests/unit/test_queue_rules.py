"""Booking rules, status rules, the estimator and the forecast on small cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.queue import bookings as rules
from services.queue.bookings import Window
from services.queue.estimate import NO_RETURNS, LineView, ReturnArrivals, standby_wait
from services.queue.forecast import ForecastErrors, Projection, arrival_model, project
from services.queue.schedule import CLOSED, DOWN, OPEN, SCHEDULED, OpsStatus, effective_status
from venue.queue.v1 import queue_pb2 as pb

HOUR = 3600.0


# --- return-time windows ---------------------------------------------------------


def test_windows_cover_the_day_from_opening() -> None:
    windows = rules.return_windows(9 * HOUR, 21 * HOUR + 1800, 60)
    assert windows[0] == Window(9 * HOUR, 10 * HOUR)
    assert windows[-1] == Window(21 * HOUR, 21 * HOUR + 1800)
    assert len(windows) == 13


def test_capacity_is_the_share_of_the_learned_rate_never_above_the_nameplate() -> None:
    hour = Window(0, HOUR)
    assert rules.window_capacity(1000, 2000, 0.4, hour) == 400
    assert rules.window_capacity(3000, 2000, 0.4, hour) == 800
    assert rules.window_capacity(1000, 2000, 0.4, Window(0, 1800)) == 200


ops = st.lists(
    st.one_of(
        st.tuples(st.just("book"), st.integers(0, 3), st.integers(1, 8)),
        st.tuples(st.just("cancel"), st.integers(0, 50), st.just(0)),
        st.tuples(st.just("learn"), st.integers(50, 3000), st.just(0)),
    ),
    max_size=200,
)


@settings(max_examples=80, deadline=None)
@given(ops, st.floats(0.05, 0.95))
def test_return_guests_never_exceed_the_share_of_capacity(
    steps: list[tuple[str, int, int]], share: float
) -> None:
    """Whatever the order of bookings, cancellations and what the twin learns
    of the ride, no window ever holds more than the share of capacity known
    when its last guest was admitted."""
    windows = rules.return_windows(9 * HOUR, 13 * HOUR, 60)
    nameplate = 1500.0
    throughput = nameplate
    booked = [0] * len(windows)
    bookings: list[tuple[int, int]] = []
    for op, a, b in steps:
        if op == "learn":
            throughput = float(a)
        elif op == "book":
            window = windows[a]
            capacity = rules.window_capacity(throughput, nameplate, share, window)
            if rules.admit(booked[a], b, capacity):
                booked[a] += b
                bookings.append((a, b))
                assert booked[a] <= share * min(throughput, nameplate) * window.seconds / HOUR
        elif bookings:
            index, size = bookings.pop(a % len(bookings))
            booked[index] -= size
        assert all(n >= 0 for n in booked)


def test_a_party_that_does_not_fit_is_refused() -> None:
    assert rules.admit(10, 2, 12)
    assert not rules.admit(11, 2, 12)
    assert not rules.admit(0, 0, 12)


def test_bookable_while_a_quarter_of_the_window_is_ahead() -> None:
    window = Window(0, 3600)
    assert rules.bookable(window, -100)
    assert rules.bookable(window, 2700)
    assert not rules.bookable(window, 2701)


def test_holdings_limit_and_one_booking_per_attraction() -> None:
    assert rules.holdings_violation(["a", "b"], {"a": 2}, set(), 3) is None
    assert rules.holdings_violation(["a", "b"], {"b": 3}, set(), 3) == (
        "b",
        "already holds 3 bookings, the venue's limit",
    )
    violation = rules.holdings_violation(["a"], {}, {"a"}, 3)
    assert violation is not None and violation[0] == "a"


vq_steps = st.lists(
    st.one_of(st.integers(1, 8).map(lambda n: ("join", n)), st.just(("call", 0))),
    max_size=80,
)


@settings(max_examples=150)
@given(vq_steps, st.integers(1, 20))
def test_virtual_queue_groups_never_split_overfill_nor_strand_a_party(
    steps: list[tuple[str, int]], size: int
) -> None:
    """Joins and calls in any order: a party is one group, a group holds at
    most its size (or one party bigger than it), groups run in order, and no
    party lands in a group already called (it would never be called)."""
    group, guests, last_called = 1, 0, 0
    by_group: dict[int, list[int]] = {}
    last = 0
    for op, party in steps:
        if op == "call":
            waiting = [g for g in by_group if g > last_called]
            if waiting:
                last_called = min(waiting)
            continue
        assigned, group, guests = rules.assign_group(group, guests, party, size, last_called)
        assert assigned > last_called
        assert assigned >= last
        last = assigned
        by_group.setdefault(assigned, []).append(party)
        assert guests == sum(by_group[assigned])
    for members in by_group.values():
        assert sum(members) <= size or len(members) == 1


holding_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("book"),
            st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True),
            st.integers(0, 6),
        ),
        st.tuples(st.just("cancel"), st.just([0]), st.integers(0, 40)),
    ),
    max_size=120,
)


@settings(max_examples=150)
@given(holding_steps, st.integers(1, 4))
def test_no_guest_ever_holds_more_than_the_limit_nor_two_for_one_ride(
    steps: list[tuple[str, list[int], int]], limit: int
) -> None:
    """Bookings and cancellations in any order, admitted only past the holding
    rule: no guest ever holds more than the venue's limit of open bookings, nor
    two for one attraction; and a refusal names a guest who really is at the
    limit or already booked there."""
    active: list[tuple[list[str], int]] = []
    for op, members, b in steps:
        if op == "cancel":
            if active:
                active.pop(b % len(active))
            continue
        guests = [f"g{m}" for m in members]
        held = {g: sum(g in who for who, _ in active) for g in guests}
        here = {g for who, ride in active if ride == b for g in who if g in guests}
        verdict = rules.holdings_violation(guests, held, here, limit)
        if verdict is None:
            active.append((guests, b))
        else:
            guest, _ = verdict
            assert guest in here or held[guest] >= limit
        for g in (f"g{m}" for m in range(6)):
            mine = [ride for who, ride in active if g in who]
            assert len(mine) <= limit
            assert len(mine) == len(set(mine))


def test_cancel_and_expiry_outcomes() -> None:
    assert rules.cancellable(rules.CONFIRMED) is True
    assert rules.cancellable(rules.WAITING) is True
    assert rules.cancellable(rules.CANCELLED) is False
    assert rules.cancellable(rules.REDEEMED) is None
    assert rules.expired_status(True) == rules.REDEEMED
    assert rules.expired_status(False) == rules.EXPIRED


# --- status --------------------------------------------------------------------------


OPENS, CLOSES, DAY = 9 * HOUR, 21 * HOUR, 4 * HOUR


def test_schedule_opens_and_closes() -> None:
    assert effective_status(None, OPENS, CLOSES, DAY, 8 * HOUR).status == CLOSED
    assert effective_status(None, OPENS, CLOSES, DAY, 8 * HOUR).reason == SCHEDULED
    assert effective_status(None, OPENS, CLOSES, DAY, 12 * HOUR).status == OPEN
    assert effective_status(None, OPENS, CLOSES, DAY, 22 * HOUR).status == CLOSED


def test_ops_decisions_hold_until_the_scheduled_closing() -> None:
    down = OpsStatus(DOWN, pb.STATUS_REASON_TECHNICAL, "", 12 * HOUR, None)
    assert effective_status(down, OPENS, CLOSES, DAY, 13 * HOUR).status == DOWN
    assert effective_status(down, OPENS, CLOSES, DAY, 21.5 * HOUR).status == CLOSED
    early = OpsStatus(OPEN, 0, "", 8.5 * HOUR, None)
    assert effective_status(early, OPENS, CLOSES, DAY, 8.75 * HOUR).status == OPEN
    yesterday = OpsStatus(DOWN, pb.STATUS_REASON_TECHNICAL, "", DAY - 3 * HOUR, None)
    assert effective_status(yesterday, OPENS, CLOSES, DAY, 12 * HOUR).status == OPEN


# --- the estimate on lines worked out by hand ------------------------------------------


def view(**changes: object) -> LineView:
    base: dict[str, object] = {
        "t": 1000.0,
        "standby": [],
        "weight": 1.0,
        "returning": [],
        "future_returns": NO_RETURNS,
        "rate": 20 / 60.0,  # 20 riders a minute
        "interval": 60.0,
        "walk_standby": 90.0,
        "walk_return": 30.0,
        "return_share": 0.4,
        "anchor": 970.0,  # dispatches at 1030, 1090, 1150 ...
        "resume_at": None,
    }
    base.update(changes)
    return LineView(**base)  # type: ignore[arg-type]


def test_an_empty_line_is_the_walk_and_the_next_dispatch() -> None:
    # At the load at 1090: the dispatch at 1090 takes the guest.
    assert standby_wait(view()) == pytest.approx(90.0)
    assert standby_wait(view(anchor=1000.0)) == pytest.approx(120.0)  # 1060 is too early


def test_a_line_waits_its_turn_by_vehicle_loads() -> None:
    ahead = [100.0 + i for i in range(50)]  # everyone at the load already
    # 50 ahead: 1030 (20), 1090 (20), 1150 (10 + the guest).
    assert standby_wait(view(standby=ahead)) == pytest.approx(150.0)
    assert standby_wait(view(standby=ahead[:59] + [100.0] * 10)) == pytest.approx(210.0)


def test_short_intervals_are_stepped_in_groups_with_the_same_answer() -> None:
    ahead = [100.0 + i for i in range(400)]
    fine = standby_wait(view(standby=ahead, rate=2 / 4.0, interval=4.0, anchor=998.0))
    # 401st in line at 2 a dispatch every 4 s: the 201st dispatch, 800 s on.
    assert fine == pytest.approx(1002.0 + 200 * 4.0 - 1000.0, abs=4.0)


def test_return_guests_take_their_share_and_no_more() -> None:
    ahead = [100.0 + i for i in range(40)]
    merged = [990.0 + 0.1 * i for i in range(100)]
    # Each dispatch: 8 return riders (40 % of 20), 12 standby: 41 standby need 4.
    assert standby_wait(view(standby=ahead, returning=merged)) == pytest.approx(210.0)
    # Booked guests merging from now on, one a second, reach the load from the
    # second dispatch: 60 ahead then take 20, 12, 12, 12, 12 a dispatch.
    sixty = [100.0 + i for i in range(60)]
    assert standby_wait(view(standby=sixty)) == pytest.approx(210.0)
    booked = ReturnArrivals(((900.0, 4500.0, 3600.0),))
    assert standby_wait(view(standby=sixty, future_returns=booked)) == pytest.approx(270.0)
    # Few returns (one a minute): standby rides in what they leave.
    light = ReturnArrivals(((900.0, 4500.0, 60.0),))
    assert standby_wait(view(standby=sixty, future_returns=light)) == pytest.approx(210.0)


def test_a_stop_adds_the_time_until_loading_resumes() -> None:
    ahead = [100.0 + i for i in range(10)]
    assert standby_wait(view(standby=ahead, resume_at=2800.0)) == pytest.approx(1800.0)


def test_a_ride_that_cannot_load_has_no_finite_wait() -> None:
    assert math.isinf(standby_wait(view(rate=0.0)))


# --- the forecast ----------------------------------------------------------------------


def projection(**changes: object) -> Projection:
    base: dict[str, object] = {
        "t": 10 * HOUR,
        "line": 0.0,
        "returning": 0.0,
        "future_returns": NO_RETURNS,
        "rate": 20 / 60.0,
        "interval": 60.0,
        "walk": 90.0,
        "return_share": 0.4,
        "opens_at": OPENS,
        "closes_at": CLOSES,
        "resume_at": None,
        "anchor": None,
        "closed_for_day": False,
        "posted_raw": None,
        "correction": 0.0,
        "stop_factor": 0.0,
        "arrival_rate": lambda _t: 10 / 60.0,
    }
    base.update(changes)
    return Projection(**base)  # type: ignore[arg-type]


def test_a_quiet_ride_forecasts_the_walk_and_half_a_cycle() -> None:
    slots = project(projection(), 8, ForecastErrors())
    assert all(s.status == OPEN for s in slots)
    assert all(s.wait == pytest.approx(120.0, abs=1.0) for s in slots)
    assert all(s.low <= s.wait <= s.high for s in slots)


def test_a_busy_ride_forecasts_its_line_draining() -> None:
    slots = project(projection(line=600.0), 8, ForecastErrors())
    # 600 ahead at 10 a minute net: the wait falls by 15 minutes a slot... to the floor.
    waits = [s.wait for s in slots]
    assert waits[0] > waits[1] > waits[2]
    assert waits[-1] == pytest.approx(120.0, abs=1.0)


def test_a_stop_and_the_closing_show_in_the_slots() -> None:
    slots = project(projection(resume_at=10.5 * HOUR, closes_at=11.5 * HOUR), 8, ForecastErrors())
    assert [s.status for s in slots[:2]] == [DOWN, DOWN]
    assert slots[2].status == OPEN
    assert slots[0].wait > 1200.0
    assert all(s.status == CLOSED for s in slots[6:])


def test_arrivals_follow_the_population_and_the_excess_fades() -> None:
    model = arrival_model(2.0, 1.0, 0.0, lambda _ahead: 1.0, 0.0, fade=600.0)
    assert model(0.0) == pytest.approx(2.0)
    assert model(6000.0) == pytest.approx(1.0, abs=1e-3)
    growing = arrival_model(1.0, 1.0, 0.0, lambda ahead: 1.0 + ahead / 3600.0, 0.0)
    assert growing(3600.0) == pytest.approx(2.0)
    # A quiet ride stays quiet; a dip at a ride with a long line comes back.
    assert arrival_model(0.2, 1.0, 60.0, lambda _a: 1.0, 0.0)(7200.0) < 0.3
    assert arrival_model(0.2, 1.0, 1800.0, lambda _a: 1.0, 0.0)(7200.0) == pytest.approx(
        1.0, abs=0.01
    )


def test_forecast_errors_start_from_a_prior_and_learn() -> None:
    errors = ForecastErrors()
    prior = errors.rms(3600.0)
    for _ in range(400):
        errors.observe(3600.0, 60.0)
    assert errors.rms(3600.0) < prior
    assert errors.mean_absolute(3600.0) == (60.0, 400)
