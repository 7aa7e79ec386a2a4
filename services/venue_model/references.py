"""First semantic pass: ids are unique and every reference names the right kind of thing.

Later checks follow references freely, so they only run once this pass is clean.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from services.venue_model.errors import FieldPath, Problem, format_path
from services.venue_model.model import (
    AccessPoint,
    AccessPointKind,
    CameraKind,
    Poi,
    ZoneKind,
)
from services.venue_model.venue import Venue


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def _unique(
    name: str, items: Iterable[_HasId], seen: dict[str, FieldPath] | None = None
) -> list[Problem]:
    seen = {} if seen is None else seen
    problems = []
    for index, item in enumerate(items):
        path: FieldPath = (name, index, "id")
        first = seen.setdefault(item.id, path)
        if first != path:
            problems.append(
                Problem(path, f"duplicate id {item.id!r} (first used at {format_path(first)})")
            )
    return problems


def _unique_values(paths_values: Iterable[tuple[FieldPath, object]], what: str) -> list[Problem]:
    seen: dict[object, FieldPath] = {}
    problems = []
    for path, value in paths_values:
        first = seen.setdefault(value, path)
        if first != path:
            problems.append(
                Problem(path, f"duplicate {what} {value!r} (first at {format_path(first)})")
            )
    return problems


def uniqueness_problems(v: Venue) -> list[Problem]:
    problems = _unique("zones", v.zones)
    problems += _unique("nodes", v.nodes)
    problems += _unique("edges", v.edges)
    problems += _unique("pois", v.pois)
    # Devices share one id space: identity issues a credential per device id.
    devices: dict[str, FieldPath] = {}
    problems += _unique("readers", v.readers, devices)
    problems += _unique("access_points", v.access_points, devices)
    problems += _unique("tills", v.tills, devices)
    problems += _unique("cameras", v.cameras, devices)
    rooms: dict[str, FieldPath] = {}
    for i, poi in enumerate(v.pois):
        if poi.hotel is not None:
            for j, room in enumerate(poi.hotel.rooms):
                path: FieldPath = ("pois", i, "hotel", "rooms", j, "id")
                first = rooms.setdefault(room.id, path)
                if first != path:
                    problems.append(Problem(path, f"duplicate room id {room.id!r}"))
        if poi.merchant is not None:
            problems += _unique_values(
                (
                    (("pois", i, "merchant", "price_list", j, "sku"), item.sku)
                    for j, item in enumerate(poi.merchant.price_list)
                ),
                "sku",
            )
    d = v.demand
    problems += _unique_values(
        (
            (("demand", "arrivals_by_hour", i, "hour"), h.hour)
            for i, h in enumerate(d.arrivals_by_hour)
        ),
        "hour",
    )
    problems += _unique_values(
        (
            (("demand", "departures_by_hour", i, "hour"), h.hour)
            for i, h in enumerate(d.departures_by_hour)
        ),
        "hour",
    )
    problems += _unique_values(
        ((("demand", "party_sizes", i, "size"), p.size) for i, p in enumerate(d.party_sizes)),
        "party size",
    )
    problems += _unique_values(
        ((("demand", "archetypes", i, "id"), a.id) for i, a in enumerate(d.archetypes)), "archetype"
    )
    problems += _unique_values(
        (
            (("demand", "popularity", i, "attraction"), p.attraction)
            for i, p in enumerate(d.popularity)
        ),
        "attraction",
    )
    problems += _unique_values(
        ((("demand", "spend", i, "category"), s.category) for i, s in enumerate(d.spend)),
        "category",
    )
    return problems


class _Refs:
    """Collects reference problems against the venue's id tables."""

    def __init__(self, v: Venue) -> None:
        self.zones = {z.id: z for z in v.zones}
        self.nodes = {n.id: n for n in v.nodes}
        self.pois = {p.id: p for p in v.pois}
        self.aps = {a.id: a for a in v.access_points}
        self.problems: list[Problem] = []

    def _known(self, path: FieldPath, value: str, table: Mapping[str, object], what: str) -> bool:
        if value in table:
            return True
        self.problems.append(Problem(path, f"unknown {what} {value!r} (no {what} has this id)"))
        return False

    def zone(self, path: FieldPath, value: str, kind: ZoneKind | None = None) -> None:
        if self._known(path, value, self.zones, "zone") and kind is not None:
            actual = self.zones[value].kind
            if actual is not kind:
                self.problems.append(
                    Problem(path, f"zone {value!r} is a {actual} zone, not a {kind} zone")
                )

    def node(self, path: FieldPath, value: str) -> None:
        self._known(path, value, self.nodes, "node")

    def attraction(self, path: FieldPath, value: str) -> None:
        if self._known(path, value, self.pois, "point of interest") and (
            self.pois[value].queue is None
        ):
            self.problems.append(
                Problem(path, f"{value!r} is not an attraction (it has no queue block)")
            )

    def merchant(self, path: FieldPath, value: str) -> None:
        if self._known(path, value, self.pois, "point of interest") and (
            self.pois[value].merchant is None
        ):
            self.problems.append(
                Problem(path, f"{value!r} is not a merchant (it has no merchant block)")
            )

    def access_point(
        self, path: FieldPath, value: str, kind: AccessPointKind, attraction: str | None = None
    ) -> AccessPoint | None:
        if not self._known(path, value, self.aps, "access point"):
            return None
        ap = self.aps[value]
        if ap.kind is not kind:
            self.problems.append(Problem(path, f"access point {value!r} is {ap.kind}, not {kind}"))
        elif attraction is not None and ap.attraction != attraction:
            self.problems.append(
                Problem(
                    path,
                    f"access point {value!r} belongs to attraction {ap.attraction!r}, "
                    f"not {attraction!r}",
                )
            )
        return ap


def reference_problems(v: Venue) -> list[Problem]:
    refs = _Refs(v)
    for i, zone in enumerate(v.zones):
        if zone.parent is not None:
            refs.zone(("zones", i, "parent"), zone.parent)
    for i, node in enumerate(v.nodes):
        refs.zone(("nodes", i, "zone"), node.zone)
    for i, edge in enumerate(v.edges):
        refs.node(("edges", i, "from"), edge.source)
        refs.node(("edges", i, "to"), edge.target)
        if edge.source == edge.target:
            refs.problems.append(
                Problem(("edges", i, "to"), "an edge must join two different nodes")
            )
    for i, poi in enumerate(v.pois):
        _poi_references(refs, i, poi)
    _device_references(refs, v)
    for i, pop in enumerate(v.demand.popularity):
        refs.attraction(("demand", "popularity", i, "attraction"), pop.attraction)
    return refs.problems


def _device_references(refs: _Refs, v: Venue) -> None:
    for i, reader in enumerate(v.readers):
        refs.node(("readers", i, "node"), reader.node)
        refs.zone(("readers", i, "zone"), reader.zone)
    for i, ap in enumerate(v.access_points):
        refs.node(("access_points", i, "node"), ap.node)
        refs.zone(("access_points", i, "zone"), ap.zone)
        if ap.attraction is not None:
            refs.attraction(("access_points", i, "attraction"), ap.attraction)
    for i, till in enumerate(v.tills):
        refs.merchant(("tills", i, "merchant"), till.merchant)
        refs.node(("tills", i, "node"), till.node)
        refs.zone(("tills", i, "zone"), till.zone)
    for i, camera in enumerate(v.cameras):
        refs.node(("cameras", i, "node"), camera.node)
        refs.zone(("cameras", i, "zone"), camera.zone)
        if camera.kind is CameraKind.RIDE and camera.attraction and camera.boarding_access_point:
            refs.attraction(("cameras", i, "attraction"), camera.attraction)
            refs.access_point(
                ("cameras", i, "boarding_access_point"),
                camera.boarding_access_point,
                AccessPointKind.RIDE_BOARDING,
                camera.attraction,
            )


def _poi_references(refs: _Refs, i: int, poi: Poi) -> None:
    refs.node(("pois", i, "node"), poi.node)
    refs.zone(("pois", i, "zone"), poi.zone)
    if poi.queue is not None:
        q = poi.queue
        at: FieldPath = ("pois", i, "queue")
        refs.zone((*at, "queue_zone"), q.queue_zone, ZoneKind.QUEUE)
        refs.node((*at, "exit_node"), q.exit_node)
        refs.access_point(
            (*at, "standby_access_point"),
            q.standby_access_point,
            AccessPointKind.RIDE_STANDBY,
            poi.id,
        )
        refs.access_point(
            (*at, "boarding_access_point"),
            q.boarding_access_point,
            AccessPointKind.RIDE_BOARDING,
            poi.id,
        )
        if q.return_merge_access_point is not None:
            refs.access_point(
                (*at, "return_merge_access_point"),
                q.return_merge_access_point,
                AccessPointKind.RIDE_RETURN_MERGE,
                poi.id,
            )
    if poi.hotel is not None:
        for j, room in enumerate(poi.hotel.rooms):
            refs.access_point(
                ("pois", i, "hotel", "rooms", j, "door_access_point"),
                room.door_access_point,
                AccessPointKind.HOTEL_DOOR,
            )
