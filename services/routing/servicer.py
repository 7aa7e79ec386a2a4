"""The routing gRPC servicer: parse and validate, call the router or the planner,
answer. Stateless: nothing a caller sends is stored."""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from datetime import date, datetime, timedelta
from typing import Any

import grpc

from services.platform import paging, validation
from services.platform.clock import VenueClock
from services.platform.errors import InvalidArgument, NotFound
from services.routing import messages
from services.routing.calendar import is_open, period, venue_day
from services.routing.crowding import CrowdBoard
from services.routing.itinerary import Request, Wish, build_problem
from services.routing.planner import Plan, TaskKind, solve
from services.routing.routes import (
    MAX_WALKING_SPEED_MPS,
    MIN_WALKING_SPEED_MPS,
    NotRoutable,
    Router,
    Walking,
)
from services.routing.waits import QueueBook
from services.venue_model import Poi, UnknownIdError, Venue
from venue.common.v1 import common_pb2
from venue.routing.v1 import routing_pb2 as pb
from venue.routing.v1 import routing_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

# Crowding is a now-signal: it shapes walks that start within this of now.
CROWD_HORIZON = timedelta(minutes=20)
MAX_PLAN_ITEMS = 40
MAX_TAGS = 10
NEAREST_DEFAULT = 5
NEAREST_MAX = 50
ROUTE_CACHE_SIZE = 8192
# Points of interest as messages, per day (a few hundred a day in a big venue).
POI_CACHE_SIZE = 4096
# Candidate lists of FindNearest by kind and tags (callers choose the tags).
CANDIDATE_CACHE_SIZE = 1024
_ENDPOINT_KINDS = {"node_id": "node", "poi_id": "point of interest", "zone_id": "zone"}


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(
        self,
        venue: Venue,
        router: Router,
        crowd: CrowdBoard,
        book: QueueBook,
        clock: VenueClock,
        sha256: str,
    ) -> None:
        self._venue = venue
        self._router = router
        self._crowd = crowd
        self._book = book
        self._clock = clock
        self._sha256 = sha256
        # Serialized routes (without times of day) by cost model and endpoints.
        self._routes: OrderedDict[tuple[Any, ...], tuple[bytes, float]] = OrderedDict()
        self._encoder = messages.RouteEncoder(venue)
        self._poi_cache: dict[tuple[str, date], bytes] = {}
        self._nearest_candidates: dict[tuple[int, frozenset[str]], tuple[Poi, ...]] = {}

    # --- parsing -------------------------------------------------------------------

    def _endpoint(self, endpoint: pb.Endpoint, field: str) -> str:
        which = endpoint.WhichOneof("target")
        if which is None:
            raise InvalidArgument(field, "required: a node_id, poi_id or zone_id")
        name = f"{field}.{which}"
        value = validation.ref(getattr(endpoint, which), name)
        try:
            if which == "node_id":
                return self._router.routable_node(value)
            if which == "poi_id":
                return self._router.node_of_poi(value)
            return self._router.node_of_zone(value)
        except UnknownIdError:
            raise NotFound(_ENDPOINT_KINDS[which], value) from None
        except NotRoutable:
            raise InvalidArgument(
                name, "not on the walkway graph (inside a line or a ride)"
            ) from None

    def _walking(self, options: pb.WalkingOptions, field: str = "walking") -> Walking:
        speed = options.walking_speed_mps
        if speed == 0:
            speed = self._router.default_speed
        elif not (math.isfinite(speed) and MIN_WALKING_SPEED_MPS <= speed <= MAX_WALKING_SPEED_MPS):
            raise InvalidArgument(
                f"{field}.walking_speed_mps",
                f"between {MIN_WALKING_SPEED_MPS} and {MAX_WALKING_SPEED_MPS} m/s, or 0 for "
                "the default",
            )
        return Walking(speed, options.accessible, options.avoid_crowds)

    def _day(self, message: common_pb2.VenueDate, has: bool, field: str = "date") -> date:
        if not has:
            return venue_day(self._venue, self._clock.now())
        try:
            day = date(message.year, message.month, message.day)
        except ValueError:
            raise InvalidArgument(field, "not a calendar date") from None
        if not 2000 <= day.year < 2100:
            raise InvalidArgument(f"{field}.year", "outside 2000-2100")
        return day

    def _time(self, value: Any, field: str) -> datetime:
        parsed = validation.timestamp(value, field, required=False)
        return parsed if parsed is not None else self._clock.now()

    def _crowded(self, depart: datetime) -> bool:
        return abs(depart - self._clock.now()) <= CROWD_HORIZON

    def _poi(self, poi_id: str, field: str) -> Poi:
        value = validation.ref(poi_id, field)
        try:
            return self._venue.poi(value)
        except UnknownIdError:
            raise NotFound("point of interest", value) from None

    def _poi_pb(self, poi: Poi, day: date) -> pb.PointOfInterest:
        return messages.poi_pb(self._venue, poi, day, self._router.is_step_free(poi))

    def _poi_bytes(self, poi: Poi, day: date) -> bytes:
        """The serialized point of interest on a day: the venue file never changes
        while the service runs, so neither does this."""
        key = (poi.id, day)
        found = self._poi_cache.get(key)
        if found is None:
            if len(self._poi_cache) >= POI_CACHE_SIZE:
                self._poi_cache.clear()
            found = self._poi_cache[key] = self._poi_pb(poi, day).SerializeToString()
        return found

    def _candidates(self, kind: int, tags: frozenset[str]) -> tuple[Poi, ...]:
        """The points of interest of a kind with all of the tags, in venue order."""
        key = (kind, tags)
        found = self._nearest_candidates.get(key)
        if found is None:
            found = tuple(
                p
                for p in self._venue.pois
                if (not kind or messages.poi_kind(p) == kind) and tags <= p.tags
            )
            if len(self._nearest_candidates) >= CANDIDATE_CACHE_SIZE:
                self._nearest_candidates.clear()
            self._nearest_candidates[key] = found
        return found

    # --- the venue ----------------------------------------------------------------

    async def GetVenue(self, request: pb.GetVenueRequest, context: Context) -> pb.GetVenueResponse:
        day = self._day(request.date, request.HasField("date"))
        return pb.GetVenueResponse(
            venue=messages.venue_pb(
                self._venue, day, self._sha256, self._router.default_speed, request.include_graph
            )
        )

    async def ListPointsOfInterest(
        self, request: pb.ListPointsOfInterestRequest, context: Context
    ) -> pb.ListPointsOfInterestResponse:
        kinds = set()
        for i, kind in enumerate(request.kinds):
            kinds.add(validation.enum_value(kind, pb.PoiKind, f"kinds[{i}]"))
        tags = _tags(request.tags)
        zones: set[str] | None = None
        if request.zone_id:
            zone_id = validation.ref(request.zone_id, "zone_id")
            try:
                self._venue.zone(zone_id)
            except UnknownIdError:
                raise NotFound("zone", zone_id) from None
            zones = _zone_and_descendants(self._venue, zone_id)
        day = self._day(request.date, request.HasField("date"))
        size = paging.page_size(request.page.page_size)
        after = paging.decode("pois", request.page.page_token)
        start = 0
        if after is not None:
            if len(after) != 1 or not isinstance(after[0], int) or after[0] < 0:
                raise InvalidArgument("page.page_token", "not a token from this list")
            start = after[0] + 1
        found: list[tuple[int, Poi]] = []
        for index in range(start, len(self._venue.pois)):
            poi = self._venue.pois[index]
            if kinds and messages.poi_kind(poi) not in kinds:
                continue
            if not tags <= poi.tags:
                continue
            if zones is not None and poi.zone not in zones:
                continue
            found.append((index, poi))
            if len(found) > size:
                break
        return pb.ListPointsOfInterestResponse(
            points_of_interest=[self._poi_pb(poi, day) for _, poi in found[:size]],
            next_page_token=paging.next_token("pois", found, size, lambda item: [item[0]]),
        )

    async def GetPointOfInterest(
        self, request: pb.GetPointOfInterestRequest, context: Context
    ) -> pb.GetPointOfInterestResponse:
        poi = self._poi(request.poi_id, "poi_id")
        day = self._day(request.date, request.HasField("date"))
        return pb.GetPointOfInterestResponse(point_of_interest=self._poi_pb(poi, day))

    # --- routes -------------------------------------------------------------------

    def _route(
        self, origin: str, destination: str, walking: Walking, crowded: bool
    ) -> tuple[bytes, float] | None:
        model = self._router.model(walking, crowded)
        key = (model.key, origin, destination)
        cached = self._routes.get(key)
        if cached is not None:
            return cached
        path = self._router.path_in(model, origin, destination)
        if path is None:
            return None
        entry = self._encoder.encode(model, path)
        self._routes[key] = entry
        if len(self._routes) > ROUTE_CACHE_SIZE:
            self._routes.popitem(last=False)
        return entry

    async def GetRoute(self, request: pb.GetRouteRequest, context: Context) -> pb.GetRouteResponse:
        origin = self._endpoint(request.origin, "origin")
        destination = self._endpoint(request.destination, "destination")
        walking = self._walking(request.walking)
        depart = self._time(request.depart_at, "depart_at")
        found = self._route(origin, destination, walking, self._crowded(depart))
        if found is None:
            raise NotFound("step-free route" if walking.step_free else "route")
        data, seconds = found
        reply = pb.GetRouteResponse()
        reply.route.MergeFromString(data)
        messages.timed(reply.route, seconds, depart)
        return reply

    async def FindNearest(
        self, request: pb.FindNearestRequest, context: Context
    ) -> pb.FindNearestResponse:
        origin = self._endpoint(request.origin, "origin")
        kind = request.kind
        if kind:
            validation.enum_value(kind, pb.PoiKind, "kind")
        tags = _tags(request.tags)
        if not kind and not tags:
            raise InvalidArgument("kind", "give a kind or at least one tag")
        open_at = self._time(request.open_at, "open_at")
        walking = self._walking(request.walking)
        if request.max_results < 0:
            raise InvalidArgument("max_results", "must not be negative")
        limit = min(request.max_results or NEAREST_DEFAULT, NEAREST_MAX)
        max_seconds = None
        if request.HasField("max_walking_time"):
            max_seconds = messages.seconds_of(request.max_walking_time)
            if max_seconds <= 0:
                raise InvalidArgument("max_walking_time", "must be positive")
        venue, book = self._venue, self._book
        candidates = self._candidates(kind, tags)

        def open_then(poi: Poi) -> bool:
            if not is_open(venue, poi.hours, open_at):
                return False
            return poi.queue is None or book.operating_at(poi.id, open_at.timestamp())

        found = self._router.nearest(
            origin,
            candidates,
            walking,
            self._crowded(self._clock.now()),
            limit,
            max_seconds,
            open_then,
        )
        day = venue_day(venue, open_at)
        reply = pb.FindNearestResponse()
        for near in found:
            result = pb.NearbyPointOfInterest(
                walking_time=messages.duration(near.seconds), distance_m=near.distance_m
            )
            result.point_of_interest.MergeFromString(self._poi_bytes(near.poi, day))
            posted = book.posted.get(near.poi.id)
            if posted is not None and posted.seconds is not None:
                result.posted_wait.CopyFrom(messages.duration(posted.seconds))
            reply.results.append(result)
        return reply

    # --- plans --------------------------------------------------------------------

    def _window(self, item: pb.PlanItem, field: str) -> tuple[float, float] | None:
        if not item.HasField("start_window"):
            return None
        window = item.start_window
        start = validation.timestamp(window.start, f"{field}.start", required=False)
        end = validation.timestamp(window.end, f"{field}.end", required=False)
        if start is None and end is None:
            return None
        lo = start.timestamp() if start is not None else -math.inf
        hi = end.timestamp() if end is not None else math.inf
        if lo >= hi:
            raise InvalidArgument(field, "start must be before end")
        return lo, hi

    def _wishes(self, items: Any) -> tuple[Wish, ...]:
        if len(items) > MAX_PLAN_ITEMS:
            raise InvalidArgument("items", f"at most {MAX_PLAN_ITEMS} items")
        wishes: list[Wish] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            field = f"items[{i}]"
            item_id = validation.text(item.item_id, f"{field}.item_id", max_len=100)
            if item_id in seen:
                raise InvalidArgument(f"{field}.item_id", "used by another item")
            seen.add(item_id)
            poi = self._poi(item.poi_id, f"{field}.poi_id")
            kind = messages.TASK_KIND[
                validation.enum_value(item.kind, pb.PlanItemKind, f"{field}.kind")
            ]
            priority = validation.enum_value(
                item.priority, pb.PlanItemPriority, f"{field}.priority"
            )
            if kind in (TaskKind.ATTRACTION, TaskKind.BOOKED_ATTRACTION) and poi.queue is None:
                raise InvalidArgument(f"{field}.kind", "this point of interest has no line")
            if kind is TaskKind.SHOW and poi.show is None:
                raise InvalidArgument(f"{field}.kind", "this point of interest has no performances")
            window = self._window(item, f"{field}.start_window")
            if kind is TaskKind.BOOKED_ATTRACTION and window is None:
                raise InvalidArgument(f"{field}.start_window", "required for a booked attraction")
            length: float | None = None
            if item.HasField("duration"):
                length = messages.seconds_of(item.duration)
                if not 0 < length <= 12 * 3600:
                    raise InvalidArgument(f"{field}.duration", "between 0 and 12 hours")
            wishes.append(
                Wish(
                    item_id,
                    poi,
                    kind,
                    priority == pb.PLAN_ITEM_PRIORITY_MUST_DO,
                    window,
                    length,
                )
            )
        return tuple(wishes)

    async def PlanItinerary(
        self, request: pb.PlanItineraryRequest, context: Context
    ) -> pb.PlanItineraryResponse:
        start_node = self._endpoint(request.start, "start")
        finish_node = (
            self._endpoint(request.finish, "finish") if request.HasField("finish") else None
        )
        start_at = self._time(request.start_at, "start_at")
        leave = validation.timestamp(request.leave_at, "leave_at", required=False)
        if leave is None:
            # After closing this is an empty plan whose skips say why, not an error.
            closing = period(self._venue, venue_day(self._venue, start_at), self._venue.hours)[1]
            leave = max(closing, start_at)
        elif leave <= start_at:
            raise InvalidArgument("leave_at", "must be after start_at")
        walking = self._walking(request.walking)
        wishes = self._wishes(request.items)
        problem = build_problem(
            self._venue,
            self._book,
            self._router,
            Request(start_node, start_at, leave, finish_node, walking, wishes),
        )
        # The search is CPU-bound: keep the event loop answering routes meanwhile.
        plan: Plan = await asyncio.to_thread(solve, problem)
        return self._plan_reply(plan, wishes, start_node, finish_node, walking, request)

    def _plan_reply(
        self,
        plan: Plan,
        wishes: tuple[Wish, ...],
        start_node: str,
        finish_node: str | None,
        walking: Walking,
        request: pb.PlanItineraryRequest,
    ) -> pb.PlanItineraryResponse:
        distances: list[float] = []
        routes: list[pb.Route | None] = []
        here = start_node
        for visit in plan.visits:
            there = wishes[visit.task].poi.node
            leg = self._router.route(here, there, walking, crowded=False)
            distances.append(leg.distance_m if leg is not None else 0.0)
            if request.include_routes and leg is not None:
                route = messages.route_pb(leg)
                depart = datetime.fromtimestamp(visit.arrive - leg.seconds).astimezone()
                routes.append(messages.timed(route, leg.seconds, depart))
            else:
                routes.append(None)
            here = there
        finish_distance = 0.0
        if finish_node is not None:
            leg = self._router.route(here, finish_node, walking, crowded=False)
            finish_distance = leg.distance_m if leg is not None else 0.0
        return messages.plan_pb(
            plan,
            [w.item_id for w in wishes],
            [w.poi.id for w in wishes],
            [w.kind for w in wishes],
            distances,
            routes,
            finish_distance,
        )


def _tags(tags: Any) -> frozenset[str]:
    if len(tags) > MAX_TAGS:
        raise InvalidArgument("tags", f"at most {MAX_TAGS}")
    return frozenset(validation.text(t, f"tags[{i}]", max_len=50) for i, t in enumerate(tags))


def _zone_and_descendants(venue: Venue, zone_id: str) -> set[str]:
    found = {zone_id}
    frontier = [zone_id]
    while frontier:
        for child in venue.zone_children(frontier.pop()):
            if child.id not in found:
                found.add(child.id)
                frontier.append(child.id)
    return found
