"""The walkway graph and its shortest paths.

One `WalkGraph` per set of edge kinds (every walking edge, or the step-free ones).
An arc's time is `length / speed` plus any fixed `traverse_seconds` (escalators,
lifts), times a crowd factor per arc (1 when uncrowded). For one choice of speed and
crowd factors a `CostModel` answers single-source shortest paths with scipy's
Dijkstra (0.1 ms on the park) and keeps every row it computed; the model for the
default speed without crowding computes all rows at start-up, so most route queries
are a table look-up plus walking the predecessor chain.

The graph is also offered as a networkx `DiGraph` (`digraph()`): the tests use
networkx's own Dijkstra as an independent check of the numbers served here.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from services.venue_model import Edge, EdgeKind, Venue

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]

# No arc may cost nothing: scipy reads an explicit zero in a sparse graph as an arc,
# but a free arc would make "nearest" ties depend on the solver's order.
_MIN_ARC_SECONDS = 1e-6


@dataclass(frozen=True, slots=True)
class Row:
    """Shortest paths from one source: seconds to every node and each node's predecessor."""

    source: int
    seconds: FloatArray
    predecessors: IntArray

    def reaches(self, target: int) -> bool:
        return math.isfinite(self.seconds.item(target))

    def path(self, target: int) -> list[int] | None:
        """Node indices from the source to `target`, or None when unreachable."""
        if not self.reaches(target):
            return None
        # .item gives Python ints: indexing the array would make a numpy scalar
        # per step, several times slower.
        predecessor = self.predecessors.item
        source = self.source
        path = [target]
        node = target
        while node != source:
            node = predecessor(node)
            path.append(node)
        path.reverse()
        return path


class WalkGraph:
    """The nodes and arcs of one kind of walking (all walking edges, or step-free)."""

    def __init__(self, venue: Venue, kinds: Collection[EdgeKind]) -> None:
        arcs = venue.graph_edges(kinds)
        self.kinds = frozenset(kinds)
        self.node_ids: tuple[str, ...] = tuple(n.id for n in venue.graph_nodes(kinds))
        self.index: dict[str, int] = {node: i for i, node in enumerate(self.node_ids)}
        self.size = len(self.node_ids)
        self.arc_edges: tuple[Edge, ...] = tuple(a.edge for a in arcs)
        self.arc_source = np.array([self.index[a.source] for a in arcs], dtype=np.int32)
        self.arc_target = np.array([self.index[a.target] for a in arcs], dtype=np.int32)
        # Walking part (metres, divided by the speed) and fixed part (seconds) of each arc.
        self.arc_length = np.array([a.edge.length_m for a in arcs], dtype=np.float64)
        self.arc_walk_m = np.array(
            [0.0 if a.edge.traverse_seconds is not None else a.edge.length_m for a in arcs],
            dtype=np.float64,
        )
        self.arc_fixed_s = np.array(
            [a.edge.traverse_seconds or 0.0 for a in arcs], dtype=np.float64
        )
        self.arc_of: dict[tuple[int, int], int] = {
            (int(s), int(t)): k
            for k, (s, t) in enumerate(zip(self.arc_source, self.arc_target, strict=True))
        }
        # The sparse matrix sorts its entries; remember where each arc went so new
        # weights can be written straight into its data array.
        order = csr_matrix(
            (np.arange(1, len(arcs) + 1, dtype=np.float64), (self.arc_source, self.arc_target)),
            shape=(self.size, self.size),
        )
        self._csr_indptr = order.indptr
        self._csr_indices = order.indices
        self._csr_arc = (order.data - 1).astype(np.int64)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.index

    def arc_seconds(self, speed_mps: float) -> FloatArray:
        """Uncrowded time of every arc at a walking speed."""
        return np.maximum(self.arc_walk_m / speed_mps + self.arc_fixed_s, _MIN_ARC_SECONDS)

    def matrix(self, arc_weights: FloatArray) -> csr_matrix:
        return csr_matrix(
            (arc_weights[self._csr_arc], self._csr_indices, self._csr_indptr),
            shape=(self.size, self.size),
        )

    def digraph(self, speed_mps: float) -> nx.DiGraph:
        """The graph as networkx sees it, weighted by uncrowded seconds (`seconds`)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(self.node_ids)
        weights = self.arc_seconds(speed_mps)
        for k, edge in enumerate(self.arc_edges):
            graph.add_edge(
                self.node_ids[self.arc_source[k]],
                self.node_ids[self.arc_target[k]],
                seconds=float(weights[k]),
                edge=edge,
            )
        return graph


class CostModel:
    """Shortest paths under one set of arc weights; rows are computed once and kept."""

    def __init__(
        self,
        graph: WalkGraph,
        base: FloatArray,
        factors: FloatArray | None,
        key: ModelKey | None = None,
    ) -> None:
        self.graph = graph
        self.key = key
        # Uncrowded seconds of each arc, and the seconds routes are chosen by.
        self.base = base
        self.weights = base if factors is None else base * factors
        self._csr = graph.matrix(self.weights)
        self._rows: dict[int, Row] = {}
        self._lock = threading.Lock()

    def precompute_all(self) -> None:
        seconds, preds = dijkstra(self._csr, directed=True, return_predecessors=True)
        for source in range(self.graph.size):
            self._rows[source] = Row(source, seconds[source], preds[source])

    def row(self, source: int) -> Row:
        found = self._rows.get(source)
        if found is not None:
            return found
        seconds, preds = dijkstra(
            self._csr, directed=True, indices=source, return_predecessors=True
        )
        row = Row(source, seconds, preds)
        with self._lock:
            self._rows[source] = row
        return row

    def rows(self, sources: Sequence[int]) -> list[Row]:
        """Rows of many sources; the missing ones in one solver call (a plan asks for
        a row per stop, and one call per row costs more in overhead than in search)."""
        missing = sorted({s for s in sources if s not in self._rows})
        if len(missing) == 1:
            self.row(missing[0])
        elif missing:
            seconds, preds = dijkstra(
                self._csr, directed=True, indices=missing, return_predecessors=True
            )
            with self._lock:
                for i, source in enumerate(missing):
                    self._rows[source] = Row(source, seconds[i], preds[i])
        return [self._rows[s] for s in sources]

    def seconds(self, source: int, target: int) -> float:
        return float(self.row(source).seconds[target])

    def arcs_of(self, path: Sequence[int]) -> list[int]:
        arc_of = self.graph.arc_of
        return [arc_of[(a, b)] for a, b in itertools.pairwise(path)]


@dataclass(frozen=True, slots=True)
class ModelKey:
    step_free: bool
    speed_mps: float
    # None: uncrowded; otherwise the crowd board's version the factors came from.
    crowd_version: int | None


class ModelCache:
    """Cost models by (step-free, speed, crowd version), least recently used dropped.

    Guests walk at their own speeds and crowd versions move on, so the number of
    distinct models is bounded here rather than by the callers. A park day has a
    few thousand parties each at its own pace replanning through the day: room for
    a good share of them keeps their rows from being solved again and again (a model
    with a few dozen rows is a few hundred kB).
    """

    def __init__(self, capacity: int = 128) -> None:
        self._capacity = capacity
        self._models: OrderedDict[ModelKey, CostModel] = OrderedDict()
        self._pinned: dict[ModelKey, CostModel] = {}
        self._lock = threading.Lock()

    def pin(self, key: ModelKey, model: CostModel) -> None:
        """A model that is never dropped (the default speed, uncrowded)."""
        self._pinned[key] = model

    def get(self, key: ModelKey) -> CostModel | None:
        pinned = self._pinned.get(key)
        if pinned is not None:
            return pinned
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
            return model

    def put(self, key: ModelKey, model: CostModel) -> CostModel:
        with self._lock:
            self._models[key] = model
            self._models.move_to_end(key)
            while len(self._models) > self._capacity:
                self._models.popitem(last=False)
        return model
