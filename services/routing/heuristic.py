"""Heuristic search for long wish lists: a beam search over the subset DP's states,
then cheapest insertion and local search (or-opt moves of 1-3 stops, 2-opt
reversals, swaps, re-insertion of skipped tasks, a nice-to-do given up for a
must-do) with random restarts, within a time budget."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.routing.plan_model import (
    INF,
    Context,
    FloatArray,
    Problem,
    candidates,
    latest_arrival,
)

IntArray = npt.NDArray[np.int64]

HEURISTIC_BUDGET_SECONDS = 0.25
BEAM_WIDTH = 2000
BEAM_MIN_WIDTH = 300
BEAM_WORK = 600_000
# Perturbations without improvement after which the local search stops.
ILS_PATIENCE = 25


def _insert_best(ctx: Context, order: list[int], task: int) -> list[int] | None:
    best: list[int] | None = None
    best_cost = INF
    for pos in range(len(order) + 1):
        candidate = [*order[:pos], task, *order[pos:]]
        cost = ctx.cost(candidate)
        if cost < best_cost:
            best, best_cost = candidate, cost
    return best


def _construct(ctx: Context, ranking: Sequence[int]) -> list[int]:
    order: list[int] = []
    for task in ranking:
        grown = _insert_best(ctx, order, task)
        if grown is not None:
            order = grown
    return order


def _neighbours(order: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    n = len(order)
    for length in (1, 2, 3):
        for i in range(n - length + 1):
            piece = order[i : i + length]
            rest = order[:i] + order[i + length :]
            for pos in range(len(rest) + 1):
                if pos != i:
                    out.append(rest[:pos] + piece + rest[pos:])
    for i in range(n - 1):
        for k in range(i + 2, n + 1):
            out.append(order[:i] + order[i:k][::-1] + order[k:])
    for i, k in itertools.combinations(range(n), 2):
        swapped = order[:]
        swapped[i], swapped[k] = swapped[k], swapped[i]
        out.append(swapped)
    return out


def _improve(ctx: Context, order: list[int], candidates: list[int], deadline: float) -> list[int]:
    current = order
    current_key = ctx.key(current)
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        # Tasks not yet in: insert where they fit (must-dos first).
        outside = [t for t in candidates if t not in current]
        outside.sort(key=lambda t: not ctx.must[t])
        for task in outside:
            grown = _insert_best(ctx, current, task)
            if grown is not None and ctx.key(grown) < current_key:
                current, current_key, improved = grown, ctx.key(grown), True
        # A must-do that fits only if a nice-to-do makes room.
        for task in [t for t in candidates if t not in current and ctx.must[t]]:
            for nice in [t for t in current if not ctx.must[t]]:
                base = [t for t in current if t != nice]
                grown = _insert_best(ctx, base, task)
                if grown is not None and ctx.key(grown) < current_key:
                    current, current_key, improved = grown, ctx.key(grown), True
                    break
        for candidate in _neighbours(current):
            key = ctx.key(candidate)
            if key < current_key:
                current, current_key, improved = candidate, key, True
                break
            if time.perf_counter() >= deadline:
                break
    return current


@dataclass
class _Layer:
    """Beam states of one size: set of tasks done, last task, and where they came from."""

    masks: IntArray
    last: IntArray
    parents: IntArray
    times: FloatArray
    # Waiting + walking so far, and must-dos done.
    spent: FloatArray
    musts: IntArray


class _Beam:
    """The subset DP with only the `width` best states kept per size.

    A state is (tasks done, last task) with its earliest finish. States of one size
    rank first by must-dos done or still reachable next (a state that let a
    must-do's window pass ranks below every state that did not), then by waiting +
    walking so far. Every state is also a candidate plan.
    """

    def __init__(self, ctx: Context, pool: list[int], width: int) -> None:
        self.pool = pool
        self.width = width
        self.n = len(pool)
        self.start = ctx.problem.start_at
        self.services = [ctx.services[j] for j in pool]
        self.deadline = np.array([ctx.deadline[j] for j in pool])
        self.walk = np.array([[ctx.between[a][b] for b in pool] for a in pool])
        self.from_start = np.array([ctx.from_start[j] for j in pool])
        self.durations = np.array([ctx.durations[j] for j in pool])
        self.to_finish = np.array([ctx.to_finish[j] for j in pool])
        self.must = np.array([ctx.must[j] for j in pool], dtype=bool)
        self.must_idx = np.nonzero(self.must)[0].astype(np.int64)
        self.latest = np.array(
            [latest_arrival(s, d) for s, d in zip(self.services, self.deadline, strict=True)]
        )

    def first(self) -> _Layer:
        first = np.array(
            [s.finish(self.start + self.from_start[j]) for j, s in enumerate(self.services)]
        )
        last = np.nonzero(first <= self.deadline)[0].astype(np.int64)
        times = first[last]
        return _Layer(
            np.int64(1) << last,
            last,
            np.full(len(last), -1, dtype=np.int64),
            times,
            times - self.start - self.durations[last],
            self.must[last].astype(np.int64),
        )

    def grow(self, layer: _Layer) -> _Layer | None:
        masks: list[IntArray] = []
        lasts: list[IntArray] = []
        times: list[FloatArray] = []
        parents: list[IntArray] = []
        for j, service in enumerate(self.services):
            free = np.nonzero(((layer.masks >> j) & 1) == 0)[0]
            finish = service.finish_many(layer.times[free] + self.walk[layer.last[free], j])
            fits = finish <= self.deadline[j]
            free = free[fits]
            masks.append(layer.masks[free] | (np.int64(1) << j))
            lasts.append(np.full(len(free), j, dtype=np.int64))
            times.append(finish[fits])
            parents.append(free)
        g_mask, g_last = np.concatenate(masks), np.concatenate(lasts)
        g_time, g_parent = np.concatenate(times), np.concatenate(parents)
        if not len(g_mask):
            return None
        # One state per (set, last task): the earliest finish dominates.
        ident = g_mask * self.n + g_last
        order = np.lexsort((g_time, ident))
        keep = order[np.r_[True, ident[order][1:] != ident[order][:-1]]]
        musts = layer.musts[g_parent[keep]] + self.must[g_last[keep]]
        spent = layer.spent[g_parent[keep]] + (
            g_time[keep] - layer.times[g_parent[keep]] - self.durations[g_last[keep]]
        )
        ranked = self._rank(g_mask[keep], g_last[keep], g_time[keep], musts, spent)
        chosen = keep[ranked]
        return _Layer(
            g_mask[chosen],
            g_last[chosen],
            g_parent[chosen],
            g_time[chosen],
            spent[ranked],
            musts[ranked],
        )

    def _rank(
        self, masks: IntArray, last: IntArray, times: FloatArray, musts: IntArray, spent: FloatArray
    ) -> IntArray:
        if len(masks) <= self.width:
            return np.arange(len(masks))
        idx = self.must_idx
        reach = (times[:, None] + self.walk[last][:, idx]) <= self.latest[idx][None, :]
        undone = ((masks[:, None] >> idx[None, :]) & 1) == 0
        potential = musts + (reach & undone).sum(axis=1)
        ranked: IntArray = np.lexsort((spent, -potential))[: self.width]
        return ranked

    def solve(self) -> list[int]:
        total_must = int(self.must.sum())
        layers: list[_Layer] = []
        best: tuple[tuple[int, int, float], int, int] | None = None
        layer: _Layer | None = self.first()
        while layer is not None and len(layer.last):
            layers.append(layer)
            size = len(layers)
            done = layer.spent + self.to_finish[layer.last]
            for s in range(len(layer.last)):
                musts = int(layer.musts[s])
                key = (total_must - musts, self.n - total_must - (size - musts), float(done[s]))
                if best is None or key < best[0]:
                    best = (key, size - 1, s)
            layer = self.grow(layer)
        if best is None:
            return []
        _, depth, index = best
        sequence: list[int] = []
        while depth >= 0:
            sequence.append(int(layers[depth].last[index]))
            index = int(layers[depth].parents[index])
            depth -= 1
        sequence.reverse()
        return [self.pool[j] for j in sequence]


def solve_beam(problem: Problem, width: int = BEAM_WIDTH) -> list[int]:
    """The subset DP with only the `width` best states kept per size (beam search)."""
    ctx = Context.of(problem)
    pool = candidates(ctx)
    return _Beam(ctx, pool, width).solve() if pool else []


def solve_heuristic(
    problem: Problem, budget_seconds: float = HEURISTIC_BUDGET_SECONDS
) -> list[int]:
    started = time.perf_counter()
    deadline = started + budget_seconds
    ctx = Context.of(problem)
    pool = candidates(ctx)
    if not pool:
        return []

    def window_end(t: int) -> float:
        window = problem.tasks[t].window
        return window[1] if window is not None else INF

    def first_wait(t: int) -> float:
        return ctx.services[t].finish(problem.start_at + ctx.from_start[t])

    rankings = [
        # Must-dos first, fixed-time tasks by their window, then the rest by how soon
        # they could be finished.
        sorted(pool, key=lambda t: (not ctx.must[t], window_end(t), first_wait(t))),
        sorted(pool, key=lambda t: (not ctx.must[t], window_end(t), -first_wait(t))),
        sorted(pool, key=lambda t: (not ctx.must[t], ctx.from_start[t])),
    ]
    best = solve_beam(problem, beam_width(len(pool)))
    best_key = ctx.key(best)
    for ranking in rankings:
        if time.perf_counter() >= deadline and best:
            break
        order = _improve(ctx, _construct(ctx, ranking), pool, deadline)
        key = ctx.key(order)
        if key < best_key:
            best, best_key = order, key
    # Iterated local search: shake the best order and descend again while time lasts.
    rng = random.Random(len(pool))
    stale = 0
    while time.perf_counter() < deadline and len(best) > 2 and stale < ILS_PATIENCE:
        order = _perturb(best, rng)
        order = _improve(ctx, order, pool, deadline)
        key = ctx.key(order)
        stale += 1
        if key < best_key:
            best, best_key, stale = order, key, 0
    return best


def beam_width(tasks: int) -> int:
    """States kept per size: the beam's work grows as width x tasks^2."""
    return max(BEAM_MIN_WIDTH, min(BEAM_WIDTH, BEAM_WORK // max(tasks * tasks, 1)))


def _perturb(order: list[int], rng: random.Random) -> list[int]:
    """A double bridge (for longer orders) or a random segment moved elsewhere."""
    n = len(order)
    if n >= 6 and rng.random() < 0.5:
        a, b, c = sorted(rng.sample(range(1, n), 3))
        return order[:a] + order[b:c] + order[a:b] + order[c:]
    i = rng.randrange(n)
    length = rng.randint(1, min(3, n - i))
    piece = order[i : i + length]
    rest = order[:i] + order[i + length :]
    pos = rng.randrange(len(rest) + 1)
    return (
        rest[:pos] + piece[::-1] + rest[pos:]
        if rng.random() < 0.5
        else (rest[:pos] + piece + rest[pos:])
    )
