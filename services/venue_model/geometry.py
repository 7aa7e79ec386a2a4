"""Checks of the walkway graph: floors, lengths, and that everyone can get everywhere."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Collection, Iterable

from services.venue_model.errors import Problem
from services.venue_model.model import (
    ACCESSIBLE_EDGE_KINDS,
    WALKING_EDGE_KINDS,
    EdgeKind,
    Node,
)
from services.venue_model.venue import Venue

# Lengths are written to 0.1 m; this absorbs float noise, not real shortcuts.
LENGTH_TOLERANCE_M = 0.01

_SAME_FLOOR_KINDS = frozenset({EdgeKind.WALKWAY, EdgeKind.QUEUE, EdgeKind.RIDE})


def floor_problems(v: Venue) -> list[Problem]:
    zones = {z.id: z for z in v.zones}
    problems = []
    for i, node in enumerate(v.nodes):
        zone = zones[node.zone]
        if node.floor != zone.floor:
            problems.append(
                Problem(
                    ("nodes", i, "floor"),
                    f"floor {node.floor} differs from floor {zone.floor} of its zone {zone.id!r}",
                )
            )
    return problems


def edge_problems(v: Venue) -> list[Problem]:
    nodes = {n.id: n for n in v.nodes}
    problems = []
    arcs: dict[tuple[str, str], int] = {}
    for i, edge in enumerate(v.edges):
        a, b = nodes[edge.source], nodes[edge.target]
        if edge.kind in _SAME_FLOOR_KINDS and a.floor != b.floor:
            problems.append(
                Problem(
                    ("edges", i, "kind"),
                    f"a {edge.kind} edge stays on one floor, but {a.id!r} is on floor {a.floor} "
                    f"and {b.id!r} on floor {b.floor} (use stairs, escalator, elevator or ramp)",
                )
            )
        if edge.kind.vertical and a.floor == b.floor:
            problems.append(
                Problem(
                    ("edges", i, "kind"),
                    f"{edge.kind} must join two different floors, but both ends are on "
                    f"floor {a.floor}",
                )
            )
        if a.floor == b.floor:
            straight = a.distance_to(b)
            if edge.length_m + LENGTH_TOLERANCE_M < straight:
                problems.append(
                    Problem(
                        ("edges", i, "length_m"),
                        f"{edge.length_m:g} m is shorter than the straight line from {a.id!r} "
                        f"to {b.id!r} ({straight:.1f} m)",
                    )
                )
        # A routing DiGraph holds one arc per ordered pair; a second would vanish silently.
        directions = [(edge.source, edge.target)]
        if not edge.one_way:
            directions.append((edge.target, edge.source))
        for direction in directions:
            first = arcs.setdefault(direction, i)
            if first != i:
                problems.append(
                    Problem(
                        ("edges", i),
                        f"joins {direction[0]!r} to {direction[1]!r} like edges[{first}]; "
                        "two edges may not join the same nodes in the same direction",
                    )
                )
                break
    return problems


def _adjacency(v: Venue, kinds: Collection[EdgeKind], reverse: bool) -> defaultdict[str, list[str]]:
    adjacency: defaultdict[str, list[str]] = defaultdict(list)
    for arc in v.graph_edges(kinds):
        if reverse:
            adjacency[arc.target].append(arc.source)
        else:
            adjacency[arc.source].append(arc.target)
    return adjacency


def _reachable(start: str, adjacency: defaultdict[str, list[str]]) -> set[str]:
    seen = {start}
    todo = deque([start])
    while todo:
        for nxt in adjacency[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _connectivity(
    v: Venue, members: Iterable[Node], kinds: Collection[EdgeKind], how: str, why: str
) -> list[Problem]:
    """Strong connectivity of `members` over `kinds`, by a forward and a backward search."""
    ordered = list(members)
    if not ordered:
        return []
    index = {n.id: i for i, n in enumerate(v.nodes)}
    root = ordered[0].id
    problems = []
    for reverse, verb in ((False, "cannot be reached from"), (True, "cannot get back to")):
        reached = _reachable(root, _adjacency(v, kinds, reverse))
        missing = [n for n in ordered if n.id not in reached]
        if missing:
            first = missing[0]
            others = f" (nor can {len(missing) - 1} other nodes)" if len(missing) > 1 else ""
            problems.append(
                Problem(
                    ("nodes", index[first.id]),
                    f"node {first.id!r} {verb} {root!r} {how}{others}: {why}",
                )
            )
    return problems


def connectivity_problems(v: Venue) -> list[Problem]:
    on_edges = {e.source for e in v.edges} | {e.target for e in v.edges}
    problems = [
        Problem(("nodes", i), f"node {n.id!r} is on no edge")
        for i, n in enumerate(v.nodes)
        if n.id not in on_edges
    ]
    walking = v.graph_nodes(WALKING_EDGE_KINDS)
    problems += _connectivity(
        v, walking, WALKING_EDGE_KINDS, "by walking", "the walkway graph must be strongly connected"
    )
    if not problems:
        # Accessible routes must exist between all places, or routing has no answer.
        problems += _connectivity(
            v,
            walking,
            ACCESSIBLE_EDGE_KINDS,
            "without stairs or escalators",
            "every place must be reachable step-free (add a lift or a ramp)",
        )
        problems += _connectivity(
            v,
            v.nodes,
            tuple(EdgeKind),
            "along any edge",
            "every line and ride must lead back to the walkways",
        )
    return problems
