"""The itinerary optimizer: in what order to do a wish list.

The problem is a time-dependent orienteering problem with time windows. Each task
(a ride, a booked ride, a meal, a show, a visit) has join segments: the times a
guest may join it and the wait from each (`waits.Segment`). A guest arriving at t
may join at t if a segment is open then, or later at the start of any later
segment, whichever finishes first: queueing is first-in first-out, so arriving
later never finishes earlier (standing aside until a shorter slot starts is allowed,
and counted as waiting). That makes "earliest finish" a function that never
decreases with the arrival time, and so the earliest finish of every (set of tasks
done, last task) pair is all a search needs to keep.

Objective, in this order: do every must-do that can be done, then as many
nice-to-dos as fit, then the least waiting plus walking. With the tasks fixed,
waiting + walking = finish - start - the tasks' own durations, so the last part is
"finish as early as possible" (including the final walk).

- Up to EXACT_LIMIT tasks that can be done at all: exact search (`exact.py`).
- Beyond: beam search and local search within a time budget (`heuristic.py`).

Pure: numbers in, plan out. Also the two plans the benchmark compares with: the
wish list as given, and a greedy "shortest wait next".
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from services.routing.exact import solve_exact
from services.routing.heuristic import solve_heuristic
from services.routing.plan_model import (
    INF,
    Context,
    Plan,
    Problem,
    Skip,
    SkipReason,
    Task,
    TaskKind,
    Visit,
    candidates,
)

__all__ = ["Plan", "Problem", "SkipReason", "Task", "TaskKind", "solve"]

EXACT_LIMIT = 13


def build_plan(problem: Problem, order: Sequence[int], exact: bool) -> Plan:
    """The visits of a feasible order, with the reasons the other tasks are skipped."""
    ctx = Context.of(problem)
    visits: list[Visit] = []
    t = problem.start_at
    prev = -1
    for j in order:
        walk = ctx.from_start[j] if prev < 0 else ctx.between[prev][j]
        arrive = t + walk
        found = ctx.services[j].visit(arrive)
        assert found is not None, "build_plan needs a feasible order"
        join, start, end, source = found
        visits.append(Visit(j, arrive, walk, join, start, end, source))
        t, prev = end, j
    finish_walk = ctx.to_finish[prev] if prev >= 0 else problem.start_to_finish
    if not math.isfinite(finish_walk):
        finish_walk = 0.0
    skipped = _reasons(ctx, list(order))
    return Plan(visits, skipped, finish_walk, t + finish_walk, exact)


def _reasons(ctx: Context, order: list[int]) -> list[Skip]:
    chosen = set(order)
    return [_reason(ctx, j, order) for j in range(len(ctx.problem.tasks)) if j not in chosen]


def _reason(ctx: Context, j: int, order: list[int]) -> Skip:
    problem = ctx.problem
    task = problem.tasks[j]
    if not math.isfinite(ctx.from_start[j]):
        return Skip(j, SkipReason.UNREACHABLE, "no route under the walking options")
    if not task.segments:
        return Skip(j, task.closed_reason, task.closed_detail)
    if ctx.run([j]) == INF:
        arrive = problem.start_at + ctx.from_start[j]
        if task.window is not None and arrive >= task.window[1]:
            return Skip(j, SkipReason.WINDOW_PASSED, "cannot arrive before it ends")
        return Skip(j, SkipReason.NOT_ENOUGH_TIME, "does not fit before leaving")
    if task.window is not None:
        for other in order:
            if problem.tasks[other].window is None:
                continue
            if ctx.run([j, other]) == INF and ctx.run([other, j]) == INF:
                detail = f"its window clashes with {problem.tasks[other].item_id}"
                return Skip(j, SkipReason.WINDOW_CONFLICT, detail)
    return Skip(j, SkipReason.NOT_ENOUGH_TIME, "does not fit with the other stops")


def solve(problem: Problem, exact_limit: int = EXACT_LIMIT) -> Plan:
    started = time.perf_counter()
    ctx = Context.of(problem)
    doable = len(candidates(ctx))
    exact = doable <= exact_limit
    order = solve_exact(problem) if exact else solve_heuristic(problem)
    plan = build_plan(problem, order, exact)
    plan.solve_seconds = time.perf_counter() - started
    return plan


def evaluate(problem: Problem, order: Sequence[int]) -> tuple[int, int, float]:
    """The optimizer's key of an order: (musts missed, nice missed, wait + walk)."""
    return Context.of(problem).key(order)


def as_given(problem: Problem) -> list[int]:
    """The naive plan: the wish list in the order given, skipping what does not fit."""
    ctx = Context.of(problem)
    order: list[int] = []
    for j in range(len(problem.tasks)):
        if ctx.run([*order, j]) < INF:
            order.append(j)
    return order


def greedy_shortest_wait(problem: Problem) -> list[int]:
    """The myopic plan: always go next where the wait on arrival is shortest."""
    ctx = Context.of(problem)
    order: list[int] = []
    left = set(range(len(problem.tasks)))
    t = problem.start_at
    prev = -1
    while left:
        best: tuple[float, float, int] | None = None
        for j in sorted(left):
            walk = ctx.from_start[j] if prev < 0 else ctx.between[prev][j]
            found = ctx.services[j].visit(t + walk)
            if found is None or ctx.run([*order, j]) == INF:
                continue
            wait = found[1] - (t + walk)
            if best is None or (wait, walk) < best[:2]:
                best = (wait, walk, j)
        if best is None:
            break
        j = best[2]
        order.append(j)
        left.discard(j)
        t = ctx.run(order)
        prev = j
    return order
