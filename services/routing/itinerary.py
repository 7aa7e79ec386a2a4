"""From a wish list to the optimizer's problem: each item's join segments (when it
can be started and the wait from then), its duration, and the walks between stops.

Defaults where the caller gives none: a ride lasts its ride time, a show its
performance, a meal MEAL_MINUTES (SNACK_MINUTES at a stand without the "meal" tag),
any other visit VISIT_MINUTES. A booked ride's return line is planned at
RETURN_LINE_MINUTES. A meal without a reservation at a place without a line twin
counts no wait.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from services.routing.calendar import at_minute, period, venue_day
from services.routing.planner import Problem, SkipReason, Task, TaskKind
from services.routing.routes import Router, Walking
from services.routing.waits import QueueBook, Segment, WaitSource, cut
from services.venue_model import Poi, PoiKind, Venue

MEAL_MINUTES = 40.0
SNACK_MINUTES = 15.0
VISIT_MINUTES = 15.0
RETURN_LINE_MINUTES = 5.0


@dataclass(frozen=True)
class Wish:
    item_id: str
    poi: Poi
    kind: TaskKind
    must: bool
    window: tuple[float, float] | None
    duration_seconds: float | None


@dataclass(frozen=True)
class Request:
    start_node: str
    start_at: datetime
    leave_at: datetime
    finish_node: str | None
    walking: Walking
    wishes: tuple[Wish, ...]


def default_duration(wish: Wish) -> float:
    poi = wish.poi
    if wish.kind in (TaskKind.ATTRACTION, TaskKind.BOOKED_ATTRACTION) and poi.queue:
        return poi.queue.ride_seconds
    if wish.kind is TaskKind.SHOW and poi.show:
        return poi.show.duration_minutes * 60.0
    if wish.kind is TaskKind.MEAL:
        meal = poi.kind is PoiKind.FOOD and "meal" in poi.tags
        return (MEAL_MINUTES if meal else SNACK_MINUTES) * 60.0
    return VISIT_MINUTES * 60.0


def _clip(segments: Sequence[Segment], lo: float, hi: float) -> list[Segment]:
    out = []
    for s in segments:
        if s.start == s.end:
            if lo <= s.start < hi:
                out.append(s)
            continue
        a, b = max(s.start, lo), min(s.end, hi)
        if a < b:
            out.append(Segment(a, b, s.wait_seconds, s.source))
    return out


def task_of(venue: Venue, book: QueueBook, wish: Wish, day: date, lo: float, hi: float) -> Task:
    """The task of one wish on venue day `day`, for a plan running from `lo` to `hi`."""
    poi = wish.poi
    opens_at, closes_at = period(venue, day, poi.hours)
    opens, closes = opens_at.timestamp(), closes_at.timestamp()
    window_lo, window_hi = wish.window if wish.window is not None else (-math.inf, math.inf)
    span_lo, span_hi = max(lo, window_lo), min(hi, window_hi)
    segments: list[Segment]
    if wish.kind is TaskKind.SHOW and poi.show is not None:
        segments = [
            Segment(t, t, 0.0, WaitSource.FIXED)
            for t in (at_minute(venue, day, m).timestamp() for m in poi.show.performances)
        ]
    elif wish.kind is TaskKind.BOOKED_ATTRACTION:
        segments = [Segment(opens, closes, RETURN_LINE_MINUTES * 60.0, WaitSource.FIXED)]
    elif poi.queue is not None and (
        wish.kind is TaskKind.ATTRACTION or (wish.kind is TaskKind.MEAL and wish.window is None)
    ):
        segments = book.standby_segments(venue, poi, opens, closes, lo, hi)
    else:
        segments = [Segment(opens, closes, 0.0, WaitSource.FIXED)]
    segments = _clip(segments, max(span_lo, opens), min(span_hi, closes))
    if poi.queue is not None:
        for a, b in book.blocked(poi.id):
            segments = cut(segments, a, b)
    reason, detail = SkipReason.NOT_OPERATING, "not operating while the plan runs"
    if wish.window is not None and wish.window[1] <= lo:
        reason, detail = SkipReason.WINDOW_PASSED, "its start window is over"
    elif closes <= lo:
        detail = "closed for the rest of the day"
    duration = wish.duration_seconds
    return Task(
        item_id=wish.item_id,
        poi_id=poi.id,
        kind=wish.kind,
        must=wish.must,
        duration_seconds=default_duration(wish) if duration is None else duration,
        segments=tuple(sorted(segments, key=lambda s: (s.start, s.end))),
        window=wish.window,
        closed_reason=reason,
        closed_detail=detail,
    )


def build_problem(venue: Venue, book: QueueBook, router: Router, request: Request) -> Problem:
    lo, hi = request.start_at.timestamp(), request.leave_at.timestamp()
    day = venue_day(venue, request.start_at)
    tasks = tuple(task_of(venue, book, w, day, lo, hi) for w in request.wishes)
    n = len(tasks)
    nodes = [request.start_node, *(w.poi.node for w in request.wishes)]
    if request.finish_node is not None:
        nodes.append(request.finish_node)
    matrix, _ = router.walk_matrix(nodes, request.walking)
    from_start = matrix[0, 1 : n + 1].copy()
    between = matrix[1 : n + 1, 1 : n + 1].copy()
    if request.finish_node is not None:
        to_finish = matrix[1 : n + 1, n + 1].copy()
        start_to_finish = float(matrix[0, n + 1])
    else:
        to_finish = np.zeros(n)
        start_to_finish = 0.0
    return Problem(lo, hi, tasks, from_start, between, to_finish, start_to_finish)
