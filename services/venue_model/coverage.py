"""Where a guest would be out of range of every reader.

Not a load-time rule (a venue may knowingly have blind spots), but a property the
project's venues keep and the location service's accuracy depends on.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from services.venue_model.model import EdgeKind
from services.venue_model.venue import Venue

DEFAULT_KINDS = frozenset({EdgeKind.WALKWAY, EdgeKind.RAMP, EdgeKind.QUEUE})


@dataclass(frozen=True, slots=True)
class Gap:
    edge: str
    x: float
    y: float
    floor: int


def uncovered_points(
    venue: Venue, *, step_m: float = 2.0, kinds: Collection[EdgeKind] = DEFAULT_KINDS
) -> list[Gap]:
    """Points every `step_m` along edges of `kinds` that no reader on their floor hears."""
    if not venue.readers:
        raise ValueError("the venue has no readers")
    cell = max(r.range_m for r in venue.readers)
    grid: defaultdict[tuple[int, int, int], list[tuple[float, float, float]]] = defaultdict(list)
    for reader in venue.readers:
        node = venue.node(reader.node)
        key = (node.floor, math.floor(node.x / cell), math.floor(node.y / cell))
        grid[key].append((node.x, node.y, reader.range_m))

    def heard(x: float, y: float, floor: int) -> bool:
        cx, cy = math.floor(x / cell), math.floor(y / cell)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for rx, ry, rng in grid.get((floor, cx + dx, cy + dy), ()):
                    if math.hypot(x - rx, y - ry) <= rng:
                        return True
        return False

    gaps = []
    for edge in venue.edges:
        if edge.kind not in kinds:
            continue
        a, b = venue.node(edge.source), venue.node(edge.target)
        if a.floor == b.floor:
            steps = max(1, math.ceil(a.distance_to(b) / step_m))
            points = [
                (a.x + (b.x - a.x) * k / steps, a.y + (b.y - a.y) * k / steps, a.floor)
                for k in range(steps + 1)
            ]
        else:  # a ramp between floors: its two landings
            points = [(a.x, a.y, a.floor), (b.x, b.y, b.floor)]
        gaps += [Gap(edge.id, x, y, floor) for x, y, floor in points if not heard(x, y, floor)]
    return gaps
