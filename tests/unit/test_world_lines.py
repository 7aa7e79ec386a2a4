"""An attraction's line: vehicles never hold more than their seats, guests are never
lost or duplicated, and standby boards in the order it joined (the loader may only
pull a party forward by a few places to fill empty seats)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.lines import BOARD_LEAD_S, LOOKAHEAD, Line, Rider, Status


@dataclass(frozen=True)
class Group:
    name: int


Played = tuple[Line, list[Rider], list[tuple[float, list[Rider]]]]


def play(capacity: int, parties: list[tuple[int, float, bool]], share: float = 0.4) -> Played:
    """Join `parties` (size, arrival gap, via return) and dispatch until empty."""
    line = Line("ride", capacity, interval_s=30.0, ride_s=120.0, return_share=share)
    t = 0.0
    joined: list[Rider] = []
    for i, (size, gap, via_return) in enumerate(parties):
        t += gap
        rider = Rider(Group(i), tuple(range(size)), t, t + 20.0, via_return)
        joined.append(Rider(rider.party, rider.members, rider.joined_s, rider.ready_s, via_return))
        line.join(rider)
    vehicles: list[tuple[float, list[Rider]]] = []
    now = 0.0
    while line.waiting():
        due = line.due(now)
        assert due is not None and due >= now
        loaded = line.dispatch(due)
        vehicles.append((due, loaded))
        now = due
        assert len(vehicles) < 10_000
    return line, joined, vehicles


parties_st = st.lists(
    st.tuples(st.integers(1, 7), st.floats(0, 60), st.booleans()), min_size=1, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12), parties_st)
def test_a_vehicle_never_boards_more_than_it_holds(
    capacity: int, parties: list[tuple[int, float, bool]]
) -> None:
    _, _, vehicles = play(capacity, parties)
    for _, loaded in vehicles:
        assert sum(r.count for r in loaded) <= capacity


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12), parties_st)
def test_every_guest_boards_exactly_once_and_after_being_ready(
    capacity: int, parties: list[tuple[int, float, bool]]
) -> None:
    line, joined, vehicles = play(capacity, parties)
    boarded: dict[object, list[int]] = {}
    for t, loaded in vehicles:
        for rider in loaded:
            assert rider.ready_s <= t - BOARD_LEAD_S + 1e-6
            boarded.setdefault(rider.party, []).extend(rider.members)
    for rider in joined:
        assert sorted(boarded[rider.party]) == list(rider.members)
    assert line.boarded == sum(r.count for r in joined)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12), parties_st)
def test_standby_boards_in_joining_order_but_for_gap_filling(
    capacity: int, parties: list[tuple[int, float, bool]]
) -> None:
    _, joined, vehicles = play(capacity, parties, share=0.0)
    order = [r.party.name for r in joined if not r.via_return]
    first_board: list[int] = []
    for _, loaded in vehicles:
        for rider in loaded:
            if not rider.via_return and rider.party.name not in first_board:
                first_board.append(rider.party.name)
    for position, name in enumerate(first_board):
        assert abs(order.index(name) - position) <= LOOKAHEAD * len(order)
        # Nobody overtakes more than LOOKAHEAD parties that were already in line.
        overtaken = [n for n in order[: order.index(name)] if n not in first_board[:position]]
        assert len(overtaken) <= LOOKAHEAD


def test_vehicles_leave_on_the_ride_cycle() -> None:
    line = Line("ride", 4, interval_s=30.0, ride_s=60.0, return_share=0.0)
    for i in range(3):
        line.join(Rider(Group(i), (0, 1, 2, 3), 0.0, 10.0, False))
    times = []
    now = 0.0
    while line.waiting():
        due = line.due(now)
        assert due is not None
        line.dispatch(due)
        times.append(due)
        now = due
    assert times == [12.0, 42.0, 72.0]


def test_a_ride_that_is_down_boards_nobody() -> None:
    line = Line("ride", 4, interval_s=30.0, ride_s=60.0, return_share=0.0)
    line.join(Rider(Group(0), (0,), 0.0, 0.0, False))
    line.status = Status.DOWN
    assert line.due(100.0) is None
    assert line.dispatch(100.0) == []
    line.status = Status.OPEN
    assert line.dispatch(100.0)


def test_return_guests_take_their_share_and_standby_the_rest() -> None:
    line = Line("ride", 10, interval_s=30.0, ride_s=60.0, return_share=0.4)
    for i in range(10):
        line.join(Rider(Group(i), (0,), 0.0, 0.0, False))
        line.join(Rider(Group(100 + i), (0,), 0.0, 0.0, True))
    loaded = line.dispatch(10.0)
    assert sum(r.via_return for r in loaded) == 4
    assert sum(not r.via_return for r in loaded) == 6


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 12),
    st.floats(5.0, 120.0),
    parties_st,
    st.lists(st.tuples(st.floats(0, 600), st.floats(1, 300)), max_size=4),
)
def test_a_ride_never_loads_faster_than_its_cycle_allows(
    capacity: int,
    interval_s: float,
    parties: list[tuple[int, float, bool]],
    outages: list[tuple[float, float]],
) -> None:
    """Throughput never above capacity: vehicles leave at least one cycle apart, so
    no window of an hour boards more than the ride's hourly capacity (plus the one
    vehicle a window can catch at its edge), breakdowns or not."""
    line = Line("ride", capacity, interval_s=interval_s, ride_s=60.0, return_share=0.3)
    t = 0.0
    for i, (size, gap, via_return) in enumerate(parties):
        t += gap
        line.join(Rider(Group(i), tuple(range(size)), t, t, via_return))
    down: list[tuple[float, float]] = []
    at = 0.0
    for gap, length in outages:
        at += gap
        down.append((at, at + length))
        at += length
    dispatches: list[tuple[float, int]] = []
    now = 0.0
    while line.waiting():
        outage = next(((a, b) for a, b in down if a <= now < b), None)
        line.status = Status.DOWN if outage else Status.OPEN
        due = line.due(now)
        if outage:
            assert due is None
            now = outage[1]
            continue
        assert due is not None
        upcoming = next((a for a, _ in down if now < a <= due), None)
        if upcoming is not None:
            now = upcoming  # the ride breaks down before the vehicle leaves
            continue
        loaded = line.dispatch(due)
        dispatches.append((due, sum(r.count for r in loaded)))
        now = due
        assert len(dispatches) < 10_000
    times = [d for d, _ in dispatches]
    assert all(b - a >= interval_s - 1e-6 for a, b in pairwise(times))
    hourly = capacity * 3600.0 / interval_s
    for start, _ in dispatches:
        in_hour = sum(n for d, n in dispatches if start <= d < start + 3600.0)
        assert in_hour <= hourly + capacity
