"""The itinerary optimizer against exhaustive search, the plan's own arithmetic, and
the reasons it gives for what it leaves out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.routing.exact import solve_exact, solve_exhaustive
from services.routing.heuristic import solve_beam, solve_heuristic
from services.routing.plan_model import Service
from services.routing.planner import (
    Plan,
    Problem,
    SkipReason,
    Task,
    TaskKind,
    as_given,
    build_plan,
    evaluate,
    greedy_shortest_wait,
    solve,
)
from services.routing.waits import Segment, WaitSource

T0 = 9 * 3600.0
SLOT = 900.0


def ride(
    name: str,
    waits_min: list[float],
    ride_min: float = 5,
    must: bool = True,
    start: float = T0,
) -> Task:
    segments = tuple(
        Segment(start + k * SLOT, start + (k + 1) * SLOT, w * 60, WaitSource.FORECAST)
        for k, w in enumerate(waits_min)
    )
    return Task(name, name, TaskKind.ATTRACTION, must, ride_min * 60, segments)


def fixed(name: str, at: float, length_min: float = 30, must: bool = True) -> Task:
    """A reservation: start within [at, at + 15 min)."""
    return Task(
        name,
        name,
        TaskKind.MEAL,
        must,
        length_min * 60,
        (Segment(at, at + 900, 0.0, WaitSource.FIXED),),
        window=(at, at + 900),
    )


def show(name: str, times: list[float], length_min: float = 20, must: bool = True) -> Task:
    return Task(
        name,
        name,
        TaskKind.SHOW,
        must,
        length_min * 60,
        tuple(Segment(t, t, 0.0, WaitSource.FIXED) for t in times),
    )


def problem(
    tasks: list[Task],
    points: Sequence[tuple[float, float]],
    leave: float = T0 + 12 * 3600,
    speed: float = 1.0,
) -> Problem:
    """Walks are straight lines between points (index 0 is the start, also the exit)."""

    def walk(a: int, b: int) -> float:
        return math.dist(points[a], points[b]) / speed

    n = len(tasks)
    return Problem(
        T0,
        leave,
        tuple(tasks),
        np.array([walk(0, j + 1) for j in range(n)]),
        np.array([[walk(i + 1, j + 1) for j in range(n)] for i in range(n)]),
        np.array([walk(j + 1, 0) for j in range(n)]),
        0.0,
    )


# --- the earliest-finish function -----------------------------------------------------


def test_a_shorter_slot_later_is_worth_standing_aside_for() -> None:
    service = Service(ride("r", [40, 10, 30], ride_min=5))
    # Arriving 9:10 into a 40-minute line finishes 9:55; joining at 9:15 into the
    # 10-minute slot finishes 9:30.
    assert service.finish(T0 + 600) == T0 + SLOT + 600 + 300
    assert service.visit(T0 + 600) == (
        T0 + SLOT,
        T0 + SLOT + 600,
        T0 + SLOT + 900,
        WaitSource.FORECAST,
    )
    # After the last slot nothing can be joined.
    assert service.finish(T0 + 3 * SLOT) == math.inf
    assert service.visit(T0 + 3 * SLOT) is None


def test_a_performance_is_joined_only_at_its_start() -> None:
    service = Service(show("s", [T0 + 3600, T0 + 7200]))
    assert service.finish(T0) == T0 + 3600 + 1200
    assert service.finish(T0 + 3600) == T0 + 3600 + 1200
    assert service.finish(T0 + 3601) == T0 + 7200 + 1200
    assert service.finish(T0 + 7201) == math.inf


@given(
    st.lists(st.floats(0, 120), min_size=1, max_size=20),
    st.lists(st.floats(0, 6 * 3600), min_size=2, max_size=30),
)
def test_finishing_is_first_in_first_out(waits: list[float], arrivals: list[float]) -> None:
    service = Service(ride("r", waits))
    times = sorted(T0 + a for a in arrivals)
    finishes = [service.finish(t) for t in times]
    assert finishes == sorted(finishes)
    vector = service.finish_many(np.array(times))
    assert list(vector) == pytest.approx(finishes)


# --- exact search is exact ----------------------------------------------------------


@st.composite
def instances(draw: st.DrawFn, max_tasks: int = 6) -> Problem:
    n = draw(st.integers(1, max_tasks))
    points = [(draw(st.floats(0, 900)), draw(st.floats(0, 900))) for _ in range(n + 1)]
    tasks: list[Task] = []
    for j in range(n):
        kind = draw(st.sampled_from(["ride", "ride", "ride", "meal", "show"]))
        must = draw(st.booleans())
        if kind == "ride":
            waits = draw(st.lists(st.floats(0, 90), min_size=4, max_size=40))
            offset = draw(st.sampled_from([0.0, 0.0, 3600.0]))
            tasks.append(ride(f"r{j}", waits, draw(st.floats(1, 15)), must, start=T0 + offset))
        elif kind == "meal":
            tasks.append(fixed(f"m{j}", T0 + draw(st.floats(0, 8 * 3600)), 30, must))
        else:
            times = sorted(draw(st.lists(st.floats(0, 9 * 3600), min_size=1, max_size=3)))
            tasks.append(show(f"s{j}", [T0 + t for t in times], 20, must))
    leave = T0 + draw(st.floats(1800, 12 * 3600))
    return problem(tasks, points, leave, speed=draw(st.floats(0.5, 1.5)))


def _same(a: tuple[int, int, float], b: tuple[int, int, float]) -> bool:
    return a[:2] == b[:2] and a[2] == pytest.approx(b[2], abs=1e-6)


SEARCH = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SEARCH
@given(instances())
def test_dynamic_programming_matches_exhaustive_search(p: Problem) -> None:
    assert _same(evaluate(p, solve_exact(p)), evaluate(p, solve_exhaustive(p)))


@SEARCH
@given(instances())
def test_heuristics_are_feasible_and_never_beat_the_optimum(p: Problem) -> None:
    best = evaluate(p, solve_exact(p))
    for order in (solve_beam(p), solve_heuristic(p, 0.05), as_given(p), greedy_shortest_wait(p)):
        key = evaluate(p, order)
        assert key[2] < math.inf
        assert key >= best or _same(key, best)


@SEARCH
@given(instances(max_tasks=7))
def test_a_plan_adds_up(p: Problem) -> None:
    plan = solve(p)
    _check(p, plan)


def _check(p: Problem, plan: Plan) -> None:
    t = p.start_at
    for k, visit in enumerate(plan.visits):
        task = p.tasks[visit.task]
        walk = (
            p.from_start[visit.task] if k == 0 else p.between[plan.visits[k - 1].task][visit.task]
        )
        assert visit.walk_seconds == pytest.approx(walk)
        assert visit.arrive == pytest.approx(t + walk)
        assert visit.arrive <= visit.join + 1e-9 <= visit.start + 2e-9
        assert visit.end == pytest.approx(visit.start + task.duration_seconds)
        assert any(s.start <= visit.join < s.end or s.start == visit.join for s in task.segments)
        if task.window is not None:
            assert task.window[0] <= visit.join < task.window[1]
        t = visit.end
    assert plan.finish_at <= p.leave_at + 1e-6
    assert plan.cost == pytest.approx(evaluate(p, plan.order)[2])
    assert {v.task for v in plan.visits} | {s.task for s in plan.skipped} == set(
        range(len(p.tasks))
    )
    assert len(plan.visits) + len(plan.skipped) == len(p.tasks)


def test_the_optimizer_rides_the_busy_ride_early() -> None:
    # Ride "big" gets busy fast; "small" stays quiet. Both next to each other.
    big = ride("big", [5, 20, 45, 60, 60, 60, 60, 60])
    small = ride("small", [10, 10, 10, 10, 10, 10, 10, 10])
    p = problem([small, big], [(0, 0), (60, 0), (60, 10)])
    plan = solve(p)
    assert [p.tasks[v.task].item_id for v in plan.visits] == ["big", "small"]
    assert plan.exact
    naive = evaluate(p, as_given(p))
    assert plan.cost < naive[2]


def test_fixed_times_are_kept_and_the_gap_is_filled() -> None:
    lunch = fixed("lunch", T0 + 3 * 3600)
    rides = [ride(f"r{k}", [15] * 48) for k in range(3)]
    p = problem([lunch, *rides], [(0, 0), (100, 0), (0, 100), (100, 100), (50, 50)])
    plan = solve(p)
    assert len(plan.visits) == 4
    meal = next(v for v in plan.visits if p.tasks[v.task].item_id == "lunch")
    assert T0 + 3 * 3600 <= meal.start < T0 + 3 * 3600 + 900


def test_reasons_for_what_is_left_out() -> None:
    down = Task("down", "down", TaskKind.ATTRACTION, True, 300, ())
    passed = Task(
        "passed",
        "passed",
        TaskKind.MEAL,
        True,
        1800,
        (),
        window=(T0 - 3600, T0 - 1800),
        closed_reason=SkipReason.WINDOW_PASSED,
        closed_detail="its start window is over",
    )
    lunch = fixed("lunch", T0 + 3600, 60)
    clash = fixed("clash", T0 + 3600 + 600, 30, must=False)
    long_ride = ride("long", [600] * 48, must=False)
    far = ride("far", [5] * 48)
    points = [(0, 0), (10, 0), (10, 0), (20, 0), (20, 0), (30, 0), (0, 0)]
    tasks = [down, passed, lunch, clash, long_ride, far]
    p = problem(tasks, points, leave=T0 + 4 * 3600)
    # "far" cannot be reached at all.
    p.from_start[5] = math.inf
    plan = solve(p)
    reasons = {p.tasks[s.task].item_id: s.reason for s in plan.skipped}
    assert reasons == {
        "down": SkipReason.NOT_OPERATING,
        "passed": SkipReason.WINDOW_PASSED,
        "clash": SkipReason.WINDOW_CONFLICT,
        "long": SkipReason.NOT_ENOUGH_TIME,
        "far": SkipReason.UNREACHABLE,
    }
    assert [p.tasks[v.task].item_id for v in plan.visits] == ["lunch"]


def test_must_dos_come_before_nice_to_dos() -> None:
    # Only one of the two fits; the must-do wins though the nice-to-do is nearer.
    # must alone: 500 s there, 70 min wait, 5 min ride, 500 s back = 5500 s;
    # with the nice-to-do first it would end at 5800 s.
    must = ride("must", [70] * 48, must=True)
    nice = ride("nice", [0] * 48, must=False)
    p = problem([nice, must], [(0, 0), (10, 0), (500, 0)], leave=T0 + 5600)
    plan = solve(p)
    assert [p.tasks[v.task].item_id for v in plan.visits] == ["must"]


def test_long_lists_use_the_heuristic_and_still_add_up() -> None:
    rng = np.random.default_rng(3)
    tasks = [
        ride(f"r{k}", list(rng.uniform(5, 60, 48)), float(rng.uniform(2, 10)), bool(k % 3))
        for k in range(20)
    ]
    points = [(float(rng.uniform(0, 800)), float(rng.uniform(0, 800))) for _ in range(21)]
    p = problem(tasks, points)
    plan = solve(p)
    assert not plan.exact
    _check(p, plan)
    assert plan.cost <= evaluate(p, as_given(p))[2] or len(plan.visits) > len(as_given(p))


def test_an_empty_wish_list_is_an_empty_plan() -> None:
    p = problem([], [(0, 0)])
    plan = solve(p)
    assert plan.visits == [] and plan.skipped == []
    assert plan.finish_at == T0
    assert build_plan(p, [], True).cost == 0.0
