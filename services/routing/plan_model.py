"""The optimizer's problem and how an order of tasks is evaluated.

A task has join segments: the times a guest may join it and the wait from each
(`waits.Segment`). A guest arriving at t may join at t if a segment is open then,
or at the start of any later segment, whichever finishes first: queueing is
first-in first-out, so arriving later never finishes earlier (standing aside until a
shorter slot starts is allowed, and counted as waiting). "Earliest finish" is thus
a function that never decreases with the arrival time (`Service`), which is what
makes keeping only the earliest finish of each partial plan exact.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt

from services.routing.waits import Segment, WaitSource

INF = math.inf

FloatArray = npt.NDArray[np.float64]


class TaskKind(Enum):
    ATTRACTION = "attraction"
    BOOKED_ATTRACTION = "booked_attraction"
    MEAL = "meal"
    SHOW = "show"
    VISIT = "visit"


class SkipReason(Enum):
    NOT_ENOUGH_TIME = "not_enough_time"
    NOT_OPERATING = "not_operating"
    UNREACHABLE = "unreachable"
    WINDOW_CONFLICT = "window_conflict"
    WINDOW_PASSED = "window_passed"


@dataclass(frozen=True)
class Task:
    item_id: str
    poi_id: str
    kind: TaskKind
    must: bool
    duration_seconds: float
    segments: tuple[Segment, ...]
    # Set when the caller gave a start window (for reasons of skipping).
    window: tuple[float, float] | None = None
    # Why there are no segments, when there are none.
    closed_reason: SkipReason = SkipReason.NOT_OPERATING
    closed_detail: str = "not operating while the plan runs"


@dataclass(frozen=True)
class Problem:
    start_at: float
    leave_at: float
    tasks: tuple[Task, ...]
    # Walking seconds: start -> task, task -> task, task -> finish (0 without a finish),
    # start -> finish. inf where there is no way.
    from_start: FloatArray
    between: npt.NDArray[np.float64]
    to_finish: FloatArray
    start_to_finish: float = 0.0


@dataclass(frozen=True, slots=True)
class Visit:
    task: int
    arrive: float
    walk_seconds: float
    join: float
    start: float
    end: float
    source: WaitSource

    @property
    def wait_seconds(self) -> float:
        return self.start - self.arrive


@dataclass(frozen=True, slots=True)
class Skip:
    task: int
    reason: SkipReason
    detail: str


@dataclass
class Plan:
    visits: list[Visit]
    skipped: list[Skip]
    finish_walk: float
    finish_at: float
    exact: bool
    solve_seconds: float = 0.0

    @property
    def order(self) -> list[int]:
        return [v.task for v in self.visits]

    @property
    def total_wait(self) -> float:
        return math.fsum(v.wait_seconds for v in self.visits)

    @property
    def total_walk(self) -> float:
        return math.fsum(v.walk_seconds for v in self.visits) + self.finish_walk

    @property
    def cost(self) -> float:
        """Waiting plus walking: what the optimizer minimizes once the stops are set."""
        return self.total_wait + self.total_walk


# --- the earliest-finish function of one task ---------------------------------------


class Service:
    """Earliest finish of one task for an arrival time, scalar and vectorized."""

    def __init__(self, task: Task) -> None:
        segments = sorted(task.segments, key=lambda s: (s.start, s.end))
        self.duration = task.duration_seconds
        self.segments = segments
        self.starts = np.array([s.start for s in segments], dtype=np.float64)
        self.ends = np.array([s.end for s in segments], dtype=np.float64)
        self.waits = np.array([s.wait_seconds for s in segments], dtype=np.float64)
        self._starts = self.starts.tolist()
        self._ends = self.ends.tolist()
        self._waits = self.waits.tolist()
        # suffix[m]: earliest finish joining at the start of segment m or a later one.
        finish_at_start = self.starts + self.waits + self.duration
        suffix = np.full(len(segments) + 1, INF)
        arg = np.full(len(segments) + 1, -1, dtype=np.int64)
        for m in range(len(segments) - 1, -1, -1):
            if finish_at_start[m] < suffix[m + 1]:
                suffix[m], arg[m] = finish_at_start[m], m
            else:
                suffix[m], arg[m] = suffix[m + 1], arg[m + 1]
        self.suffix = suffix
        self._suffix = suffix.tolist()
        self._arg = arg.tolist()

    def finish(self, arrive: float) -> float:
        k = bisect.bisect_right(self._starts, arrive) - 1
        best = INF
        if k >= 0 and arrive < self._ends[k]:
            best = arrive + self._waits[k] + self.duration
        later = self._suffix[bisect.bisect_left(self._starts, arrive)]
        return later if later < best else best

    def finish_many(self, arrive: FloatArray) -> FloatArray:
        if not self._starts:
            return np.full(arrive.shape, INF)
        k = np.searchsorted(self.starts, arrive, side="right") - 1
        kc = np.clip(k, 0, None)
        inside = (k >= 0) & (arrive < self.ends[kc])
        now = np.where(inside, arrive + self.waits[kc] + self.duration, INF)
        # The first segment starting at or after the arrival: the next one, or
        # this one when the arrival is exactly its start (one search, not two).
        later = k + 1 - ((k >= 0) & (self.starts[kc] == arrive))
        result: FloatArray = np.minimum(now, self.suffix[later])
        return result

    def visit(self, arrive: float) -> tuple[float, float, float, WaitSource] | None:
        """(join, start, end, source) of the earliest finish, or None."""
        k = bisect.bisect_right(self._starts, arrive) - 1
        best: tuple[float, float, float, WaitSource] | None = None
        if k >= 0 and arrive < self._ends[k]:
            start = arrive + self._waits[k]
            best = (arrive, start, start + self.duration, self.segments[k].source)
        m = self._arg[bisect.bisect_left(self._starts, arrive)]
        if m >= 0:
            join = self._starts[m]
            start = join + self._waits[m]
            if best is None or start + self.duration < best[2]:
                best = (join, start, start + self.duration, self.segments[m].source)
        return best


def latest_arrival(service: Service, deadline: float) -> float:
    """The latest arrival from which the task still ends by `deadline` (-inf: none)."""
    latest = -INF
    for a, b, w in zip(service._starts, service._ends, service._waits, strict=True):
        last_join = deadline - w - service.duration
        if a <= last_join:
            latest = max(latest, min(b, last_join) if b > a else a)
    return latest


# --- evaluation of an order ---------------------------------------------------------


@dataclass
class Context:
    problem: Problem
    services: list[Service]
    deadline: list[float]
    must: list[bool]
    durations: list[float]
    from_start: list[float]
    between: list[list[float]]
    to_finish: list[float]

    @classmethod
    def of(cls, problem: Problem) -> Context:
        tasks = problem.tasks
        return cls(
            problem,
            [Service(t) for t in tasks],
            [problem.leave_at - float(problem.to_finish[j]) for j in range(len(tasks))],
            [t.must for t in tasks],
            [t.duration_seconds for t in tasks],
            [float(x) for x in problem.from_start],
            [[float(x) for x in row] for row in problem.between],
            [float(x) for x in problem.to_finish],
        )

    def run(self, order: Sequence[int]) -> float:
        """End of the last task of `order` (start time when empty), inf if infeasible."""
        t = self.problem.start_at
        prev = -1
        for j in order:
            walk = self.from_start[j] if prev < 0 else self.between[prev][j]
            t = self.services[j].finish(t + walk)
            if t > self.deadline[j]:
                return INF
            prev = j
        return t

    def cost(self, order: Sequence[int]) -> float:
        """Waiting + walking of `order` (inf if infeasible)."""
        end = self.run(order)
        if end == INF:
            return INF
        if not order:
            fin = self.problem.start_to_finish
            return fin if self.problem.start_at + fin <= self.problem.leave_at else INF
        return (
            end
            + self.to_finish[order[-1]]
            - self.problem.start_at
            - math.fsum(self.durations[j] for j in order)
        )

    def key(self, order: Sequence[int]) -> tuple[int, int, float]:
        """Smaller is better: must-dos missed, nice-to-dos missed, waiting + walking."""
        cost = self.cost(order)
        if cost == INF:
            return (len(self.must) + 1, len(self.must) + 1, INF)
        musts = sum(1 for j in order if self.must[j])
        total_must = sum(self.must)
        nice = len(order) - musts
        total_nice = len(self.must) - total_must
        return (total_must - musts, total_nice - nice, cost)


def candidates(ctx: Context) -> list[int]:
    """Tasks that can be done at all (alone, from the start)."""
    return [j for j in range(len(ctx.services)) if ctx.run([j]) < INF]
