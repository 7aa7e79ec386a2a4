"""Routes on the venue's walkway graph: A to B, step-free, crowd-aware, and the
nearest points of interest of a kind.

Pure: the router holds the venue, the two graphs and the crowd board, and answers
from them; the servicer turns answers into protobuf messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from services.routing.crowding import CrowdBoard
from services.routing.graph import CostModel, ModelCache, ModelKey, Row, WalkGraph
from services.venue_model import (
    ACCESSIBLE_EDGE_KINDS,
    WALKING_EDGE_KINDS,
    EdgeKind,
    Poi,
    Venue,
)

# Used when a request gives no walking speed: a relaxed adult pace in a park or mall
# (free-flow pedestrian studies put the mean at 1.2-1.4 m/s; families walk slower).
DEFAULT_WALKING_SPEED_MPS = 1.2
# Walking speeds a request may ask for: a slow wheelchair push to a brisk jog.
MIN_WALKING_SPEED_MPS = 0.2
MAX_WALKING_SPEED_MPS = 3.0


class NotRoutable(Exception):
    """The node exists but routes cannot start or end there (inside a line or a ride)."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


@dataclass(frozen=True, slots=True)
class Walking:
    speed_mps: float = DEFAULT_WALKING_SPEED_MPS
    step_free: bool = False
    avoid_crowds: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    source: str
    target: str
    distance_m: float
    seconds: float
    # The uncrowded time of the same arc.
    base_seconds: float
    kind: EdgeKind
    floor: int
    zone: str


@dataclass(frozen=True, slots=True)
class Route:
    node_ids: tuple[str, ...]
    steps: tuple[Step, ...]
    distance_m: float
    seconds: float
    crowd_delay_seconds: float


@dataclass(frozen=True, slots=True)
class Nearby:
    poi: Poi
    seconds: float
    distance_m: float


class Router:
    def __init__(
        self,
        venue: Venue,
        crowd: CrowdBoard,
        default_speed_mps: float = DEFAULT_WALKING_SPEED_MPS,
    ) -> None:
        self.venue = venue
        self.crowd = crowd
        self.default_speed = default_speed_mps
        self.walk = WalkGraph(venue, WALKING_EDGE_KINDS)
        self.step_free = WalkGraph(venue, ACCESSIBLE_EDGE_KINDS)
        self._models = ModelCache()
        for graph, step_free in ((self.walk, False), (self.step_free, True)):
            key = ModelKey(step_free, default_speed_mps, None)
            model = CostModel(graph, graph.arc_seconds(default_speed_mps), None, key)
            model.precompute_all()
            self._models.pin(key, model)
        self._zone_nodes = {zone.id: self._representative(zone.id) for zone in venue.zones}
        self._step_free_pois = frozenset(p.id for p in venue.pois if p.node in self.step_free)

    # --- endpoints ---------------------------------------------------------------

    def node_of_poi(self, poi_id: str) -> str:
        return self.venue.poi(poi_id).node

    def node_of_zone(self, zone_id: str) -> str:
        self.venue.zone(zone_id)  # UnknownIdError when absent
        node = self._zone_nodes.get(zone_id)
        if node is None:
            raise NotRoutable(zone_id)
        return node

    def routable_node(self, node_id: str) -> str:
        self.venue.node(node_id)  # UnknownIdError when absent
        if node_id not in self.walk:
            raise NotRoutable(node_id)
        return node_id

    def _representative(self, zone_id: str) -> str | None:
        """The walkable node of a zone (or its sub-zones) nearest the zone's centre;
        for a zone with none (a line, a ride) the entrance of its attraction."""
        members = {zone_id}
        frontier = [zone_id]
        while frontier:
            for child in self.venue.zone_children(frontier.pop()):
                if child.id not in members:
                    members.add(child.id)
                    frontier.append(child.id)
        nodes = [
            self.venue.node(n) for n in self.walk.node_ids if self.venue.node(n).zone in members
        ]
        if nodes:
            cx = sum(n.x for n in nodes) / len(nodes)
            cy = sum(n.y for n in nodes) / len(nodes)
            return min(nodes, key=lambda n: (math.hypot(n.x - cx, n.y - cy), n.id)).id
        for poi in self.venue.pois:
            if poi.zone in members or (poi.queue is not None and poi.queue.queue_zone in members):
                return poi.node
        return None

    def is_step_free(self, poi: Poi) -> bool:
        """The point is on the step-free graph (which is strongly connected)."""
        return poi.id in self._step_free_pois

    # --- cost models -------------------------------------------------------------

    def graph(self, walking: Walking) -> WalkGraph:
        return self.step_free if walking.step_free else self.walk

    def model(self, walking: Walking, crowded: bool) -> CostModel:
        """The cost model for a way of walking; `crowded` applies the crowd factors."""
        use_crowd = crowded and walking.avoid_crowds and self.crowd.crowded()
        key = ModelKey(
            walking.step_free, walking.speed_mps, self.crowd.version if use_crowd else None
        )
        found = self._models.get(key)
        if found is not None:
            return found
        graph = self.graph(walking)
        factors = self.crowd.arc_factors(graph) if use_crowd else None
        model = CostModel(graph, graph.arc_seconds(walking.speed_mps), factors, key)
        return self._models.put(key, model)

    # --- queries -----------------------------------------------------------------

    def path(
        self, origin: str, destination: str, walking: Walking, crowded: bool
    ) -> tuple[CostModel, list[int]] | None:
        """The cost model and the node indices of the quickest walk, or None."""
        model = self.model(walking, crowded)
        path = self.path_in(model, origin, destination)
        return None if path is None else (model, path)

    @staticmethod
    def path_in(model: CostModel, origin: str, destination: str) -> list[int] | None:
        """The node indices of the quickest walk under `model`, or None."""
        index = model.graph.index
        if origin not in index or destination not in index:
            return None
        return model.row(index[origin]).path(index[destination])

    def route(self, origin: str, destination: str, walking: Walking, crowded: bool) -> Route | None:
        """The quickest walk, or None when there is none under `walking` (step-free)."""
        found = self.path(origin, destination, walking, crowded)
        return None if found is None else self.describe(*found)

    def describe(self, model: CostModel, path: Sequence[int]) -> Route:
        graph = model.graph
        steps: list[Step] = []
        for arc in model.arcs_of(path):
            edge = graph.arc_edges[arc]
            target = self.venue.node(graph.node_ids[graph.arc_target[arc]])
            steps.append(
                Step(
                    source=graph.node_ids[graph.arc_source[arc]],
                    target=target.id,
                    distance_m=edge.length_m,
                    seconds=float(model.weights[arc]),
                    base_seconds=float(model.base[arc]),
                    kind=edge.kind,
                    floor=target.floor,
                    zone=target.zone,
                )
            )
        seconds = math.fsum(s.seconds for s in steps)
        return Route(
            node_ids=tuple(graph.node_ids[i] for i in path),
            steps=tuple(steps),
            distance_m=math.fsum(s.distance_m for s in steps),
            seconds=seconds,
            crowd_delay_seconds=max(0.0, seconds - math.fsum(s.base_seconds for s in steps)),
        )

    def seconds_from(self, origin: str, walking: Walking, crowded: bool = False) -> Row | None:
        model = self.model(walking, crowded)
        source = model.graph.index.get(origin)
        return None if source is None else model.row(source)

    def nearest(
        self,
        origin: str,
        candidates: Sequence[Poi],
        walking: Walking,
        crowded: bool,
        limit: int,
        max_seconds: float | None = None,
        keep: Callable[[Poi], bool] = lambda _: True,
    ) -> list[Nearby]:
        """Candidates by walking time from `origin`, nearest first (ties by id).

        `keep` is asked nearest first and only until `limit` are found: it is the
        costly part (opening hours in the venue's zone), and most candidates are
        never needed."""
        model = self.model(walking, crowded)
        index = model.graph.index
        source = index.get(origin)
        if source is None:
            return []
        row = model.row(source)
        placed = [(poi, index.get(poi.node)) for poi in candidates]
        present = [(poi, target) for poi, target in placed if target is not None]
        if not present:
            return []
        times = row.seconds[[target for _, target in present]].tolist()
        ranked = sorted(
            (
                (seconds, poi.id, poi, target)
                for seconds, (poi, target) in zip(times, present, strict=True)
                if math.isfinite(seconds) and (max_seconds is None or seconds <= max_seconds)
            ),
            key=lambda r: (r[0], r[1]),
        )
        found: list[Nearby] = []
        for seconds, _, poi, target in ranked:
            if len(found) >= limit:
                break
            if not keep(poi):
                continue
            path = row.path(target)
            assert path is not None
            distance = math.fsum(model.graph.arc_length[model.arcs_of(path)].tolist())
            found.append(Nearby(poi, seconds, distance))
        return found

    def walk_matrix(
        self, nodes: Sequence[str], walking: Walking
    ) -> tuple[np.ndarray[tuple[int, int], np.dtype[np.float64]], list[bool]]:
        """Uncrowded walking seconds between every pair of `nodes` (inf when no way),
        and which of them the graph has at all."""
        model = self.model(walking, crowded=False)
        index = model.graph.index
        present = [n in index for n in nodes]
        size = len(nodes)
        matrix = np.full((size, size), np.inf)
        columns = np.array([index.get(n, 0) for n in nodes], dtype=np.int64)
        rows = model.rows([index[n] for n, ok in zip(nodes, present, strict=True) if ok])
        found = iter(rows)
        for i, ok in enumerate(present):
            if ok:
                matrix[i] = next(found).seconds[columns]
        for j, ok in enumerate(present):
            if not ok:
                matrix[:, j] = np.inf
        np.fill_diagonal(matrix, 0.0)
        return matrix, present
