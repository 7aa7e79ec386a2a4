"""Every routing RPC over a real socket on the park venue: what it answers, who may
call it, and its bad input (a clear status naming the field)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.venue_model import EdgeKind, load_venue
from tests.service.conftest import GATE, OPS, Identity
from tests.service.routing.conftest import VENUE_NOW, Routing
from tests.support.stubs import bearer, expect_error, status_of
from venue.common.v1 import common_pb2
from venue.queue.v1 import queue_pb2
from venue.routing.v1 import routing_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
OK = grpc.StatusCode.OK

PARK = load_venue("venues/lantern-bay-park.yaml")
RIDES = [p.id for p in PARK.attractions()]
ENTRANCE = next(p.id for p in PARK.pois if p.kind.value == "entrance")


def ts(minutes_after_now: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(VENUE_NOW + timedelta(minutes=minutes_after_now))
    return stamp


def poi(poi_id: str) -> pb.Endpoint:
    return pb.Endpoint(poi_id=poi_id)


@pytest.fixture(scope="module")
async def guest(identity: Identity) -> tuple[tuple[str, str], ...]:
    return bearer((await identity.guest("Gus")).token)


# --- the venue --------------------------------------------------------------------------


async def test_get_venue_with_and_without_the_graph(routing: Routing, guest: Any) -> None:
    reply = await routing.stub.GetVenue(
        pb.GetVenueRequest(date=common_pb2.VenueDate(year=2026, month=7, day=4)), metadata=guest
    )
    venue = reply.venue
    assert venue.venue_id == PARK.id and venue.kind == pb.VENUE_KIND_THEME_PARK
    assert venue.time_zone == "America/New_York" and venue.currency == "USD"
    (hours,) = venue.opening_hours
    assert hours.start.ToDatetime().hour == 13  # 09:00 EDT
    assert len(venue.definition_sha256) == 64
    assert not venue.nodes
    full = await routing.stub.GetVenue(pb.GetVenueRequest(include_graph=True), metadata=guest)
    assert len(full.venue.nodes) == len(PARK.graph_nodes())
    assert {e.connector for e in full.venue.edges} >= {
        pb.CONNECTOR_KIND_WALKWAY,
        pb.CONNECTOR_KIND_STAIRS,
        pb.CONNECTOR_KIND_ELEVATOR,
    }
    await expect_error(
        routing.stub.GetVenue(
            pb.GetVenueRequest(date=common_pb2.VenueDate(year=2026, month=2, day=30)),
            metadata=guest,
        ),
        INVALID,
        "date",
    )


async def test_points_of_interest_filtered_and_paged(routing: Routing, guest: Any) -> None:
    seen: list[str] = []
    token = ""
    while True:
        page = await routing.stub.ListPointsOfInterest(
            pb.ListPointsOfInterestRequest(
                page=common_pb2.PageRequest(page_size=7, page_token=token)
            ),
            metadata=guest,
        )
        assert len(page.points_of_interest) <= 7
        seen += [p.poi_id for p in page.points_of_interest]
        token = page.next_page_token
        if not token:
            break
    assert seen == [p.id for p in PARK.pois]
    rides = await routing.stub.ListPointsOfInterest(
        pb.ListPointsOfInterestRequest(kinds=[pb.POI_KIND_ATTRACTION], tags=["thrill"]),
        metadata=guest,
    )
    assert rides.points_of_interest
    for found in rides.points_of_interest:
        assert found.kind == pb.POI_KIND_ATTRACTION and "thrill" in found.tags
        assert found.attraction.hourly_capacity > 0 and found.accessible
    land = PARK.zone(PARK.attractions()[0].zone).parent
    assert land is not None
    in_land = await routing.stub.ListPointsOfInterest(
        pb.ListPointsOfInterestRequest(zone_id=land), metadata=guest
    )
    assert RIDES[0] in [p.poi_id for p in in_land.points_of_interest]
    for request, field in [
        (pb.ListPointsOfInterestRequest(kinds=[pb.POI_KIND_UNSPECIFIED]), "kinds[0]"),
        (pb.ListPointsOfInterestRequest(kinds=[999]), "kinds[0]"),  # type: ignore[list-item]
        (pb.ListPointsOfInterestRequest(tags=[""]), "tags[0]"),
        (pb.ListPointsOfInterestRequest(zone_id="bad id!"), "zone_id"),
        (
            pb.ListPointsOfInterestRequest(page=common_pb2.PageRequest(page_token="nope")),
            "page.page_token",
        ),
        (
            pb.ListPointsOfInterestRequest(page=common_pb2.PageRequest(page_size=-1)),
            "page.page_size",
        ),
    ]:
        await expect_error(
            routing.stub.ListPointsOfInterest(request, metadata=guest), INVALID, field
        )
    await expect_error(
        routing.stub.ListPointsOfInterest(
            pb.ListPointsOfInterestRequest(zone_id="no-such-zone"), metadata=guest
        ),
        NOT_FOUND,
    )


async def test_get_point_of_interest(routing: Routing, guest: Any) -> None:
    show = PARK.shows()[0]
    reply = await routing.stub.GetPointOfInterest(
        pb.GetPointOfInterestRequest(poi_id=show.id), metadata=guest
    )
    found = reply.point_of_interest
    assert found.kind == pb.POI_KIND_SHOW and show.show is not None
    assert len(found.show.show_times) == len(show.show.performances)
    assert found.place.node_id == show.node
    await expect_error(
        routing.stub.GetPointOfInterest(pb.GetPointOfInterestRequest(), metadata=guest),
        INVALID,
        "poi_id",
    )
    await expect_error(
        routing.stub.GetPointOfInterest(
            pb.GetPointOfInterestRequest(poi_id="nope"), metadata=guest
        ),
        NOT_FOUND,
    )


# --- routes --------------------------------------------------------------------------------


async def test_route_between_two_rides(routing: Routing, guest: Any) -> None:
    request = pb.GetRouteRequest(
        origin=poi(RIDES[0]),
        destination=poi(RIDES[-1]),
        walking=pb.WalkingOptions(walking_speed_mps=1.0),
        depart_at=ts(0),
    )
    route = (await routing.stub.GetRoute(request, metadata=guest)).route
    a, b = PARK.poi(RIDES[0]).node, PARK.poi(RIDES[-1]).node
    assert route.node_ids[0] == a and route.node_ids[-1] == b
    assert len(route.steps) == len(route.node_ids) - 1
    total = sum(s.walking_time.ToTimedelta().total_seconds() for s in route.steps)
    assert route.walking_time.ToTimedelta().total_seconds() == pytest.approx(total, abs=1e-3)
    assert route.distance_m == pytest.approx(sum(s.distance_m for s in route.steps))
    assert (route.arrive_at.ToDatetime() - route.depart_at.ToDatetime()) == pytest.approx(
        route.walking_time.ToTimedelta(), abs=timedelta(milliseconds=1)
    )
    # Twice as fast: half the time on the same (flat) way; and the default speed.
    fast = await routing.stub.GetRoute(
        pb.GetRouteRequest(
            origin=poi(RIDES[0]),
            destination=poi(RIDES[-1]),
            walking=pb.WalkingOptions(walking_speed_mps=2.0),
        ),
        metadata=guest,
    )
    assert fast.route.walking_time.ToTimedelta() <= route.walking_time.ToTimedelta() / 2 * 1.01
    by_node = await routing.stub.GetRoute(
        pb.GetRouteRequest(origin=pb.Endpoint(node_id=a), destination=pb.Endpoint(node_id=b)),
        metadata=guest,
    )
    assert list(by_node.route.node_ids) == list(route.node_ids)


async def test_step_free_route_to_the_hotel_avoids_the_stairs(routing: Routing, guest: Any) -> None:
    hotel = PARK.hotels()[0]
    for accessible in (False, True):
        reply = await routing.stub.GetRoute(
            pb.GetRouteRequest(
                origin=poi(ENTRANCE),
                destination=pb.Endpoint(node_id=_upstairs(hotel.id)),
                walking=pb.WalkingOptions(accessible=accessible),
            ),
            metadata=guest,
        )
        connectors = {s.connector for s in reply.route.steps}
        if accessible:
            assert pb.CONNECTOR_KIND_STAIRS not in connectors
            assert pb.CONNECTOR_KIND_ESCALATOR not in connectors


def _upstairs(hotel_id: str) -> str:
    floor_edges = [e for e in PARK.edges if e.kind in (EdgeKind.STAIRS, EdgeKind.ELEVATOR)]
    upper = [PARK.node(e.target) for e in floor_edges] + [PARK.node(e.source) for e in floor_edges]
    return max(upper, key=lambda n: n.floor).id


async def test_crowds_reported_by_location_slow_the_route(routing: Routing, guest: Any) -> None:
    request = pb.GetRouteRequest(
        origin=poi(RIDES[0]),
        destination=poi(RIDES[5]),
        walking=pb.WalkingOptions(avoid_crowds=True),
    )
    before = (await routing.stub.GetRoute(request, metadata=guest)).route
    assert before.crowd_delay.ToTimedelta() == timedelta(0)
    zones = {PARK.node(n).zone for n in before.node_ids}
    for zone in zones:
        routing.location.publish(zone, 2.0, VENUE_NOW)
    async with asyncio.timeout(10):
        while True:
            after = (await routing.stub.GetRoute(request, metadata=guest)).route
            if after.walking_time.ToTimedelta() > before.walking_time.ToTimedelta():
                break
            await asyncio.sleep(0.05)
    # A route that ignores crowds is unchanged; the crowd-aware one is never faster.
    plain = await routing.stub.GetRoute(
        pb.GetRouteRequest(origin=poi(RIDES[0]), destination=poi(RIDES[5])), metadata=guest
    )
    assert plain.route.walking_time == before.walking_time
    assert after.walking_time.ToTimedelta() >= plain.route.walking_time.ToTimedelta()
    for zone in zones:
        routing.location.publish(zone, 0.0, VENUE_NOW + timedelta(seconds=1))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"origin": pb.Endpoint()}, "origin"),
        ({"destination": pb.Endpoint()}, "destination"),
        ({"origin": pb.Endpoint(poi_id="bad id!")}, "origin.poi_id"),
        ({"origin": pb.Endpoint(node_id=PARK.queue_line(RIDES[0])[1])}, "origin.node_id"),
        ({"walking": pb.WalkingOptions(walking_speed_mps=-1)}, "walking.walking_speed_mps"),
        ({"walking": pb.WalkingOptions(walking_speed_mps=50)}, "walking.walking_speed_mps"),
        (
            {"walking": pb.WalkingOptions(walking_speed_mps=float("nan"))},
            "walking.walking_speed_mps",
        ),
        ({"depart_at": Timestamp(seconds=1)}, "depart_at"),
    ],
)
async def test_get_route_bad_input(
    routing: Routing, guest: Any, change: dict[str, Any], field: str
) -> None:
    request = pb.GetRouteRequest(origin=poi(RIDES[0]), destination=poi(RIDES[1]))
    for name, value in change.items():
        getattr(request, name).CopyFrom(value)
    await expect_error(routing.stub.GetRoute(request, metadata=guest), INVALID, field)


async def test_get_route_unknown_places(routing: Routing, guest: Any) -> None:
    for endpoint in (
        pb.Endpoint(poi_id="no-such-ride"),
        pb.Endpoint(node_id="n.nowhere"),
        pb.Endpoint(zone_id="no-such-zone"),
    ):
        await expect_error(
            routing.stub.GetRoute(
                pb.GetRouteRequest(origin=endpoint, destination=poi(RIDES[0])), metadata=guest
            ),
            NOT_FOUND,
        )


# --- nearest ---------------------------------------------------------------------------


async def test_nearest_cold_drink_is_open_and_nearest(routing: Routing, guest: Any) -> None:
    reply = await routing.stub.FindNearest(
        pb.FindNearestRequest(
            origin=poi(RIDES[3]), tags=["cold_drink"], open_at=ts(60), max_results=3
        ),
        metadata=guest,
    )
    assert len(reply.results) == 3
    times = [r.walking_time.ToTimedelta() for r in reply.results]
    assert times == sorted(times)
    assert all("cold_drink" in r.point_of_interest.tags for r in reply.results)
    # Before opening nothing is open.
    early = await routing.stub.FindNearest(
        pb.FindNearestRequest(origin=poi(RIDES[3]), tags=["cold_drink"], open_at=ts(-120)),
        metadata=guest,
    )
    assert not early.results
    restrooms = await routing.stub.FindNearest(
        pb.FindNearestRequest(
            origin=poi(RIDES[3]),
            kind=pb.POI_KIND_RESTROOM,
            open_at=ts(0),
            max_walking_time=Duration(seconds=1),
        ),
        metadata=guest,
    )
    assert not restrooms.results


async def test_nearest_skips_a_ride_that_is_down_and_shows_posted_waits(
    routing: Routing, guest: Any
) -> None:
    rides = [p for p in PARK.attractions() if "thrill" in p.tags]
    request = pb.FindNearestRequest(
        origin=poi(rides[0].id), kind=pb.POI_KIND_ATTRACTION, tags=["thrill"], max_results=50
    )
    routing.queue.publish(
        wait_changed=queue_pb2.WaitChanged(
            attraction_id=rides[1].id, posted_wait=Duration(seconds=25 * 60)
        )
    )
    routing.queue.publish(
        status_changed=queue_pb2.StatusChanged(
            attraction_id=rides[0].id,
            status=queue_pb2.ATTRACTION_STATUS_DOWN,
            reason=queue_pb2.STATUS_REASON_TECHNICAL,
        )
    )
    async with asyncio.timeout(10):
        while True:
            reply = await routing.stub.FindNearest(request, metadata=guest)
            ids = [r.point_of_interest.poi_id for r in reply.results]
            if rides[0].id not in ids:
                break
            await asyncio.sleep(0.05)
    posted = {r.point_of_interest.poi_id: r.posted_wait.seconds for r in reply.results}
    assert posted[rides[1].id] == 25 * 60
    routing.queue.publish(
        status_changed=queue_pb2.StatusChanged(
            attraction_id=rides[0].id, status=queue_pb2.ATTRACTION_STATUS_OPEN
        )
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.FindNearestRequest(origin=poi(RIDES[0])), "kind"),
        (pb.FindNearestRequest(tags=["snack"]), "origin"),
        (pb.FindNearestRequest(origin=poi(RIDES[0]), kind=99), "kind"),  # type: ignore[arg-type]
        (
            pb.FindNearestRequest(origin=poi(RIDES[0]), tags=["snack"], max_results=-1),
            "max_results",
        ),
        (
            pb.FindNearestRequest(
                origin=poi(RIDES[0]), tags=["snack"], max_walking_time=Duration(seconds=-5)
            ),
            "max_walking_time",
        ),
        (pb.FindNearestRequest(origin=poi(RIDES[0]), tags=["x" * 51]), "tags[0]"),
    ],
)
async def test_find_nearest_bad_input(
    routing: Routing, guest: Any, request_: pb.FindNearestRequest, field: str
) -> None:
    await expect_error(routing.stub.FindNearest(request_, metadata=guest), INVALID, field)


# --- plans ---------------------------------------------------------------------------------


def item(
    item_id: str,
    poi_id: str,
    kind: int = pb.PLAN_ITEM_KIND_ATTRACTION,
    must: bool = True,
    window: tuple[float, float] | None = None,
) -> pb.PlanItem:
    message = pb.PlanItem(
        item_id=item_id,
        poi_id=poi_id,
        kind=kind,  # type: ignore[arg-type]
        priority=pb.PLAN_ITEM_PRIORITY_MUST_DO if must else pb.PLAN_ITEM_PRIORITY_NICE_TO_DO,
    )
    if window is not None:
        message.start_window.CopyFrom(common_pb2.TimeRange(start=ts(window[0]), end=ts(window[1])))
    return message


def forecast(attraction_id: str, waits_min: list[float]) -> queue_pb2.AttractionForecast:
    message = queue_pb2.AttractionForecast(attraction_id=attraction_id, computed_at=ts(0))
    for k, wait in enumerate(waits_min):
        message.slots.append(
            queue_pb2.ForecastSlot(
                start=ts(15 * k),
                wait=Duration(seconds=int(wait * 60)),
                expected_status=queue_pb2.ATTRACTION_STATUS_OPEN,
            )
        )
    return message


async def test_plan_a_morning_with_a_lunch_reservation_and_a_show(
    routing: Routing, guest: Any
) -> None:
    show = PARK.shows()[0]
    assert show.show is not None
    restaurant = next(p for p in PARK.pois if "meal" in p.tags)
    request = pb.PlanItineraryRequest(
        start=poi(ENTRANCE),
        start_at=ts(0),
        leave_at=ts(8 * 60),
        finish=poi(ENTRANCE),
        items=[
            item("a", RIDES[0]),
            item("b", RIDES[10]),
            item("c", RIDES[20], must=False),
            item("lunch", restaurant.id, pb.PLAN_ITEM_KIND_MEAL, window=(150, 165)),
            item("show", show.id, pb.PLAN_ITEM_KIND_SHOW),
        ],
        include_routes=True,
    )
    reply = await routing.stub.PlanItinerary(request, metadata=guest)
    assert reply.optimal
    assert {s.item_id for s in reply.stops} == {"a", "b", "c", "lunch", "show"}
    assert not reply.skipped
    previous_end = request.start_at.ToDatetime()
    for stop in reply.stops:
        arrive, start, end = (
            stop.arrive_at.ToDatetime(),
            stop.start_at.ToDatetime(),
            stop.end_at.ToDatetime(),
        )
        assert arrive == pytest.approx(
            previous_end + stop.walk.ToTimedelta(), abs=timedelta(milliseconds=2)
        )
        assert start - arrive == pytest.approx(
            stop.wait.ToTimedelta(), abs=timedelta(milliseconds=2)
        )
        assert stop.route.node_ids[-1] == PARK.poi(stop.poi_id).node
        previous_end = end
    lunch = next(s for s in reply.stops if s.item_id == "lunch")
    assert ts(150).ToDatetime() <= lunch.start_at.ToDatetime() < ts(165).ToDatetime()
    assert lunch.wait_source == pb.WAIT_SOURCE_FIXED
    assert reply.finish_at.ToDatetime() <= request.leave_at.ToDatetime()
    assert reply.total_distance_m > 0


async def test_plans_follow_forecasts_and_replan_when_a_ride_goes_down(
    routing: Routing, guest: Any
) -> None:
    busy_later, quiet = RIDES[7], RIDES[8]
    # One ride's line grows through the morning, the other's is flat.
    routing.queue.publish(
        forecast_changed=queue_pb2.ForecastChanged(
            forecast=forecast(busy_later, [5, 10, 30, 60, 90, 90, 90, 90, 90, 90])
        )
    )
    routing.queue.publish(
        forecast_changed=queue_pb2.ForecastChanged(forecast=forecast(quiet, [20] * 10))
    )
    request = pb.PlanItineraryRequest(
        start=poi(ENTRANCE),
        start_at=ts(0),
        items=[item("quiet", quiet), item("busy", busy_later)],
    )
    async with asyncio.timeout(10):
        while True:
            reply = await routing.stub.PlanItinerary(request, metadata=guest)
            if all(s.wait_source == pb.WAIT_SOURCE_FORECAST for s in reply.stops):
                break
            await asyncio.sleep(0.05)
    assert [s.item_id for s in reply.stops] == ["busy", "quiet"]
    routing.queue.publish(
        status_changed=queue_pb2.StatusChanged(
            attraction_id=busy_later,
            status=queue_pb2.ATTRACTION_STATUS_CLOSED,
            reason=queue_pb2.STATUS_REASON_WEATHER,
        )
    )
    async with asyncio.timeout(10):
        while True:
            reply = await routing.stub.PlanItinerary(request, metadata=guest)
            if reply.skipped:
                break
            await asyncio.sleep(0.05)
    assert [s.item_id for s in reply.stops] == ["quiet"]
    (skipped,) = reply.skipped
    assert skipped.item_id == "busy" and skipped.reason == pb.SKIP_REASON_NOT_OPERATING
    routing.queue.publish(
        status_changed=queue_pb2.StatusChanged(
            attraction_id=busy_later, status=queue_pb2.ATTRACTION_STATUS_OPEN
        )
    )


PLAN_BAD: list[tuple[Callable[[pb.PlanItineraryRequest], None], str]] = [
    (lambda r: r.ClearField("start"), "start"),
    (lambda r: r.leave_at.CopyFrom(ts(-10)), "leave_at"),
    (lambda r: r.items.append(item("a", RIDES[1])), "items[1].item_id"),
    (lambda r: r.items.append(item("", RIDES[1])), "items[1].item_id"),
    (lambda r: r.items.append(item("z", "bad id!")), "items[1].poi_id"),
    (lambda r: r.items.append(item("z", RIDES[1], kind=0)), "items[1].kind"),
    (
        lambda r: r.items.append(
            pb.PlanItem(item_id="z", poi_id=RIDES[1], kind=pb.PLAN_ITEM_KIND_ATTRACTION)
        ),
        "items[1].priority",
    ),
    (lambda r: r.items.append(item("z", ENTRANCE)), "items[1].kind"),
    (lambda r: r.items.append(item("z", RIDES[1], pb.PLAN_ITEM_KIND_SHOW)), "items[1].kind"),
    (
        lambda r: r.items.append(item("z", RIDES[1], pb.PLAN_ITEM_KIND_BOOKED_ATTRACTION)),
        "items[1].start_window",
    ),
    (lambda r: r.items.append(item("z", RIDES[1], window=(60, 30))), "items[1].start_window"),
    (
        lambda r: r.items.append(
            pb.PlanItem(
                item_id="z",
                poi_id=RIDES[1],
                kind=pb.PLAN_ITEM_KIND_ATTRACTION,
                priority=pb.PLAN_ITEM_PRIORITY_MUST_DO,
                duration=Duration(seconds=-60),
            )
        ),
        "items[1].duration",
    ),
    (lambda r: r.items.extend(item(f"x{k}", RIDES[k % 30]) for k in range(41)), "items"),
    (
        lambda r: r.walking.CopyFrom(pb.WalkingOptions(walking_speed_mps=9)),
        "walking.walking_speed_mps",
    ),
]


@pytest.mark.parametrize(("change", "field"), PLAN_BAD)
async def test_plan_itinerary_bad_input(
    routing: Routing,
    guest: Any,
    change: Callable[[pb.PlanItineraryRequest], None],
    field: str,
) -> None:
    request = pb.PlanItineraryRequest(
        start=poi(ENTRANCE), start_at=ts(0), items=[item("a", RIDES[0])]
    )
    change(request)
    await expect_error(routing.stub.PlanItinerary(request, metadata=guest), INVALID, field)


async def test_plan_with_an_unknown_place(routing: Routing, guest: Any) -> None:
    request = pb.PlanItineraryRequest(start=poi(ENTRANCE), items=[item("a", "no-such-ride")])
    await expect_error(routing.stub.PlanItinerary(request, metadata=guest), NOT_FOUND)


# --- who may call ------------------------------------------------------------------------

Caller = Callable[[Routing, Any], Awaitable[Any]]

CALLS: dict[str, Caller] = {
    "GetVenue": lambda r, md: r.stub.GetVenue(pb.GetVenueRequest(), metadata=md),
    "ListPointsOfInterest": lambda r, md: r.stub.ListPointsOfInterest(
        pb.ListPointsOfInterestRequest(), metadata=md
    ),
    "GetPointOfInterest": lambda r, md: r.stub.GetPointOfInterest(
        pb.GetPointOfInterestRequest(poi_id=RIDES[0]), metadata=md
    ),
    "GetRoute": lambda r, md: r.stub.GetRoute(
        pb.GetRouteRequest(origin=poi(RIDES[0]), destination=poi(RIDES[1])), metadata=md
    ),
    "FindNearest": lambda r, md: r.stub.FindNearest(
        pb.FindNearestRequest(origin=poi(RIDES[0]), kind=pb.POI_KIND_RESTROOM), metadata=md
    ),
    "PlanItinerary": lambda r, md: r.stub.PlanItinerary(
        pb.PlanItineraryRequest(start=poi(ENTRANCE), items=[item("a", RIDES[0])]), metadata=md
    ),
}
# Who is admitted to what (anything not listed is refused).
ADMITTED = {
    "guest": set(CALLS),
    "ops": set(CALLS),
    "itinerary": set(CALLS),
    "queue": {"GetVenue", "ListPointsOfInterest", "GetPointOfInterest", "GetRoute", "FindNearest"},
    "photo": {"GetVenue", "ListPointsOfInterest", "GetPointOfInterest"},
    "gate": {"GetVenue", "ListPointsOfInterest", "GetPointOfInterest"},
}


async def test_who_may_call_what(routing: Routing, identity: Identity, guest: Any) -> None:
    callers = {
        "guest": guest,
        "ops": bearer((await identity.staff(OPS))[1]),
        "itinerary": bearer(await routing.service_token("itinerary")),
        "queue": bearer(await routing.service_token("queue")),
        "photo": bearer(await routing.service_token("photo")),
        "gate": bearer((await identity.device(GATE))[1]),
    }
    for name, call in CALLS.items():
        assert await status_of(call(routing, ())) == UNAUTH, name
        for who, metadata in callers.items():
            expected = OK if name in ADMITTED[who] else DENIED
            assert await status_of(call(routing, metadata)) == expected, (name, who)


async def test_a_plan_after_closing_is_empty_and_says_why(routing: Routing, guest: Any) -> None:
    request = pb.PlanItineraryRequest(
        start=poi(ENTRANCE), start_at=ts(12 * 60), items=[item("a", RIDES[0])]
    )
    reply = await routing.stub.PlanItinerary(request, metadata=guest)
    assert not reply.stops
    (skipped,) = reply.skipped
    assert skipped.reason == pb.SKIP_REASON_NOT_OPERATING
