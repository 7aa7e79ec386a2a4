"""Exact search: dynamic programming over subsets (Held-Karp with time-dependent
costs), vectorized with numpy one subset size at a time, and plain enumeration as
the reference the tests and the benchmark compare with."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from services.routing.plan_model import INF, Context, FloatArray, Problem, candidates

IntArray = npt.NDArray[np.int64]


def _bits(masks: IntArray, n: int) -> IntArray:
    """bits[s, j] = 1 when task j is in subset s."""
    return ((masks[:, None] >> np.arange(n)[None, :]) & 1).astype(np.int64)


def _tables(
    ctx: Context, pool: list[int], masks: IntArray, counts: IntArray
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """Earliest finish of every (subset, last task), and the task before the last."""
    n = len(pool)
    services = [ctx.services[j] for j in pool]
    deadline = np.array([ctx.deadline[j] for j in pool])
    walk = np.array([[ctx.between[a][b] for b in pool] for a in pool], dtype=np.float64)
    times = np.full((len(masks), n), INF)
    parent = np.full((len(masks), n), -1, dtype=np.int8)
    for j, service in enumerate(services):
        end = service.finish(ctx.problem.start_at + ctx.from_start[pool[j]])
        if end <= deadline[j]:
            times[1 << j, j] = end
    for k in range(1, n):
        layer = masks[counts == k]
        layer = layer[np.isfinite(times[layer]).any(axis=1)]
        if not len(layer):
            break
        for j, service in enumerate(services):
            subsets = layer[((layer >> j) & 1) == 0]
            arrive = times[subsets] + walk[:, j]
            # The earliest finish never decreases with the arrival (first in, first
            # out), so the best task before j is the one that gets there first: one
            # finish per subset instead of one per (subset, last) pair. An
            # impossible pair arrives at infinity, and finishes there.
            best = arrive.argmin(axis=1)
            finish = service.finish_many(arrive[np.arange(len(subsets)), best])
            finish[finish > deadline[j]] = INF
            grown = subsets | (1 << j)
            times[grown, j] = finish
            parent[grown, j] = best
    return times, parent


def solve_exact(problem: Problem) -> list[int]:
    ctx = Context.of(problem)
    pool = candidates(ctx)
    n = len(pool)
    if n == 0:
        return []
    masks = np.arange(1 << n, dtype=np.int64)
    bits = _bits(masks, n)
    counts = bits.sum(axis=1)
    times, parent = _tables(ctx, pool, masks, counts)
    # The best end state: most must-dos, then most nice-to-dos, then least
    # waiting + walking (finish + final walk - start - time spent at the stops).
    must = np.array([ctx.must[t] for t in pool], dtype=np.int64)
    must_count = bits @ must
    nice_count = counts - must_count
    dur_sum = bits @ np.array([ctx.durations[t] for t in pool])
    to_finish = np.array([ctx.to_finish[t] for t in pool])
    cost = times + to_finish[None, :] - problem.start_at - dur_sum[:, None]
    rows, cols = np.nonzero(np.isfinite(times))
    if not len(rows):
        return []
    first = np.lexsort((cost[rows, cols], -nice_count[rows], -must_count[rows]))[0]
    mask, last = int(rows[first]), int(cols[first])
    sequence: list[int] = []
    while mask:
        sequence.append(last)
        previous = int(parent[mask, last])
        mask ^= 1 << last
        last = previous
    sequence.reverse()
    return [pool[j] for j in sequence]


def solve_exhaustive(problem: Problem) -> list[int]:
    """Every ordered subset, best by the same key: the reference for small lists."""
    ctx = Context.of(problem)
    pool = candidates(ctx)
    best: list[int] = []
    best_key = ctx.key(best)
    for size in range(1, len(pool) + 1):
        for subset in itertools.combinations(pool, size):
            for order in itertools.permutations(subset):
                key = ctx.key(order)
                if key < best_key:
                    best, best_key = list(order), key
    return best
