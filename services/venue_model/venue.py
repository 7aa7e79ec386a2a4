"""The loaded venue: every part in file order, and the lookups services ask for.

Lists keep the file's order so that a problem can be reported as `edges[17]`, and so
that anything derived from a venue (ids handed to devices, graph order) is stable
from run to run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar
from zoneinfo import ZoneInfo

from services.venue_model.model import (
    WALKING_EDGE_KINDS,
    AccessPoint,
    AccessPointKind,
    Arc,
    Camera,
    Demand,
    Edge,
    EdgeKind,
    Node,
    OpeningHours,
    Poi,
    PoiKind,
    QueueSpec,
    Reader,
    Room,
    Rules,
    Till,
    VenueKind,
    Zone,
)


class UnknownIdError(KeyError):
    """An id that the venue does not define (a service maps it to NOT_FOUND)."""

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(ident)
        self.what = what
        self.ident = ident

    def __str__(self) -> str:
        return f"no {self.what} with id {self.ident!r} in this venue"


_T = TypeVar("_T")


def _index(items: Iterable[_T], key: str = "id") -> Mapping[str, _T]:
    return MappingProxyType({getattr(item, key): item for item in items})


def _group(items: Iterable[_T], key: str) -> Mapping[str, tuple[_T, ...]]:
    groups: defaultdict[str, list[_T]] = defaultdict(list)
    for item in items:
        value = getattr(item, key)
        if value is not None:
            groups[value].append(item)
    return MappingProxyType({k: tuple(v) for k, v in groups.items()})


def _get(what: str, table: Mapping[str, _T], ident: str) -> _T:
    try:
        return table[ident]
    except KeyError:
        raise UnknownIdError(what, ident) from None


@dataclass(frozen=True)
class Venue:
    id: str
    name: str
    kind: VenueKind
    timezone: str
    currency: str
    currency_exponent: int
    hours: OpeningHours
    rules: Rules
    zones: tuple[Zone, ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    pois: tuple[Poi, ...]
    readers: tuple[Reader, ...]
    access_points: tuple[AccessPoint, ...]
    tills: tuple[Till, ...]
    cameras: tuple[Camera, ...]
    demand: Demand
    source_path: Path | None = None

    # Indexes are derived, so they are built here rather than passed in.
    _zones: Mapping[str, Zone] = field(init=False, repr=False, compare=False)
    _nodes: Mapping[str, Node] = field(init=False, repr=False, compare=False)
    _edges: Mapping[str, Edge] = field(init=False, repr=False, compare=False)
    _pois: Mapping[str, Poi] = field(init=False, repr=False, compare=False)
    _readers: Mapping[str, Reader] = field(init=False, repr=False, compare=False)
    _access_points: Mapping[str, AccessPoint] = field(init=False, repr=False, compare=False)
    _tills: Mapping[str, Till] = field(init=False, repr=False, compare=False)
    _cameras: Mapping[str, Camera] = field(init=False, repr=False, compare=False)
    _rooms: Mapping[str, Room] = field(init=False, repr=False, compare=False)
    _ap_by_attraction: Mapping[str, tuple[AccessPoint, ...]] = field(
        init=False, repr=False, compare=False
    )
    _cameras_by_attraction: Mapping[str, tuple[Camera, ...]] = field(
        init=False, repr=False, compare=False
    )
    _tills_by_merchant: Mapping[str, tuple[Till, ...]] = field(
        init=False, repr=False, compare=False
    )
    _readers_by_zone: Mapping[str, tuple[Reader, ...]] = field(
        init=False, repr=False, compare=False
    )
    _children: Mapping[str, tuple[Zone, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rooms = [room for poi in self.pois if poi.hotel for room in poi.hotel.rooms]
        derived: dict[str, object] = {
            "_zones": _index(self.zones),
            "_nodes": _index(self.nodes),
            "_edges": _index(self.edges),
            "_pois": _index(self.pois),
            "_readers": _index(self.readers),
            "_access_points": _index(self.access_points),
            "_tills": _index(self.tills),
            "_cameras": _index(self.cameras),
            "_rooms": _index(rooms),
            "_ap_by_attraction": _group(self.access_points, "attraction"),
            "_cameras_by_attraction": _group(self.cameras, "attraction"),
            "_tills_by_merchant": _group(self.tills, "merchant"),
            "_readers_by_zone": _group(self.readers, "zone"),
            "_children": _group(self.zones, "parent"),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    # --- time -----------------------------------------------------------------

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def minute_of_day(self, instant: datetime) -> float:
        """Local minutes after midnight of an aware instant, for comparing with hours."""
        local = instant.astimezone(self.tzinfo)
        return local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60

    # --- lookups by id (UnknownIdError, a KeyError, when absent) ----------------

    def zone(self, zone_id: str) -> Zone:
        return _get("zone", self._zones, zone_id)

    def node(self, node_id: str) -> Node:
        return _get("node", self._nodes, node_id)

    def edge(self, edge_id: str) -> Edge:
        return _get("edge", self._edges, edge_id)

    def poi(self, poi_id: str) -> Poi:
        return _get("point of interest", self._pois, poi_id)

    def reader(self, reader_id: str) -> Reader:
        return _get("reader", self._readers, reader_id)

    def access_point(self, access_point_id: str) -> AccessPoint:
        return _get("access point", self._access_points, access_point_id)

    def till(self, till_id: str) -> Till:
        return _get("till", self._tills, till_id)

    def camera(self, camera_id: str) -> Camera:
        return _get("camera", self._cameras, camera_id)

    def room(self, room_id: str) -> Room:
        return _get("hotel room", self._rooms, room_id)

    def device(self, device_id: str) -> Reader | AccessPoint | Till | Camera:
        """Any device by id: readers, access points, tills and cameras share one id space."""
        tables: tuple[Mapping[str, Reader | AccessPoint | Till | Camera], ...] = (
            self._readers,
            self._access_points,
            self._tills,
            self._cameras,
        )
        for table in tables:
            if device_id in table:
                return table[device_id]
        raise UnknownIdError("device", device_id)

    def attraction(self, attraction_id: str) -> Poi:
        """A point of interest with a line; UnknownIdError if there is none by that id."""
        poi = self._pois.get(attraction_id)
        if poi is None or poi.queue is None:
            raise UnknownIdError("attraction", attraction_id)
        return poi

    def queue_of(self, attraction_id: str) -> QueueSpec:
        queue = self.attraction(attraction_id).queue
        assert queue is not None  # attraction() guarantees it
        return queue

    def has(self, ident: str) -> bool:
        """True if any part of the venue (zone, node, poi, device ...) has this id."""
        tables: tuple[Mapping[str, object], ...] = (
            self._zones,
            self._nodes,
            self._edges,
            self._pois,
            self._readers,
            self._access_points,
            self._tills,
            self._cameras,
            self._rooms,
        )
        return any(ident in table for table in tables)

    # --- selections -----------------------------------------------------------

    def attractions(self) -> tuple[Poi, ...]:
        return tuple(p for p in self.pois if p.queue is not None)

    def pois_of_kind(self, *kinds: PoiKind) -> tuple[Poi, ...]:
        return tuple(p for p in self.pois if p.kind in kinds)

    def pois_with_tag(self, tag: str) -> tuple[Poi, ...]:
        return tuple(p for p in self.pois if tag in p.tags)

    def merchants(self) -> tuple[Poi, ...]:
        return tuple(p for p in self.pois if p.merchant is not None)

    def shows(self) -> tuple[Poi, ...]:
        return tuple(p for p in self.pois if p.show is not None)

    def hotels(self) -> tuple[Poi, ...]:
        return tuple(p for p in self.pois if p.hotel is not None)

    def access_points_of_kind(self, *kinds: AccessPointKind) -> tuple[AccessPoint, ...]:
        return tuple(a for a in self.access_points if a.kind in kinds)

    def access_points_for(self, attraction_id: str) -> tuple[AccessPoint, ...]:
        """Standby, merge, boarding and photo-kiosk scanners of one attraction."""
        return self._ap_by_attraction.get(attraction_id, ())

    def cameras_for(self, attraction_id: str) -> tuple[Camera, ...]:
        return self._cameras_by_attraction.get(attraction_id, ())

    def tills_for(self, merchant_id: str) -> tuple[Till, ...]:
        return self._tills_by_merchant.get(merchant_id, ())

    def readers_in(self, zone_id: str) -> tuple[Reader, ...]:
        return self._readers_by_zone.get(zone_id, ())

    def zone_children(self, zone_id: str) -> tuple[Zone, ...]:
        return self._children.get(zone_id, ())

    def zone_ancestors(self, zone_id: str) -> tuple[Zone, ...]:
        """Parent, grandparent ... of a zone: the zones whose occupancy it also counts in."""
        chain: list[Zone] = []
        parent = self.zone(zone_id).parent
        while parent is not None and parent != zone_id and all(z.id != parent for z in chain):
            zone = self.zone(parent)
            chain.append(zone)
            parent = zone.parent
        return tuple(chain)

    def floors(self) -> tuple[int, ...]:
        return tuple(sorted({n.floor for n in self.nodes}))

    def device_ids(self) -> tuple[str, ...]:
        """Every device the venue registers: readers, access points, tills, cameras."""
        return (
            *(r.id for r in self.readers),
            *(a.id for a in self.access_points),
            *(t.id for t in self.tills),
            *(c.id for c in self.cameras),
        )

    # --- the graph ------------------------------------------------------------

    def graph_edges(self, kinds: Collection[EdgeKind] = WALKING_EDGE_KINDS) -> tuple[Arc, ...]:
        """Directed arcs for a networkx DiGraph: two-way edges give one arc each way.

        By default only walking edges: routes never cut through a queue or a ride.
        Pass ACCESSIBLE_EDGE_KINDS for step-free routes, or every EdgeKind for the
        world, which also walks guests along lines and rides.
        """
        arcs: list[Arc] = []
        for edge in self.edges:
            if edge.kind not in kinds:
                continue
            arcs.append(Arc(edge.source, edge.target, edge))
            if not edge.one_way:
                arcs.append(Arc(edge.target, edge.source, edge))
        return tuple(arcs)

    def graph_nodes(self, kinds: Collection[EdgeKind] = WALKING_EDGE_KINDS) -> tuple[Node, ...]:
        """Nodes touched by edges of the given kinds, in file order."""
        used = {e.source for e in self.edges if e.kind in kinds}
        used |= {e.target for e in self.edges if e.kind in kinds}
        return tuple(n for n in self.nodes if n.id in used)

    def queue_line(self, attraction_id: str) -> tuple[str, ...]:
        """Node ids of the standby line, from the standby entrance to the boarding point."""
        queue = self.queue_of(attraction_id)
        start = self.access_point(queue.standby_access_point).node
        end = self.access_point(queue.boarding_access_point).node
        return self._follow(start, end, EdgeKind.QUEUE)

    def return_line(self, attraction_id: str) -> tuple[str, ...]:
        """Node ids from the return-time merge point to boarding; empty without a merge."""
        queue = self.queue_of(attraction_id)
        if queue.return_merge_access_point is None:
            return ()
        start = self.access_point(queue.return_merge_access_point).node
        end = self.access_point(queue.boarding_access_point).node
        return self._follow(start, end, EdgeKind.QUEUE)

    def ride_path(self, attraction_id: str) -> tuple[str, ...]:
        """Node ids of the ride, from the boarding point to the exit node."""
        queue = self.queue_of(attraction_id)
        start = self.access_point(queue.boarding_access_point).node
        return self._follow(start, queue.exit_node, EdgeKind.RIDE)

    def _follow(self, start: str, end: str, kind: EdgeKind) -> tuple[str, ...]:
        # Lines and rides are chains (validated on load): at most one way on.
        step = {e.source: e.target for e in self.edges if e.kind is kind}
        path = [start]
        while path[-1] != end:
            nxt = step.get(path[-1])
            if nxt is None or nxt in path:
                raise ValueError(f"no {kind} path from {start!r} to {end!r}")
            path.append(nxt)
        return tuple(path)
