"""The venue definition: the two real venues, the loader's API, and every kind of broken file."""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
import math
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from services.venue_model import (
    ACCESSIBLE_EDGE_KINDS,
    SCHEMA_PATH,
    AccessPointKind,
    CameraKind,
    EdgeKind,
    PoiKind,
    UnknownIdError,
    Venue,
    VenueFileError,
    VenueKind,
    ZoneKind,
    load_venue,
    uncovered_points,
)

ROOT = Path(__file__).resolve().parents[2]
VENUES = ROOT / "venues"
PARK = VENUES / "lantern-bay-park.yaml"
MALL = VENUES / "millbrook-galleria.yaml"

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def park() -> Venue:
    return load_venue(PARK)


@pytest.fixture(scope="module")
def mall() -> Venue:
    return load_venue(MALL)


def land_of(venue: Venue, zone_id: str) -> str | None:
    for zone in (venue.zone(zone_id), *venue.zone_ancestors(zone_id)):
        if zone.kind is ZoneKind.LAND:
            return zone.id
    return None


# --- the theme park -----------------------------------------------------------------------


def test_park_is_of_realistic_size(park: Venue) -> None:
    assert park.kind is VenueKind.THEME_PARK
    attractions = park.attractions()
    assert len(attractions) >= 25
    lands = {land_of(park, a.zone) for a in attractions}
    assert None not in lands
    assert len(lands) >= 5
    assert len(park.graph_nodes()) >= 300


def test_park_capacities_and_ride_lengths_come_from_the_copied_data(park: Venue) -> None:
    with (VENUES / "data" / "wdw_attractions.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r["code"]: r for r in csv.DictReader(fh)}
    for poi in park.attractions():
        queue = poi.queue
        assert queue is not None and queue.source is not None, poi.id
        row = rows[queue.source.code]
        assert queue.hourly_capacity == round(float(row["hourly_capacity_est"])), poi.id
        assert queue.ride_minutes == float(row["ride_minutes"]), poi.id


def test_park_has_the_places_a_day_needs(park: Venue) -> None:
    assert len(park.pois_of_kind(PoiKind.SHOP)) >= 5
    assert len(park.pois_of_kind(PoiKind.FOOD, PoiKind.DRINK)) >= 10
    assert park.pois_with_tag("cold_drink") and park.pois_with_tag("snack")
    assert len(park.pois_of_kind(PoiKind.RESTROOM)) >= 5
    shows = park.shows()
    assert len(shows) >= 3
    assert all(s.show is not None and s.show.performances for s in shows)
    assert park.pois_of_kind(PoiKind.ENTRANCE) and park.pois_of_kind(PoiKind.EXIT)
    assert len(park.access_points_of_kind(AccessPointKind.PARK_ENTRY)) >= 4
    assert len(park.access_points_of_kind(AccessPointKind.PARK_EXIT)) >= 2
    (hotel,) = park.hotels()
    assert hotel.hotel is not None and len(hotel.hotel.rooms) >= 8
    for room in hotel.hotel.rooms:
        assert park.access_point(room.door_access_point).kind is AccessPointKind.HOTEL_DOOR
    assert park.access_points_of_kind(AccessPointKind.STAFF_DOOR)
    assert any(c.kind is CameraKind.RIDE for c in park.cameras)
    assert any(c.kind is CameraKind.PHOTO_SPOT for c in park.cameras)


def test_merchants_have_tills_and_prices(park: Venue, mall: Venue) -> None:
    for venue in (park, mall):
        for merchant in venue.merchants():
            assert merchant.merchant is not None
            assert venue.tills_for(merchant.id), merchant.id
            assert all(item.price_minor > 0 for item in merchant.merchant.price_list)


def test_paths_are_cut_into_nodes_every_30_m_at_most(park: Venue, mall: Venue) -> None:
    for venue in (park, mall):
        walkways = [e for e in venue.edges if e.kind is EdgeKind.WALKWAY]
        assert max(e.length_m for e in walkways) <= 30.0


def test_every_walkway_and_queue_is_heard_by_a_reader(park: Venue, mall: Venue) -> None:
    for venue in (park, mall):
        assert uncovered_points(venue) == []
        for poi in venue.attractions():
            assert poi.queue is not None
            assert venue.readers_in(poi.queue.queue_zone), poi.id


def test_a_rides_entrance_merge_boarding_and_exit_are_distinct_nodes(park: Venue) -> None:
    for poi in park.attractions():
        q = poi.queue
        assert q is not None
        points = [park.access_point(q.standby_access_point).node, q.exit_node]
        points.append(park.access_point(q.boarding_access_point).node)
        if q.return_merge_access_point:
            points.append(park.access_point(q.return_merge_access_point).node)
        assert len(set(points)) == len(points), poi.id
        assert park.queue_line(poi.id)[0] == poi.node
        assert park.ride_path(poi.id)[-1] == q.exit_node
        if q.return_time or q.virtual_queue:
            assert park.return_line(poi.id)


# --- the mall -----------------------------------------------------------------------------


def test_mall_has_two_floors_joined_every_way(mall: Venue) -> None:
    assert mall.kind is VenueKind.MALL
    assert len(mall.floors()) >= 2
    kinds = {e.kind for e in mall.edges}
    assert {EdgeKind.ESCALATOR, EdgeKind.ELEVATOR, EdgeKind.STAIRS} <= kinds
    for edge in mall.edges:
        if edge.kind.vertical:
            assert mall.node(edge.source).floor != mall.node(edge.target).floor
    ups = [
        e
        for e in mall.edges
        if e.kind is EdgeKind.ESCALATOR and mall.node(e.target).floor > mall.node(e.source).floor
    ]
    downs = [e for e in mall.edges if e.kind is EdgeKind.ESCALATOR and e not in ups]
    assert ups and downs


def test_mall_lines_are_counters_and_popular_stores(mall: Venue) -> None:
    counters = [p for p in mall.attractions() if p.kind is PoiKind.FOOD]
    stores = [p for p in mall.attractions() if p.kind is PoiKind.SHOP]
    assert len(counters) >= 4 and len(stores) >= 2
    for counter in counters:
        assert counter.queue is not None and counter.queue.vehicle_capacity == 1
        assert counter.merchant is not None
        assert mall.zone(counter.zone).parent is not None
    assert any(mall.zone(z.id).kind is ZoneKind.FOOD_COURT for z in mall.zones)
    assert len(mall.pois_of_kind(PoiKind.SHOP)) >= 20
    assert mall.pois_of_kind(PoiKind.RESTROOM) and len(mall.pois_of_kind(PoiKind.ENTRANCE)) >= 2
    assert not mall.access_points_of_kind(AccessPointKind.PARK_ENTRY)  # open doors, no gates


def test_both_venues_have_demand_for_the_world(park: Venue, mall: Venue) -> None:
    for venue in (park, mall):
        d = venue.demand
        assert math.isclose(sum(h.weight for h in d.arrivals_by_hour), 1.0, abs_tol=0.01)
        assert {p.attraction for p in d.popularity} == {a.id for a in venue.attractions()}
        assert d.party_sizes and d.archetypes and d.spend
    # Real park days front-load arrivals: the first hours see more than the last.
    first, *_, last = park.demand.arrivals_by_hour
    assert first.weight > 2 * last.weight


# --- the API services use -------------------------------------------------------------------


def test_lookups_and_unknown_ids(park: Venue) -> None:
    poi = park.attractions()[0]
    assert park.poi(poi.id) is poi
    assert park.attraction(poi.id) is poi
    assert park.zone(poi.zone).kind is ZoneKind.RIDE
    with pytest.raises(UnknownIdError) as exc:
        park.node("n.nowhere")
    assert isinstance(exc.value, KeyError)
    assert "n.nowhere" in str(exc.value)
    shop = park.pois_of_kind(PoiKind.SHOP)[0]
    with pytest.raises(UnknownIdError):
        park.attraction(shop.id)
    assert park.has(poi.node) and not park.has("n.nowhere")
    reader = park.readers[0]
    assert park.device(reader.id) is reader
    assert park.device(park.tills[0].id) is park.tills[0]
    assert len(set(park.device_ids())) == len(park.device_ids())
    with pytest.raises(UnknownIdError):
        park.device(poi.id)


def test_access_points_and_cameras_by_attraction(park: Venue) -> None:
    for poi in park.attractions():
        kinds = {a.kind for a in park.access_points_for(poi.id)}
        assert {AccessPointKind.RIDE_STANDBY, AccessPointKind.RIDE_BOARDING} <= kinds
        for camera in park.cameras_for(poi.id):
            assert camera.node in park.ride_path(poi.id)


def test_graph_edges_for_a_digraph(park: Venue, mall: Venue) -> None:
    walking = park.graph_edges()
    two_way = sum(1 for e in park.edges if e.kind.walkable and not e.one_way)
    one_way = sum(1 for e in park.edges if e.kind.walkable and e.one_way)
    assert len(walking) == 2 * two_way + one_way
    assert all(a.edge.kind.walkable for a in walking)
    step_free = mall.graph_edges(ACCESSIBLE_EDGE_KINDS)
    assert not any(a.edge.kind in (EdgeKind.STAIRS, EdgeKind.ESCALATOR) for a in step_free)
    assert any(a.edge.kind is EdgeKind.ELEVATOR for a in step_free)
    everything = park.graph_edges(tuple(EdgeKind))
    assert any(a.edge.kind is EdgeKind.QUEUE for a in everything)


def test_zones_roll_up_and_time_is_local(park: Venue) -> None:
    queue_zone = next(z for z in park.zones if z.kind is ZoneKind.QUEUE)
    ride_zone, land = park.zone_ancestors(queue_zone.id)
    assert (ride_zone.kind, land.kind) == (ZoneKind.RIDE, ZoneKind.LAND)
    assert queue_zone in park.zone_children(ride_zone.id)
    # 14:30 UTC in July is 10:30 in New York.
    assert park.minute_of_day(datetime(2025, 7, 1, 14, 30, tzinfo=UTC)) == 630
    assert park.hours.is_open_at(630) and not park.hours.is_open_at(22 * 60)


def test_a_merchants_price_list(mall: Venue) -> None:
    counter = next(p for p in mall.attractions() if p.kind is PoiKind.FOOD)
    assert counter.merchant is not None
    first = counter.merchant.price_list[0]
    assert counter.merchant.item(first.sku) is first


# --- the published format -----------------------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_documents_every_field() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    undocumented: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                target = sub
                if "$ref" in sub and "description" not in sub:
                    target = schema["$defs"][sub["$ref"].rsplit("/", 1)[-1]]
                if "description" not in target:
                    undocumented.append(f"{where}.{name}")
            for key, sub in node.items():
                if key != "if":  # conditions restate fields defined elsewhere
                    walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(schema, "$")
    assert undocumented == []


def test_generated_venues_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_venues", ROOT / "tools" / "build_venues.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    assert module.main(["--check"]) == 0


def test_the_loader_knows_no_particular_venue() -> None:
    for source in (ROOT / "services" / "venue_model").glob("*.py"):
        text = source.read_text(encoding="utf-8").lower()
        assert not any(name in text for name in ("lantern", "millbrook", "galleria")), source


def test_nothing_reads_outside_the_repository() -> None:
    needle = "../" + "shared"
    for path in [
        *(ROOT / "services" / "venue_model").glob("*.py"),
        ROOT / "tools" / "build_venues.py",
    ]:
        assert needle not in path.read_text(encoding="utf-8"), path


# --- broken files -------------------------------------------------------------------------


def small_venue() -> Doc:
    """A tiny valid venue with one of everything, for breaking on purpose."""

    def node(nid: str, x: float, y: float, zone: str, floor: int = 0) -> Doc:
        return {"id": nid, "x": x, "y": y, "floor": floor, "zone": zone}

    def edge(eid: str, a: str, b: str, length: float, kind: str = "walkway", **kw: Any) -> Doc:
        return {"id": eid, "from": a, "to": b, "length_m": length, "kind": kind, **kw}

    return {
        "schema_version": 1,
        "venue": {
            "id": "tiny",
            "name": "Tiny Park",
            "kind": "theme_park",
            "timezone": "Europe/Paris",
            "currency": "EUR",
            "currency_exponent": 2,
            "hours": {"open": "09:00", "close": "21:00"},
            "rules": {
                "pin_threshold_minor": 5000,
                "return_window": {
                    "slot_minutes": 60,
                    "early_grace_minutes": 5,
                    "late_grace_minutes": 15,
                },
                "max_holdings_per_guest": 3,
                "return_time_capacity_share": 0.4,
                "ping_retention_hours": 24,
                "trail_retention_minutes": 60,
                "photo_retention_days": 30,
                "photo_dispatch_window_seconds": 8,
                "nudges": {"max_per_hour": 3, "min_gap_minutes": 15},
            },
        },
        "zones": [
            {"id": "land.a", "name": "Land A", "kind": "land", "capacity": 1000, "floor": 0},
            {
                "id": "ride.r",
                "name": "Ride",
                "kind": "ride",
                "capacity": 300,
                "floor": 0,
                "parent": "land.a",
            },
            {
                "id": "queue.r",
                "name": "Ride line",
                "kind": "queue",
                "capacity": 200,
                "floor": 0,
                "parent": "ride.r",
            },
            {
                "id": "shop.s",
                "name": "Shop",
                "kind": "shop",
                "capacity": 50,
                "floor": 0,
                "parent": "land.a",
            },
            {"id": "upper", "name": "Upper", "kind": "hotel", "capacity": 50, "floor": 1},
        ],
        "nodes": [
            node("n.a", 0, 0, "land.a"),
            node("n.b", 20, 0, "land.a"),
            node("n.c", 20, 20, "land.a"),
            node("n.c2", 25, 20, "land.a"),
            node("n.shop", 0, 10, "shop.s"),
            node("n.r.entrance", 40, 0, "queue.r"),
            node("n.r.merge", 40, 8, "queue.r"),
            node("n.r.q1", 50, 0, "queue.r"),
            node("n.r.boarding", 60, 0, "ride.r"),
            node("n.r.ride1", 70, 10, "ride.r"),
            node("n.r.exit", 40, -10, "ride.r"),
            node("n.up.lift", 20, 20, "upper", 1),
            node("n.up.stairs", 25, 20, "upper", 1),
        ],
        "edges": [
            edge("e1", "n.a", "n.b", 20),
            edge("e2", "n.b", "n.c", 20),
            edge("e3", "n.c", "n.a", 28.3),
            edge("e4", "n.a", "n.shop", 10),
            edge("e5", "n.b", "n.r.entrance", 20),
            edge("e6", "n.b", "n.r.merge", 21.6),
            edge("e7", "n.r.entrance", "n.r.q1", 10, "queue", one_way=True),
            edge("e8", "n.r.q1", "n.r.boarding", 10, "queue", one_way=True),
            edge("e9", "n.r.merge", "n.r.q1", 12.9, "queue", one_way=True),
            edge("e10", "n.r.boarding", "n.r.ride1", 15, "ride", one_way=True, traverse_seconds=60),
            edge("e11", "n.r.ride1", "n.r.exit", 40, "ride", one_way=True, traverse_seconds=60),
            edge("e12", "n.r.exit", "n.b", 22.4),
            edge("e13", "n.c", "n.up.lift", 4.5, "elevator", traverse_seconds=30),
            edge("e14", "n.c", "n.c2", 5),
            edge("e15", "n.c2", "n.up.stairs", 14, "stairs"),
            edge("e16", "n.up.lift", "n.up.stairs", 5),
        ],
        "pois": [
            {
                "id": "r",
                "name": "The Ride",
                "kind": "attraction",
                "node": "n.r.entrance",
                "zone": "ride.r",
                "tags": ["thrill"],
                "queue": {
                    "hourly_capacity": 1200,
                    "ride_minutes": 2.0,
                    "vehicle_capacity": 20,
                    "min_height_cm": 102,
                    "queue_zone": "queue.r",
                    "standby_access_point": "ap.r.standby",
                    "return_merge_access_point": "ap.r.merge",
                    "boarding_access_point": "ap.r.boarding",
                    "exit_node": "n.r.exit",
                    "return_time": True,
                    "virtual_queue": False,
                },
            },
            {
                "id": "s",
                "name": "The Shop",
                "kind": "shop",
                "node": "n.shop",
                "zone": "shop.s",
                "tags": ["cold_drink"],
                "hours": {"open": "10:00", "close": "18:00"},
                "merchant": {"price_list": [{"sku": "cola", "name": "Cola", "price_minor": 350}]},
            },
            {
                "id": "show",
                "name": "The Show",
                "kind": "show",
                "node": "n.c",
                "zone": "land.a",
                "show": {
                    "duration_minutes": 20,
                    "capacity": 100,
                    "performances": ["10:00", "12:00"],
                },
            },
            {
                "id": "h",
                "name": "The Hotel",
                "kind": "hotel",
                "node": "n.up.lift",
                "zone": "upper",
                "hours": {"open": "00:00", "close": "24:00"},
                "hotel": {
                    "rooms": [
                        {
                            "id": "room-1",
                            "number": "101",
                            "floor": 1,
                            "door_access_point": "ap.door.1",
                        }
                    ]
                },
            },
        ],
        "readers": [
            {"id": "rd.a", "node": "n.a", "zone": "land.a", "range_m": 30},
            {"id": "rd.q", "node": "n.r.q1", "zone": "queue.r", "range_m": 12},
        ],
        "access_points": [
            {
                "id": "ap.r.standby",
                "kind": "ride_standby",
                "node": "n.r.entrance",
                "zone": "queue.r",
                "attraction": "r",
            },
            {
                "id": "ap.r.merge",
                "kind": "ride_return_merge",
                "node": "n.r.merge",
                "zone": "queue.r",
                "attraction": "r",
            },
            {
                "id": "ap.r.boarding",
                "kind": "ride_boarding",
                "node": "n.r.boarding",
                "zone": "ride.r",
                "attraction": "r",
            },
            {"id": "ap.gate", "kind": "park_entry", "node": "n.a", "zone": "land.a"},
            {"id": "ap.door.1", "kind": "hotel_door", "node": "n.up.stairs", "zone": "upper"},
        ],
        "tills": [{"id": "till.s", "merchant": "s", "node": "n.shop", "zone": "shop.s"}],
        "cameras": [
            {
                "id": "cam.r",
                "kind": "ride",
                "node": "n.r.ride1",
                "zone": "ride.r",
                "attraction": "r",
                "boarding_access_point": "ap.r.boarding",
                "delay_seconds": 30,
                "jitter_seconds": 2,
            },
            {"id": "cam.spot", "kind": "photo_spot", "node": "n.c", "zone": "land.a"},
        ],
        "demand": {
            "typical_daily_guests": 500,
            "arrivals_by_hour": [{"hour": 9, "weight": 2}, {"hour": 10, "weight": 1}],
            "departures_by_hour": [{"hour": 20, "weight": 1}],
            "party_sizes": [{"size": 2, "weight": 1}],
            "archetypes": [
                {
                    "id": "fan",
                    "weight": 1,
                    "description": "Rides.",
                    "stay_minutes": 300,
                    "attraction_preference": 0.8,
                    "max_wait_minutes": 60,
                },
            ],
            "popularity": [{"attraction": "r", "weight": 1}],
            "spend": [{"category": "food", "mean_minor_per_guest": 1500}],
        },
    }


def at(doc: Doc, section: str, ident: str) -> int:
    return next(i for i, item in enumerate(doc[section]) if item["id"] == ident)


def write(tmp_path: Path, doc: Doc | str, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_small_venue_is_valid(tmp_path: Path) -> None:
    venue = load_venue(write(tmp_path, small_venue(), "tiny.yaml"))
    assert venue.attraction("r").queue is not None
    assert venue.queue_line("r") == ("n.r.entrance", "n.r.q1", "n.r.boarding")
    assert venue.return_line("r") == ("n.r.merge", "n.r.q1", "n.r.boarding")
    assert venue.ride_path("r") == ("n.r.boarding", "n.r.ride1", "n.r.exit")
    assert venue.poi("show").hours == venue.hours  # default: the venue's hours
    assert venue.room("room-1").door_access_point == "ap.door.1"


Breaker = Callable[[Doc], tuple[str, str]]
CASES: dict[str, Breaker] = {}


def case(name: str) -> Callable[[Breaker], Breaker]:
    def register(fn: Breaker) -> Breaker:
        CASES[name] = fn
        return fn

    return register


# Structure (JSON Schema).


@case("missing field")
def _(d: Doc) -> tuple[str, str]:
    del d["edges"][1]["to"]
    return "edges[1].to", "is required"


@case("wrong type")
def _(d: Doc) -> tuple[str, str]:
    d["nodes"][2]["x"] = "east"
    return "nodes[2].x", "is not of type 'number'"


@case("misspelt field")
def _(d: Doc) -> tuple[str, str]:
    d["edges"][0]["lenght_m"] = d["edges"][0].pop("length_m")
    return "edges[0].lenght_m", "not a field of this format"


@case("unknown kind")
def _(d: Doc) -> tuple[str, str]:
    d["edges"][3]["kind"] = "teleporter"
    return "edges[3].kind", "is not one of"


@case("zero capacity")
def _(d: Doc) -> tuple[str, str]:
    d["zones"][0]["capacity"] = 0
    return "zones[0].capacity", "less than the minimum"


@case("unquoted time")
def _(d: Doc) -> tuple[str, str]:
    d["venue"]["hours"]["close"] = 21 * 60  # what YAML makes of an unquoted 21:00
    return "venue.hours.close", "write times in quotes"


@case("impossible time")
def _(d: Doc) -> tuple[str, str]:
    d["venue"]["hours"]["close"] = "25:00"
    return "venue.hours.close", "is not a valid local time"


@case("two-way escalator")
def _(d: Doc) -> tuple[str, str]:
    d["edges"][14]["kind"] = "escalator"
    d["edges"][14]["traverse_seconds"] = 30
    return "edges[14].one_way", "is required (Escalators, queues and rides run one way"


@case("escalator marked two-way")
def _(d: Doc) -> tuple[str, str]:
    d["edges"][14].update(kind="escalator", traverse_seconds=30, one_way=False)
    return "edges[14].one_way", "True was expected (Escalators, queues and rides run one way"


@case("attraction without a line")
def _(d: Doc) -> tuple[str, str]:
    del d["pois"][0]["queue"]
    return "pois[0].queue", "is required"


@case("photo spot naming a ride")
def _(d: Doc) -> tuple[str, str]:
    d["cameras"][1]["attraction"] = "r"
    return "cameras[1].attraction", "only ride cameras belong to an attraction"


@case("wrong schema version")
def _(d: Doc) -> tuple[str, str]:
    d["schema_version"] = 2
    return "schema_version", "1 was expected"


# Dangling references, one of each kind.


@case("edge to an unknown node")
def _(d: Doc) -> tuple[str, str]:
    d["edges"][2]["to"] = "n.nowhere"
    return "edges[2].to", "unknown node 'n.nowhere'"


@case("node in an unknown zone")
def _(d: Doc) -> tuple[str, str]:
    d["nodes"][1]["zone"] = "land.nowhere"
    return "nodes[1].zone", "unknown zone 'land.nowhere'"


@case("zone with an unknown parent")
def _(d: Doc) -> tuple[str, str]:
    d["zones"][3]["parent"] = "land.nowhere"
    return "zones[3].parent", "unknown zone"


@case("poi at an unknown node")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][1]["node"] = "n.nowhere"
    return "pois[1].node", "unknown node"


@case("poi in an unknown zone")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][1]["zone"] = "shop.nowhere"
    return "pois[1].zone", "unknown zone"


@case("line in a zone that is not a queue")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][0]["queue"]["queue_zone"] = "land.a"
    return "pois[0].queue.queue_zone", "is a land zone, not a queue zone"


@case("unknown standby access point")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][0]["queue"]["standby_access_point"] = "ap.nowhere"
    return "pois[0].queue.standby_access_point", "unknown access point"


@case("boarding at a standby scanner")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][0]["queue"]["boarding_access_point"] = "ap.r.standby"
    return "pois[0].queue.boarding_access_point", "is ride_standby, not ride_boarding"


@case("unknown exit node")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][0]["queue"]["exit_node"] = "n.nowhere"
    return "pois[0].queue.exit_node", "unknown node"


@case("reader at an unknown node")
def _(d: Doc) -> tuple[str, str]:
    d["readers"][0]["node"] = "n.nowhere"
    return "readers[0].node", "unknown node"


@case("access point of an unknown attraction")
def _(d: Doc) -> tuple[str, str]:
    d["access_points"][0]["attraction"] = "nowhere"
    return "access_points[0].attraction", "unknown point of interest 'nowhere'"


@case("access point of a shop")
def _(d: Doc) -> tuple[str, str]:
    d["access_points"][2]["attraction"] = "s"
    return "access_points[2].attraction", "is not an attraction"


@case("till of an unknown merchant")
def _(d: Doc) -> tuple[str, str]:
    d["tills"][0]["merchant"] = "nowhere"
    return "tills[0].merchant", "unknown point of interest"


@case("till of something that sells nothing")
def _(d: Doc) -> tuple[str, str]:
    d["tills"][0]["merchant"] = "r"
    return "tills[0].merchant", "is not a merchant"


@case("camera of an unknown attraction")
def _(d: Doc) -> tuple[str, str]:
    d["cameras"][0]["attraction"] = "nowhere"
    return "cameras[0].attraction", "unknown point of interest"


@case("camera timed from an unknown boarding point")
def _(d: Doc) -> tuple[str, str]:
    d["cameras"][0]["boarding_access_point"] = "ap.nowhere"
    return "cameras[0].boarding_access_point", "unknown access point"


@case("room with an unknown door")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][3]["hotel"]["rooms"][0]["door_access_point"] = "ap.nowhere"
    return "pois[3].hotel.rooms[0].door_access_point", "unknown access point"


@case("popularity of an unknown attraction")
def _(d: Doc) -> tuple[str, str]:
    d["demand"]["popularity"][0]["attraction"] = "nowhere"
    return "demand.popularity[0].attraction", "unknown point of interest"


# Duplicates.


@case("duplicate node id")
def _(d: Doc) -> tuple[str, str]:
    d["nodes"][3]["id"] = "n.b"
    return "nodes[3].id", "duplicate id 'n.b' (first used at nodes[1].id)"


@case("device ids shared across kinds")
def _(d: Doc) -> tuple[str, str]:
    d["cameras"][1]["id"] = "rd.a"
    return "cameras[1].id", "duplicate id 'rd.a' (first used at readers[0].id)"


@case("duplicate sku")
def _(d: Doc) -> tuple[str, str]:
    items = d["pois"][1]["merchant"]["price_list"]
    items.append({**items[0], "name": "Cola again"})
    return "pois[1].merchant.price_list[1].sku", "duplicate sku 'cola'"


@case("two edges over one pair of nodes")
def _(d: Doc) -> tuple[str, str]:
    d["edges"].append({"id": "e99", "from": "n.b", "to": "n.a", "length_m": 25, "kind": "walkway"})
    return "edges[16]", "two edges may not join the same nodes in the same direction"


# Geometry and the graph.


@case("edge shorter than the straight line")
def _(d: Doc) -> tuple[str, str]:
    d["edges"][2]["length_m"] = 12
    return "edges[2].length_m", "12 m is shorter than the straight line from 'n.c' to 'n.a'"


@case("node cut off from the rest")
def _(d: Doc) -> tuple[str, str]:
    d["nodes"] += [
        {"id": "n.island1", "x": 200, "y": 0, "floor": 0, "zone": "land.a"},
        {"id": "n.island2", "x": 220, "y": 0, "floor": 0, "zone": "land.a"},
    ]
    d["edges"].append(
        {"id": "e99", "from": "n.island1", "to": "n.island2", "length_m": 20, "kind": "walkway"}
    )
    return "nodes[13]", "cannot be reached from 'n.a' by walking (nor can 1 other nodes)"


@case("one-way trap")
def _(d: Doc) -> tuple[str, str]:
    d["edges"][3]["one_way"] = True  # into the shop, never out
    return "nodes[4]", "'n.shop' cannot get back to 'n.a' by walking"


@case("upper floor reachable only by stairs")
def _(d: Doc) -> tuple[str, str]:
    del d["edges"][12]  # the lift
    return "nodes[11]", "cannot be reached from 'n.a' without stairs or escalators (nor can 1"


@case("stairs on one floor")
def _(d: Doc) -> tuple[str, str]:
    d["edges"][13]["kind"] = "stairs"
    return "edges[13].kind", "stairs must join two different floors"


@case("walkway between floors")
def _(d: Doc) -> tuple[str, str]:
    d["edges"][15]["to"] = "n.c2"
    return "edges[15].kind", "a walkway edge stays on one floor"


@case("node not on its zone's floor")
def _(d: Doc) -> tuple[str, str]:
    d["nodes"][11]["zone"] = "land.a"
    return "nodes[11].floor", "differs from floor 0 of its zone 'land.a'"


@case("zone parents in a cycle")
def _(d: Doc) -> tuple[str, str]:
    d["zones"][0]["parent"] = "queue.r"
    return "zones[0].parent", "zone parents form a cycle: land.a > queue.r > ride.r > land.a"


@case("reader reporting another zone")
def _(d: Doc) -> tuple[str, str]:
    d["readers"][0]["zone"] = "shop.s"
    return "readers[0].zone", "is not the zone of its node 'n.a'"


@case("queue without a reader")
def _(d: Doc) -> tuple[str, str]:
    d["readers"][1]["node"] = "n.b"
    d["readers"][1]["zone"] = "land.a"
    return "zones[2]", "has no reader of its own"


# Attractions.


@case("line that never reaches boarding")
def _(d: Doc) -> tuple[str, str]:
    del d["edges"][7]
    return "pois[0].queue.standby_access_point", "no single chain of queue edges"


@case("return times without a merge point")
def _(d: Doc) -> tuple[str, str]:
    del d["pois"][0]["queue"]["return_merge_access_point"]
    d["access_points"][1]["kind"] = "staff_door"
    del d["access_points"][1]["attraction"]
    return "pois[0].queue.return_merge_access_point", "is required when return_time"


@case("ride edges disagree with the ride length")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][0]["queue"]["ride_minutes"] = 5
    return "pois[0].queue.ride_minutes", "the ride edges from boarding to exit take 120 s"


@case("camera firing after the ride ends")
def _(d: Doc) -> tuple[str, str]:
    d["cameras"][0]["delay_seconds"] = 500
    return "cameras[0].delay_seconds", "longer than the ride"


@case("merchant without a till")
def _(d: Doc) -> tuple[str, str]:
    d["tills"] = []
    return "pois[1].merchant", "has no till"


# Hours.


@case("venue closing before it opens")
def _(d: Doc) -> tuple[str, str]:
    d["venue"]["hours"] = {"open": "21:00", "close": "09:00"}
    return "venue.hours.close", "must be later than opening time 21:00"


@case("shop open after the venue closes")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][1]["hours"]["close"] = "23:00"
    return "pois[1].hours", "lies outside the venue's hours 09:00-21:00"


@case("overlapping performances")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][2]["show"]["performances"] = ["10:00", "10:10"]
    return "pois[2].show.performances[1]", "before the previous performance ends"


@case("performance past closing")
def _(d: Doc) -> tuple[str, str]:
    d["pois"][2]["show"]["performances"] = ["20:50"]
    return "pois[2].show.performances[0]", "is not within the show's hours"


@case("arrivals while closed")
def _(d: Doc) -> tuple[str, str]:
    d["demand"]["arrivals_by_hour"][0]["hour"] = 3
    return "demand.arrivals_by_hour[0].hour", "outside the venue's hours"


@case("unknown time zone")
def _(d: Doc) -> tuple[str, str]:
    d["venue"]["timezone"] = "Mars/Olympus_Mons"
    return "venue.timezone", "unknown IANA time zone"


@pytest.mark.parametrize("name", list(CASES))
def test_a_broken_file_names_the_file_the_field_and_the_reason(tmp_path: Path, name: str) -> None:
    doc = small_venue()
    field, reason = CASES[name](doc)
    path = write(tmp_path, doc)
    with pytest.raises(VenueFileError) as exc:
        load_venue(path)
    message = str(exc.value)
    assert str(path) in message
    assert f"{field}" in message and reason in message, message
    assert any(p.field == field and reason in p.reason for p in exc.value.problems), message


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "venue:\n  id: x\n  name: [unclosed\nzones: []\n")
    with pytest.raises(VenueFileError) as exc:
        load_venue(path)
    assert str(path) in str(exc.value)
    assert exc.value.field == "<document>"
    assert "not valid YAML" in exc.value.reason
    assert exc.value.problems[0].line is not None


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = yaml.safe_dump(small_venue(), sort_keys=False).replace(
        "  name: Tiny Park\n", "  name: Tiny Park\n  name: Other Park\n", 1
    )
    with pytest.raises(VenueFileError) as exc:
        load_venue(write(tmp_path, text))
    assert exc.value.field == "venue.name"
    assert "duplicate key" in exc.value.reason


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(VenueFileError, match="the file is empty"):
        load_venue(write(tmp_path, ""))
    with pytest.raises(VenueFileError, match="cannot read the file"):
        load_venue(tmp_path / "absent.yaml")


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    doc = small_venue()
    doc["edges"][2]["to"] = "n.nowhere"
    doc["readers"][0]["node"] = "n.elsewhere"
    with pytest.raises(VenueFileError) as exc:
        load_venue(write(tmp_path, doc))
    fields = [p.field for p in exc.value.problems]
    assert fields == ["edges[2].to", "readers[0].node"]
    assert all(p.line is not None for p in exc.value.problems)
    assert f"(line {exc.value.problems[0].line})" in str(exc.value)


def test_a_broken_reference_in_the_big_park_is_pinpointed(tmp_path: Path) -> None:
    doc = yaml.load(
        PARK.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )
    doc["edges"][17]["to"] = "n.nowhere"
    path = write(tmp_path, copy.deepcopy(doc), "park.yaml")
    with pytest.raises(VenueFileError) as exc:
        load_venue(path)
    assert exc.value.field == "edges[17].to"
    assert "unknown node 'n.nowhere'" in str(exc.value)
