"""The routing service as the itinerary uses it: the optimizer (PlanItinerary),
walking times (GetRoute, cached: without crowds a walk between two places does
not change), nearby snacks (FindNearest) and crowd-free routes.

When routing cannot be reached, calls fail fast for a few seconds instead of
piling up; callers fall back to what the plan already predicted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.itinerary.engine import RouteOption, SnackOption
from services.itinerary.facts import VenueFacts
from services.itinerary.model import Place, PlanSettings
from services.itinerary.planning import Answer, Question, RoutedSkip, RoutedStop
from services.platform.validation import to_timestamp
from venue.routing.v1 import routing_pb2 as rpb
from venue.routing.v1 import routing_pb2_grpc

log = logging.getLogger("venue.itinerary.router")

# Crowding slows walkers: at a zone's capacity they walk at half speed. The
# itinerary's own estimate, applied alike to both routes it compares.
CROWD_FREE_DENSITY = 0.5
CROWD_SLOWDOWN = 2.0
COOLDOWN_S = 5.0
WALK_CACHE = 50_000
PLAN_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 3.0


class RoutingUnavailable(Exception):
    pass


def crowd_factor(density: float) -> float:
    return 1.0 + max(0.0, density - CROWD_FREE_DENSITY) * CROWD_SLOWDOWN


def endpoint(place: Place) -> rpb.Endpoint:
    if place.node_id:
        return rpb.Endpoint(node_id=place.node_id)
    return rpb.Endpoint(zone_id=place.zone_id)


def walking(settings: PlanSettings, avoid_crowds: bool | None = None) -> rpb.WalkingOptions:
    return rpb.WalkingOptions(
        walking_speed_mps=settings.walking_speed_mps,
        accessible=settings.accessible,
        avoid_crowds=settings.avoid_crowds if avoid_crowds is None else avoid_crowds,
    )


def _seconds(d: object) -> float:
    return float(d.ToNanoseconds()) / 1e9  # type: ignore[attr-defined]


def _time(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


class Router:
    def __init__(self, channel: Callable[[], grpc.aio.Channel], facts: VenueFacts) -> None:
        self._channel = channel
        self._facts = facts
        self._walks: OrderedDict[tuple[str, str, bool, float], float] = OrderedDict()
        self._snacks: dict[tuple[str, int], tuple[SnackOption, ...]] = {}
        self._down_until = 0.0
        self.calls = 0
        self.failures = 0

    def _stub(self) -> routing_pb2_grpc.RoutingServiceAsyncStub:
        return routing_pb2_grpc.RoutingServiceStub(self._channel())

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, err: Exception) -> None:
        self.failures += 1
        self._down_until = time.monotonic() + COOLDOWN_S
        log.info("routing unavailable", extra={"error": type(err).__name__})

    async def _call(self, method: str, request: object, timeout: float) -> object:
        if not self.available:
            raise RoutingUnavailable("routing unavailable (cooling down)")
        self.calls += 1
        try:
            return await getattr(self._stub(), method)(request, timeout=timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.UNIMPLEMENTED,
                grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.INTERNAL,
            ):
                self._failed(err)
                raise RoutingUnavailable(str(err.code())) from err
            raise

    # --- the optimizer -------------------------------------------------------

    async def plan(self, q: Question, settings: PlanSettings) -> Answer:
        if q.leave_at <= q.start_at:
            # The party's day (or the venue's) is over: nothing fits, and routing
            # rightly refuses a plan that ends as it starts.
            return Answer(
                (),
                tuple(
                    RoutedSkip(item.item_id, rpb.SKIP_REASON_NOT_ENOUGH_TIME, "no time left")
                    for item in q.items
                ),
            )
        request = rpb.PlanItineraryRequest(
            start=endpoint(self._facts.routable(q.start)),
            start_at=to_timestamp(q.start_at),
            leave_at=to_timestamp(q.leave_at),
            walking=walking(settings),
            include_routes=True,
        )
        for item in q.items:
            message = request.items.add(
                item_id=item.item_id,
                poi_id=item.poi_id,
                kind=int(item.kind),
                priority=(
                    rpb.PLAN_ITEM_PRIORITY_MUST_DO
                    if item.must_do
                    else rpb.PLAN_ITEM_PRIORITY_NICE_TO_DO
                ),
            )
            if item.window is not None:
                message.start_window.start.CopyFrom(to_timestamp(item.window.start))
                message.start_window.end.CopyFrom(to_timestamp(item.window.end))
            if item.duration_s is not None:
                message.duration.FromNanoseconds(round(item.duration_s * 1e9))
        reply = await self._call("PlanItinerary", request, PLAN_TIMEOUT_S)
        assert isinstance(reply, rpb.PlanItineraryResponse)
        stops = tuple(
            RoutedStop(
                item_id=s.item_id,
                arrive_at=_time(s.arrive_at),
                walk_s=_seconds(s.walk),
                wait_s=_seconds(s.wait),
                start_at=_time(s.start_at),
                end_at=_time(s.end_at),
                route_zones=self._zones(step.zone_id for step in s.route.steps),
            )
            for s in reply.stops
        )
        skipped = tuple(RoutedSkip(k.item_id, int(k.reason), k.detail) for k in reply.skipped)
        return Answer(stops, skipped)

    def _zones(self, zone_ids: Iterable[str]) -> tuple[str, ...]:
        found: list[str] = []
        for zone in zone_ids:
            if zone and self._facts.walked_zone(zone) and (not found or found[-1] != zone):
                found.append(zone)
        return tuple(found)

    # --- walks -----------------------------------------------------------------

    async def walk(self, origin: Place, poi_id: str, settings: PlanSettings) -> float | None:
        """Seconds of walking from `origin` to a point of interest, or None."""
        start = origin.node_id or origin.zone_id
        if not start:
            return None
        fact = self._facts.poi(poi_id)
        if fact is not None and origin.node_id and origin.node_id == fact.node_id:
            return 0.0
        key = (start, poi_id, settings.accessible, settings.walking_speed_mps)
        cached = self._walks.get(key)
        if cached is not None:
            self._walks.move_to_end(key)
            return cached
        request = rpb.GetRouteRequest(
            origin=endpoint(self._facts.routable(origin)),
            destination=rpb.Endpoint(poi_id=poi_id),
            walking=walking(settings, avoid_crowds=False),
        )
        try:
            reply = await self._call("GetRoute", request, CALL_TIMEOUT_S)
        except RoutingUnavailable:
            return None
        except grpc.aio.AioRpcError:
            return None  # NOT_FOUND: no route under the constraints
        assert isinstance(reply, rpb.GetRouteResponse)
        seconds = _seconds(reply.route.walking_time)
        self._walks[key] = seconds
        if len(self._walks) > WALK_CACHE:
            self._walks.popitem(last=False)
        return seconds

    def cached_walk(self, origin: Place, poi_id: str, settings: PlanSettings) -> float | None:
        """A walk already asked for, without asking routing."""
        start = origin.node_id or origin.zone_id
        return self._walks.get((start, poi_id, settings.accessible, settings.walking_speed_mps))

    async def walks(
        self, origin: Place, pois: Iterable[str], settings: PlanSettings
    ) -> dict[str, float]:
        wanted = sorted(set(pois))
        results = await asyncio.gather(*(self.walk(origin, p, settings) for p in wanted))
        return {p: w for p, w in zip(wanted, results, strict=True) if w is not None}

    # --- snacks ----------------------------------------------------------------

    async def snacks(
        self, origin: Place, settings: PlanSettings, now: datetime, max_walk_s: float
    ) -> tuple[SnackOption, ...]:
        start = origin.node_id or origin.zone_id
        if not start:
            return ()
        bucket = (start, int(now.timestamp() // 300))
        if bucket in self._snacks:
            return self._snacks[bucket]
        found: dict[str, SnackOption] = {}
        for tags in (["cold_drink"], ["snack"]):
            request = rpb.FindNearestRequest(
                origin=endpoint(self._facts.routable(origin)),
                tags=tags,
                open_at=to_timestamp(now),
                walking=walking(settings, avoid_crowds=False),
                max_results=3,
            )
            request.max_walking_time.FromNanoseconds(round(max_walk_s * 1e9))
            try:
                reply = await self._call("FindNearest", request, CALL_TIMEOUT_S)
            except (RoutingUnavailable, grpc.aio.AioRpcError):
                return ()
            assert isinstance(reply, rpb.FindNearestResponse)
            for r in reply.results:
                poi = r.point_of_interest.poi_id
                wait = _seconds(r.posted_wait) if r.HasField("posted_wait") else None
                found.setdefault(poi, SnackOption(poi, _seconds(r.walking_time), wait))
        options = tuple(sorted(found.values(), key=lambda o: (o.walk_s, o.poi_id)))
        if len(self._snacks) > 10_000:
            self._snacks.clear()
        self._snacks[bucket] = options
        return options

    # --- crowd-free routes ------------------------------------------------------

    async def route_option(
        self,
        origin: Place,
        poi_id: str,
        settings: PlanSettings,
        density: Callable[[str], float],
        now: datetime,
    ) -> RouteOption | None:
        """The usual route and routing's crowd-aware one, both costed with the
        same crowd estimate; None when there is nothing better."""
        if not (origin.node_id or origin.zone_id):
            return None
        routes: list[rpb.Route] = []
        for avoid in (False, True):
            request = rpb.GetRouteRequest(
                origin=endpoint(self._facts.routable(origin)),
                destination=rpb.Endpoint(poi_id=poi_id),
                walking=walking(settings, avoid_crowds=avoid),
                depart_at=to_timestamp(now),
            )
            try:
                reply = await self._call("GetRoute", request, CALL_TIMEOUT_S)
            except (RoutingUnavailable, grpc.aio.AioRpcError):
                return None
            assert isinstance(reply, rpb.GetRouteResponse)
            routes.append(reply.route)
        usual, aware = routes
        if list(usual.node_ids) == list(aware.node_ids):
            return None
        speed = _speed(usual)
        usual_s = _costed(usual, speed, density)
        aware_s = _costed(aware, speed, density)
        congested = tuple(
            dict.fromkeys(
                st.zone_id
                for st in usual.steps
                if self._facts.walked_zone(st.zone_id) and density(st.zone_id) >= 0.8
            )
        )
        return RouteOption(poi_id, usual_s, aware_s, tuple(aware.node_ids), congested)


def _speed(route: rpb.Route) -> float:
    walked = [s for s in route.steps if s.connector in (0, rpb.CONNECTOR_KIND_WALKWAY)]
    distance = sum(s.distance_m for s in walked)
    seconds = sum(_seconds(s.walking_time) for s in walked)
    return distance / seconds if distance > 0 and seconds > 0 else 1.2


def _costed(route: rpb.Route, speed: float, density: Callable[[str], float]) -> float:
    total = 0.0
    for step in route.steps:
        if step.connector in (0, rpb.CONNECTOR_KIND_WALKWAY, rpb.CONNECTOR_KIND_RAMP):
            base = step.distance_m / speed
        else:
            base = _seconds(step.walking_time)
        total += base * crowd_factor(density(step.zone_id))
    return total
