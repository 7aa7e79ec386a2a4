"""The venue as guests walk it: shortest walks between places, where a walk is at
any moment, and which readers hear a band at each node.

Routes use the walking edges (walkways, stairs, escalators, lifts, ramps) so that
nobody cuts through a line or a ride; lines and rides are walked along their own
queue and ride edges by the attractions (sim.lines). Together the world walks every
kind of edge the venue has, each at `Edge.seconds(speed)`.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from dataclasses import dataclass

import networkx as nx

from services.venue_model import WALKING_EDGE_KINDS, EdgeKind, Venue

REFERENCE_SPEED = 1.25  # m/s: the speed routes are chosen at
# A reader hears a band at this strength one metre away, weaker by 10*n*log10(d).
RSSI_AT_1M = -45.0
PATH_LOSS_EXPONENT = 2.2


@dataclass(frozen=True, slots=True)
class Heard:
    reader: str
    rssi: float  # mean strength at this node, dBm


@dataclass(slots=True)
class Tree:
    """Shortest walks from everywhere to one destination."""

    next_hop: dict[str, str]
    metres: dict[str, float]  # length of speed-dependent edges on the way
    fixed_s: dict[str, float]  # escalators, lifts: their own traverse time


class Walk:
    """A walk that started at `start_s` along `nodes`, arriving at `cum_s[-1]` later."""

    __slots__ = ("cum_s", "nodes", "start_s")

    def __init__(self, start_s: float, nodes: list[str], cum_s: list[float]) -> None:
        self.start_s = start_s
        self.nodes = nodes
        self.cum_s = cum_s

    @property
    def seconds(self) -> float:
        return self.cum_s[-1]

    def node_at(self, t: float) -> str:
        i = bisect_right(self.cum_s, t - self.start_s) - 1
        return self.nodes[min(max(i, 0), len(self.nodes) - 1)]


class Geography:
    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.zone_of: dict[str, str] = {n.id: n.zone for n in venue.nodes}
        graph: nx.DiGraph = nx.DiGraph()
        self._edge: dict[tuple[str, str], tuple[float, float]] = {}
        for arc in venue.graph_edges(WALKING_EDGE_KINDS):
            fixed = arc.edge.traverse_seconds
            metres = 0.0 if fixed is not None else arc.edge.length_m
            self._edge[(arc.source, arc.target)] = (metres, fixed or 0.0)
            graph.add_edge(arc.source, arc.target, weight=arc.edge.seconds(REFERENCE_SPEED))
        self._reverse = graph.reverse(copy=True)
        self._trees: dict[str, Tree] = {}
        self.heard: dict[str, tuple[Heard, ...]] = self._hearing()

    # --- walking --------------------------------------------------------------

    def tree(self, destination: str) -> Tree:
        tree = self._trees.get(destination)
        if tree is None:
            pred, dist = nx.dijkstra_predecessor_and_distance(self._reverse, destination)
            next_hop: dict[str, str] = {}
            metres: dict[str, float] = {destination: 0.0}
            fixed: dict[str, float] = {destination: 0.0}
            for node in sorted(dist, key=dist.__getitem__):
                if node == destination:
                    continue
                hop = pred[node][0]
                next_hop[node] = hop
                m, f = self._edge[(node, hop)]
                metres[node] = metres[hop] + m
                fixed[node] = fixed[hop] + f
            tree = Tree(next_hop, metres, fixed)
            self._trees[destination] = tree
        return tree

    def walk_seconds(self, origin: str, destination: str, speed: float) -> float:
        tree = self.tree(destination)
        return tree.metres[origin] / speed + tree.fixed_s[origin]

    def walk(self, origin: str, destination: str, speed: float, start_s: float) -> Walk:
        tree = self.tree(destination)
        nodes = [origin]
        cum = [0.0]
        node = origin
        while node != destination:
            hop = tree.next_hop[node]
            m, f = self._edge[(node, hop)]
            cum.append(cum[-1] + m / speed + f)
            nodes.append(hop)
            node = hop
        return Walk(start_s, nodes, cum)

    # --- what readers hear ------------------------------------------------------

    def _hearing(self) -> dict[str, tuple[Heard, ...]]:
        nodes = {n.id: n for n in self.venue.nodes}
        heard: dict[str, list[Heard]] = {n: [] for n in nodes}
        for reader in self.venue.readers:
            at = nodes[reader.node]
            for node in nodes.values():
                if node.floor != at.floor:
                    continue
                d = node.distance_to(at)
                if d <= reader.range_m:
                    rssi = RSSI_AT_1M - 10 * PATH_LOSS_EXPONENT * math.log10(max(d, 1.0))
                    heard[node.id].append(Heard(reader.id, rssi))
        return {k: tuple(sorted(v, key=lambda h: -h.rssi)) for k, v in heard.items()}

    def line_nodes(self, attraction: str) -> tuple[str, ...]:
        return self.venue.queue_line(attraction)

    def path_seconds(self, nodes: tuple[str, ...], kind: EdgeKind, speed: float) -> float:
        """Time along a chain of queue or ride edges."""
        by_pair = {(e.source, e.target): e for e in self.venue.edges if e.kind is kind}
        return sum(by_pair[(a, b)].seconds(speed) for a, b in itertools.pairwise(nodes))
