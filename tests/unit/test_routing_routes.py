"""Routes: hand-checked answers on a tiny venue, and properties on the park's graph
checked against networkx's own Dijkstra."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.routing.crowding import MAX_FACTOR, CrowdBoard, slowdown
from services.routing.messages import RouteEncoder, route_pb
from services.routing.routes import NotRoutable, Router, Walking
from services.venue_model import EdgeKind, UnknownIdError, Venue, load_venue
from venue.routing.v1 import routing_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
PARK = ROOT / "venues" / "lantern-bay-park.yaml"
MALL = ROOT / "venues" / "millbrook-galleria.yaml"


# A venue small enough to check routes by hand, written the way venue files are.
#
#     A(0,0) --100-- B(100,0) --100-- C(200,0)        floor 0
#       \             ^ (one way D->B, 100)  /
#        150          |                   160
#          \--------- D(100,100) --------/
#
#     B --stairs 10 m-- U1(100,0,f1) --140-- U2(200,0,f1) --10-- U3(210,0,f1)
#     C --elevator 60 s (two way)-- U2;   U3 --escalator 5 s (down, one way)--> C
#
# B sits alone in the zone "junction", so crowding it forces a detour through D.
# Drinks: K1 at C (12:00-18:00), K2 at U2 (all day); a restroom at D.
TINY_VENUE = """
schema_version: 1
venue:
  id: tiny-crossroads
  name: Tiny Crossroads
  kind: theme_park
  timezone: America/New_York
  currency: USD
  currency_exponent: 2
  hours: {open: "09:00", close: "21:00"}
  rules:
    pin_threshold_minor: 5000
    return_window: {slot_minutes: 60, early_grace_minutes: 5, late_grace_minutes: 15}
    max_holdings_per_guest: 3
    return_time_capacity_share: 0.4
    ping_retention_hours: 24
    trail_retention_minutes: 60
    photo_retention_days: 30
    photo_dispatch_window_seconds: 8
    nudges: {max_per_hour: 3, min_gap_minutes: 15}
zones:
  - {id: land.west, name: West, kind: land, capacity: 100, floor: 0}
  - {id: junction, name: Junction, kind: plaza, capacity: 100, floor: 0}
  - {id: land.east, name: East, kind: land, capacity: 100, floor: 0}
  - {id: plaza, name: Plaza, kind: plaza, capacity: 100, floor: 0}
  - {id: upper, name: Upper deck, kind: floor, capacity: 50, floor: 1}
nodes:
  - {id: n.a, x: 0, y: 0, floor: 0, zone: land.west}
  - {id: n.b, x: 100, y: 0, floor: 0, zone: junction}
  - {id: n.c, x: 200, y: 0, floor: 0, zone: land.east}
  - {id: n.d, x: 100, y: 100, floor: 0, zone: plaza}
  - {id: n.u1, x: 100, y: 0, floor: 1, zone: upper}
  - {id: n.u2, x: 200, y: 0, floor: 1, zone: upper}
  - {id: n.u3, x: 210, y: 0, floor: 1, zone: upper}
edges:
  - {id: ab, from: n.a, to: n.b, length_m: 100, kind: walkway}
  - {id: bc, from: n.b, to: n.c, length_m: 100, kind: walkway}
  - {id: ad, from: n.a, to: n.d, length_m: 150, kind: walkway}
  - {id: dc, from: n.d, to: n.c, length_m: 160, kind: walkway}
  - {id: db, from: n.d, to: n.b, length_m: 100, kind: walkway, one_way: true}
  - {id: b-u1, from: n.b, to: n.u1, length_m: 10, kind: stairs}
  - {id: u1u2, from: n.u1, to: n.u2, length_m: 140, kind: walkway}
  - {id: u2u3, from: n.u2, to: n.u3, length_m: 10, kind: walkway}
  - {id: lift, from: n.c, to: n.u2, length_m: 6, kind: elevator, traverse_seconds: 60}
  - {id: esc, from: n.u3, to: n.c, length_m: 15, kind: escalator, one_way: true,
     traverse_seconds: 5}
pois:
  - {id: k1, name: East Drinks, kind: drink, node: n.c, zone: land.east, tags: [cold_drink],
     hours: {open: "12:00", close: "18:00"},
     merchant: {price_list: [{sku: cola, name: Cola, price_minor: 350}]}}
  - {id: k2, name: Deck Drinks, kind: drink, node: n.u2, zone: upper, tags: [cold_drink],
     merchant: {price_list: [{sku: cola, name: Cola, price_minor: 350}]}}
  - {id: wc, name: Plaza Restrooms, kind: restroom, node: n.d, zone: plaza}
readers:
  - {id: rd.a, node: n.a, zone: land.west, range_m: 150}
  - {id: rd.c, node: n.c, zone: land.east, range_m: 150}
  - {id: rd.d, node: n.d, zone: plaza, range_m: 150}
  - {id: rd.u, node: n.u2, zone: upper, range_m: 150}
access_points: []
tills:
  - {id: till.k1, merchant: k1, node: n.c, zone: land.east}
  - {id: till.k2, merchant: k2, node: n.u2, zone: upper}
cameras: []
demand:
  typical_daily_guests: 100
  arrivals_by_hour: [{hour: 9, weight: 1}]
  departures_by_hour: [{hour: 20, weight: 1}]
  party_sizes: [{size: 2, weight: 1}]
  archetypes:
    - {id: fan, weight: 1, description: Walks., stay_minutes: 300,
       attraction_preference: 0.5, max_wait_minutes: 30}
  popularity: []
  spend: [{category: drink, mean_minor_per_guest: 300}]
"""


def write_tiny_venue(folder: Path) -> Path:
    path = folder / "tiny-crossroads.yaml"
    path.write_text(TINY_VENUE)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Venue:
    return load_venue(write_tiny_venue(tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def tiny_router(tiny: Venue) -> Router:
    return Router(tiny, CrowdBoard(tiny), default_speed_mps=1.0)


@pytest.fixture(scope="module")
def park() -> Venue:
    return load_venue(PARK)


@pytest.fixture(scope="module")
def park_router(park: Venue) -> Router:
    return Router(park, CrowdBoard(park))


# --- hand-checked on the tiny venue --------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "destination", "walking", "nodes", "seconds", "metres"),
    [
        # Straight along the bottom, not round by the plaza (300 s).
        ("n.a", "n.c", Walking(1.0), ["n.a", "n.b", "n.c"], 200.0, 200.0),
        # Up the stairs (250 s) beats the lift (200 s walk + 60 s ride).
        ("n.a", "n.u2", Walking(1.0), ["n.a", "n.b", "n.u1", "n.u2"], 250.0, 250.0),
        # At half the speed walking costs double but the lift does not: 460 s < 500 s.
        ("n.a", "n.u2", Walking(0.5), ["n.a", "n.b", "n.c", "n.u2"], 460.0, 206.0),
        # Step-free: the lift whatever it costs.
        ("n.a", "n.u2", Walking(1.0, True), ["n.a", "n.b", "n.c", "n.u2"], 260.0, 206.0),
        # Down by the one-way escalator (10 + 5 + 200).
        ("n.u2", "n.a", Walking(1.0), ["n.u2", "n.u3", "n.c", "n.b", "n.a"], 215.0, 225.0),
        ("n.u2", "n.a", Walking(1.0, True), ["n.u2", "n.c", "n.b", "n.a"], 260.0, 206.0),
        # D -> B is one way: back from B goes round by A.
        ("n.d", "n.b", Walking(1.0), ["n.d", "n.b"], 100.0, 100.0),
        ("n.b", "n.d", Walking(1.0), ["n.b", "n.a", "n.d"], 250.0, 250.0),
        ("n.a", "n.a", Walking(1.0), ["n.a"], 0.0, 0.0),
    ],
)
def test_routes_on_the_tiny_venue(
    tiny_router: Router,
    origin: str,
    destination: str,
    walking: Walking,
    nodes: list[str],
    seconds: float,
    metres: float,
) -> None:
    route = tiny_router.route(origin, destination, walking, crowded=False)
    assert route is not None
    assert list(route.node_ids) == nodes
    assert route.seconds == pytest.approx(seconds)
    assert route.distance_m == pytest.approx(metres)
    assert route.crowd_delay_seconds == 0.0
    assert [s.source for s in route.steps] == nodes[:-1]
    assert [s.target for s in route.steps] == nodes[1:]


def test_step_free_routes_take_the_lift_and_report_floors(tiny_router: Router) -> None:
    route = tiny_router.route("n.a", "n.u2", Walking(1.0, step_free=True), crowded=False)
    assert route is not None
    assert [s.kind for s in route.steps] == [EdgeKind.WALKWAY, EdgeKind.WALKWAY, EdgeKind.ELEVATOR]
    assert [s.floor for s in route.steps] == [0, 0, 1]
    assert route.steps[-1].seconds == 60.0


def test_crowds_slow_a_zone_and_routes_detour(tiny: Venue) -> None:
    board = CrowdBoard(tiny)
    router = Router(tiny, board, 1.0)
    assert board.update("junction", 1.5, as_of=1000.0)
    crowded = router.route("n.a", "n.c", Walking(1.0, avoid_crowds=True), crowded=True)
    assert crowded is not None
    # Through the junction: 100 m at (1 + f)/2 each way with f = 1 + 3 * 1.2^2 = 5.32,
    # so 632 s; round by the plaza is 310 s and uncrowded.
    assert list(crowded.node_ids) == ["n.a", "n.d", "n.c"]
    assert crowded.seconds == pytest.approx(310.0)
    assert crowded.crowd_delay_seconds == 0.0
    plain = router.route("n.a", "n.c", Walking(1.0), crowded=True)
    assert plain is not None and list(plain.node_ids) == ["n.a", "n.b", "n.c"]
    # Into the junction itself there is no detour: the delay is reported.
    into = router.route("n.a", "n.b", Walking(1.0, avoid_crowds=True), crowded=True)
    assert into is not None
    assert into.seconds == pytest.approx(100 * (1 + slowdown(1.5)) / 2)
    assert into.crowd_delay_seconds == pytest.approx(into.seconds - 100.0)
    # Outside the crowd horizon the crowd does not count.
    later = router.route("n.a", "n.c", Walking(1.0, avoid_crowds=True), crowded=False)
    assert later is not None and later.seconds == pytest.approx(200.0)


def test_crowd_board_keeps_the_newest_reading_and_ignores_small_changes(tiny: Venue) -> None:
    board = CrowdBoard(tiny)
    assert board.update("junction", 1.0, as_of=100.0)
    version = board.version
    assert not board.update("junction", 0.2, as_of=50.0)  # older: ignored
    assert board.density("junction") == 1.0
    assert not board.update("junction", 1.001, as_of=101.0)  # not material
    assert board.version == version
    assert board.update("junction", 0.1, as_of=102.0)
    assert board.zone_factor("junction") == 1.0
    assert not board.update("no-such-zone", 1.0, as_of=103.0)


def test_a_zone_takes_its_parents_crowding(park: Venue) -> None:
    board = CrowdBoard(park)
    child = next(z for z in park.zones if z.parent is not None)
    assert child.parent is not None
    board.update(child.parent, 1.0, as_of=1.0)
    assert board.zone_factor(child.id) == pytest.approx(slowdown(1.0))
    board.update(child.id, 0.0, as_of=2.0)
    assert board.zone_factor(child.id) == 1.0


@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_slowdown_never_speeds_up_and_is_bounded(density: float) -> None:
    assert 1.0 <= slowdown(density) <= MAX_FACTOR


@given(st.floats(0, 5), st.floats(0, 5))
def test_slowdown_grows_with_density(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert slowdown(low) <= slowdown(high)


def test_endpoints_zones_and_unknown_ids(tiny_router: Router, park_router: Router) -> None:
    # The walkable node nearest the middle of the zone's nodes.
    assert tiny_router.node_of_zone("upper") == "n.u2"
    assert tiny_router.node_of_zone("land.west") == "n.a"
    assert tiny_router.node_of_poi("k2") == "n.u2"
    with pytest.raises(UnknownIdError):
        tiny_router.node_of_poi("nope")
    with pytest.raises(UnknownIdError):
        tiny_router.routable_node("n.zz")
    # A line's own node is not a place to route to; its zone resolves to the entrance.
    park = park_router.venue
    attraction = park.attractions()[0]
    assert attraction.queue is not None
    inside = park.queue_line(attraction.id)[1]
    with pytest.raises(NotRoutable):
        park_router.routable_node(inside)
    assert park_router.node_of_zone(attraction.queue.queue_zone) in park_router.walk


# --- nearest ---------------------------------------------------------------------------


def _open_at(minute: int) -> object:
    return lambda poi: poi.hours.is_open_at(minute)


def test_nearest_respects_opening_hours(tiny: Venue, tiny_router: Router) -> None:
    drinks = tiny.pois_with_tag("cold_drink")
    at_ten = tiny_router.nearest(
        "n.a", drinks, Walking(1.0), False, 5, keep=lambda p: p.hours.is_open_at(600)
    )
    assert [(n.poi.id, n.seconds) for n in at_ten] == [("k2", 250.0)]
    at_one = tiny_router.nearest(
        "n.a", drinks, Walking(1.0), False, 5, keep=lambda p: p.hours.is_open_at(780)
    )
    assert [(n.poi.id, n.seconds) for n in at_one] == [("k1", 200.0), ("k2", 250.0)]
    assert at_one[1].distance_m == 250.0
    step_free = tiny_router.nearest(
        "n.a", drinks, Walking(1.0, True), False, 5, keep=lambda p: p.hours.is_open_at(780)
    )
    assert [(n.poi.id, n.seconds) for n in step_free] == [("k1", 200.0), ("k2", 260.0)]
    # Closing time is exclusive, and a bound on the walk drops the far one.
    at_six = tiny_router.nearest(
        "n.a", drinks, Walking(1.0), False, 5, keep=lambda p: p.hours.is_open_at(18 * 60)
    )
    assert [n.poi.id for n in at_six] == ["k2"]
    near = tiny_router.nearest("n.a", drinks, Walking(1.0), False, 5, max_seconds=220)
    assert [n.poi.id for n in near] == ["k1"]
    assert len(tiny_router.nearest("n.a", drinks, Walking(1.0), False, 1)) == 1


def test_nearest_restroom_in_the_park_is_nearest_by_walking(
    park: Venue, park_router: Router
) -> None:
    restrooms = park.pois_with_tag("restroom") or tuple(
        p for p in park.pois if p.kind.value == "restroom"
    )
    origin = park_router.walk.node_ids[0]
    found = park_router.nearest(origin, restrooms, Walking(), False, 50)
    assert len(found) == len(restrooms)
    times = [n.seconds for n in found]
    assert times == sorted(times)
    graph = park_router.walk.digraph(park_router.default_speed)
    lengths = nx.single_source_dijkstra_path_length(graph, origin, weight="seconds")
    for near in found:
        assert near.seconds == pytest.approx(lengths[near.poi.node])


# --- properties on the park ------------------------------------------------------------

NODE = st.integers(min_value=0, max_value=10_000)
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pick(router: Router, step_free: bool, i: int) -> str:
    nodes = (router.step_free if step_free else router.walk).node_ids
    return nodes[i % len(nodes)]


@SLOW
@given(NODE, NODE, NODE, st.booleans())
def test_walking_times_obey_the_triangle_inequality(
    park_router: Router, a: int, b: int, c: int, step_free: bool
) -> None:
    walking = Walking(step_free=step_free)
    x, y, z = (_pick(park_router, step_free, i) for i in (a, b, c))
    model = park_router.model(walking, crowded=False)
    index = model.graph.index
    xy = model.seconds(index[x], index[y])
    yz = model.seconds(index[y], index[z])
    xz = model.seconds(index[x], index[z])
    assert xz <= xy + yz + 1e-6


@SLOW
@given(NODE, NODE, st.floats(0.3, 2.5))
def test_step_free_routes_never_use_stairs_or_escalators(
    park_router: Router, a: int, b: int, speed: float
) -> None:
    walking = Walking(speed_mps=speed, step_free=True)
    route = park_router.route(
        _pick(park_router, True, a), _pick(park_router, True, b), walking, False
    )
    assert route is not None  # the step-free graph is strongly connected
    assert not {s.kind for s in route.steps} & {EdgeKind.STAIRS, EdgeKind.ESCALATOR}


@SLOW
@given(NODE, NODE, st.floats(0.3, 2.5), st.booleans())
def test_route_time_is_the_sum_of_its_edges_and_optimal(
    park_router: Router, a: int, b: int, speed: float, step_free: bool
) -> None:
    walking = Walking(speed_mps=speed, step_free=step_free)
    x, y = _pick(park_router, step_free, a), _pick(park_router, step_free, b)
    route = park_router.route(x, y, walking, False)
    assert route is not None
    venue = park_router.venue
    total = math.fsum(
        venue.edge(_edge_id(venue, s.source, s.target)).seconds(speed) for s in route.steps
    )
    assert route.seconds == pytest.approx(total)
    assert route.distance_m == pytest.approx(math.fsum(s.distance_m for s in route.steps))
    graph = park_router.graph(walking).digraph(speed)
    assert route.seconds == pytest.approx(nx.dijkstra_path_length(graph, x, y, weight="seconds"))


def _edge_id(venue: Venue, source: str, target: str) -> str:
    for edge in venue.edges:
        if (edge.source, edge.target) == (source, target) or (
            not edge.one_way and (edge.target, edge.source) == (source, target)
        ):
            return edge.id
    raise AssertionError(f"no edge {source} -> {target}")


CLOCK = [0.0]


@pytest.fixture(scope="module")
def crowd_router(park: Venue) -> Router:
    return Router(park, CrowdBoard(park))


@SLOW
@given(
    NODE,
    NODE,
    st.dictionaries(st.integers(0, 200), st.floats(0, 3), max_size=12),
)
def test_crowd_weights_never_make_a_route_shorter(
    crowd_router: Router, a: int, b: int, densities: dict[int, float]
) -> None:
    router = crowd_router
    park = router.venue
    # Readings pile up from example to example: any state of the board will do.
    for i, density in densities.items():
        CLOCK.append(CLOCK[-1] + 1.0)
        router.crowd.update(park.zones[i % len(park.zones)].id, density, as_of=CLOCK[-1])
    x, y = _pick(router, False, a), _pick(router, False, b)
    plain = router.route(x, y, Walking(), crowded=False)
    crowded = router.route(x, y, Walking(avoid_crowds=True), crowded=True)
    assert plain is not None and crowded is not None
    assert crowded.seconds >= plain.seconds - 1e-6
    assert crowded.seconds - crowded.crowd_delay_seconds >= plain.seconds - 1e-6


def test_the_mall_routes_between_floors_both_ways() -> None:
    mall = load_venue(MALL)
    router = Router(mall, CrowdBoard(mall))
    lower = next(n for n in router.step_free.node_ids if mall.node(n).floor == 0)
    upper = next(n for n in router.step_free.node_ids if mall.node(n).floor == 1)
    for walking in (Walking(), Walking(step_free=True)):
        up = router.route(lower, upper, walking, False)
        down = router.route(upper, lower, walking, False)
        assert up is not None and down is not None
        assert {s.floor for s in up.steps} == {0, 1} or up.steps[-1].floor == 1
        if walking.step_free:
            kinds = {s.kind for s in up.steps} | {s.kind for s in down.steps}
            assert EdgeKind.ELEVATOR in kinds
            assert not kinds & {EdgeKind.STAIRS, EdgeKind.ESCALATOR}


@settings(max_examples=40, deadline=None)
@given(NODE, NODE, st.sampled_from([0.7, 1.2, 1.9]), st.booleans())
def test_wire_encoded_routes_equal_built_messages(
    park_router: Router, a: int, b: int, speed: float, step_free: bool
) -> None:
    encoder = RouteEncoder(park_router.venue)
    walking = Walking(speed_mps=speed, step_free=step_free)
    x, y = _pick(park_router, step_free, a), _pick(park_router, step_free, b)
    found = park_router.path(x, y, walking, False)
    assert found is not None
    data, seconds = encoder.encode(*found)
    built = route_pb(park_router.describe(*found))
    assert pb.Route.FromString(data) == built
    assert seconds == pytest.approx(built.walking_time.ToTimedelta().total_seconds(), abs=1e-6)
