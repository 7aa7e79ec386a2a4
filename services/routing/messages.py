"""Venue parts, routes and plans as protobuf messages."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.routing.calendar import at_minute, period
from services.routing.graph import CostModel
from services.routing.planner import Plan, SkipReason, TaskKind
from services.routing.routes import Route
from services.routing.waits import WaitSource
from services.venue_model import EdgeKind, Poi, PoiKind, Venue, VenueKind, ZoneKind
from venue.common.v1 import common_pb2
from venue.routing.v1 import routing_pb2 as pb

CONNECTOR = {
    EdgeKind.WALKWAY: pb.CONNECTOR_KIND_WALKWAY,
    EdgeKind.RAMP: pb.CONNECTOR_KIND_RAMP,
    EdgeKind.STAIRS: pb.CONNECTOR_KIND_STAIRS,
    EdgeKind.ESCALATOR: pb.CONNECTOR_KIND_ESCALATOR,
    EdgeKind.ELEVATOR: pb.CONNECTOR_KIND_ELEVATOR,
}
_POI_KIND = {
    PoiKind.ATTRACTION: pb.POI_KIND_ATTRACTION,
    PoiKind.SHOW: pb.POI_KIND_SHOW,
    PoiKind.SHOP: pb.POI_KIND_SHOP,
    PoiKind.FOOD: pb.POI_KIND_QUICK_SERVICE,
    PoiKind.DRINK: pb.POI_KIND_QUICK_SERVICE,
    PoiKind.RESTROOM: pb.POI_KIND_RESTROOM,
    PoiKind.ENTRANCE: pb.POI_KIND_ENTRANCE,
    PoiKind.EXIT: pb.POI_KIND_EXIT,
    PoiKind.FIRST_AID: pb.POI_KIND_FIRST_AID,
    PoiKind.HOTEL: pb.POI_KIND_HOTEL,
}
STEP_CACHE_SIZE = 100_000
# Food places that take reservations say so with this tag in the venue file.
TABLE_SERVICE_TAG = "table_service"

TASK_KIND: dict[int, TaskKind] = {
    pb.PLAN_ITEM_KIND_ATTRACTION: TaskKind.ATTRACTION,
    pb.PLAN_ITEM_KIND_BOOKED_ATTRACTION: TaskKind.BOOKED_ATTRACTION,
    pb.PLAN_ITEM_KIND_MEAL: TaskKind.MEAL,
    pb.PLAN_ITEM_KIND_SHOW: TaskKind.SHOW,
    pb.PLAN_ITEM_KIND_VISIT: TaskKind.VISIT,
}
_TASK_KIND_PB: dict[TaskKind, Any] = {v: k for k, v in TASK_KIND.items()}
_SKIP = {
    SkipReason.NOT_ENOUGH_TIME: pb.SKIP_REASON_NOT_ENOUGH_TIME,
    SkipReason.NOT_OPERATING: pb.SKIP_REASON_NOT_OPERATING,
    SkipReason.UNREACHABLE: pb.SKIP_REASON_UNREACHABLE,
    SkipReason.WINDOW_CONFLICT: pb.SKIP_REASON_WINDOW_CONFLICT,
    SkipReason.WINDOW_PASSED: pb.SKIP_REASON_WINDOW_PASSED,
}
_WAIT_SOURCE = {
    WaitSource.FORECAST: pb.WAIT_SOURCE_FORECAST,
    WaitSource.ESTIMATE: pb.WAIT_SOURCE_ESTIMATE,
    WaitSource.FIXED: pb.WAIT_SOURCE_FIXED,
}


def duration(seconds: float) -> Duration:
    nanos = round(seconds * 1e9)
    return Duration(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)


def seconds_of(value: Duration) -> float:
    return value.seconds + value.nanos / 1e9


def timestamp(value: datetime | float) -> Timestamp:
    epoch = value.timestamp() if isinstance(value, datetime) else value
    nanos = round(epoch * 1e9)
    return Timestamp(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)


def poi_kind(poi: Poi) -> int:
    if poi.kind is PoiKind.FOOD and TABLE_SERVICE_TAG in poi.tags:
        return pb.POI_KIND_RESTAURANT
    return _POI_KIND.get(poi.kind, pb.POI_KIND_OTHER)


def time_range(start: datetime, end: datetime) -> common_pb2.TimeRange:
    return common_pb2.TimeRange(start=timestamp(start), end=timestamp(end))


def map_point(venue: Venue, node_id: str) -> pb.MapPoint:
    node = venue.node(node_id)
    return pb.MapPoint(x_m=node.x, y_m=node.y, floor=node.floor)


def poi_pb(venue: Venue, poi: Poi, day: date, step_free: bool) -> pb.PointOfInterest:
    message = pb.PointOfInterest(
        poi_id=poi.id,
        name=poi.name,
        kind=poi_kind(poi),  # type: ignore[arg-type]
        tags=sorted(poi.tags),
        place=common_pb2.Place(zone_id=poi.zone, node_id=poi.node),
        position=map_point(venue, poi.node),
        open_periods=[time_range(*period(venue, day, poi.hours))],
        accessible=step_free,
        merchant_id=poi.id if poi.merchant is not None else "",
    )
    if poi.queue is not None:
        queue = poi.queue
        message.attraction.CopyFrom(
            pb.AttractionInfo(
                min_height_cm=queue.min_height_cm or 0,
                hourly_capacity=queue.hourly_capacity,
                ride_duration=duration(queue.ride_seconds),
                vehicle_size=queue.vehicle_capacity,
                offers_return_time=queue.return_time,
                offers_virtual_queue=queue.virtual_queue,
                has_ride_photo=any(c.attraction == poi.id for c in venue.cameras_for(poi.id)),
            )
        )
    if poi.show is not None:
        message.show.CopyFrom(
            pb.ShowInfo(
                show_times=[timestamp(at_minute(venue, day, m)) for m in poi.show.performances],
                show_duration=duration(poi.show.duration_minutes * 60.0),
            )
        )
    return message


def floor_name(venue: Venue, level: int) -> str:
    for zone in venue.zones:
        if zone.kind is ZoneKind.FLOOR and zone.floor == level:
            return zone.name
    return "Ground" if level == 0 else f"Level {level}"


def venue_pb(
    venue: Venue, day: date, sha256: str, default_speed: float, include_graph: bool
) -> pb.Venue:
    nodes = venue.nodes
    message = pb.Venue(
        venue_id=venue.id,
        name=venue.name,
        kind=pb.VENUE_KIND_MALL if venue.kind is VenueKind.MALL else pb.VENUE_KIND_THEME_PARK,
        time_zone=venue.timezone,
        currency=venue.currency,
        opening_hours=[time_range(*period(venue, day, venue.hours))],
        floors=[pb.Floor(level=f, name=floor_name(venue, f)) for f in venue.floors()],
        map_min=pb.MapPoint(
            x_m=min(n.x for n in nodes), y_m=min(n.y for n in nodes), floor=min(venue.floors())
        ),
        map_max=pb.MapPoint(
            x_m=max(n.x for n in nodes), y_m=max(n.y for n in nodes), floor=max(venue.floors())
        ),
        default_walking_speed_mps=default_speed,
        definition_sha256=sha256,
    )
    if include_graph:
        for node in venue.graph_nodes():
            message.nodes.append(
                pb.MapNode(
                    node_id=node.id,
                    position=pb.MapPoint(x_m=node.x, y_m=node.y, floor=node.floor),
                    zone_id=node.zone,
                )
            )
        for edge in venue.edges:
            connector = CONNECTOR.get(edge.kind)
            if connector is None:
                continue
            message.edges.append(
                pb.MapEdge(
                    source_node_id=edge.source,
                    target_node_id=edge.target,
                    length_m=edge.length_m,
                    connector=connector,
                    one_way=edge.one_way,
                )
            )
    return message


def route_pb(route: Route) -> pb.Route:
    """The route without its times of day (set per request by `timed`)."""
    return pb.Route(
        node_ids=route.node_ids,
        steps=[
            pb.RouteStep(
                source_node_id=s.source,
                target_node_id=s.target,
                distance_m=s.distance_m,
                walking_time=duration(s.seconds),
                connector=CONNECTOR[s.kind],
                floor=s.floor,
                zone_id=s.zone,
            )
            for s in route.steps
        ],
        distance_m=route.distance_m,
        walking_time=duration(route.seconds),
        crowd_delay=duration(route.crowd_delay_seconds),
    )


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited field on the wire: tag, length, bytes."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class RouteEncoder:
    """Routes straight to wire bytes from per-arc pieces encoded once per cost model.

    A route is its nodes, its steps and three totals; protobuf fields may be
    concatenated in any order, so the bytes of a route are the cached bytes of its
    nodes and arcs followed by the totals. Equal to `route_pb(router.describe(...))`.
    """

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        # Per graph, each node's bytes by node index; per cost model, each arc's
        # step bytes by arc index (None until a route first uses it).
        self._nodes: dict[int, list[bytes]] = {}
        self._steps: dict[Any, list[bytes | None]] = {}
        self._step_count = 0

    def _node_pieces(self, model: CostModel) -> list[bytes]:
        graph = model.graph
        found = self._nodes.get(id(graph))
        if found is None:
            found = self._nodes[id(graph)] = [_field(1, n.encode()) for n in graph.node_ids]
        return found

    def _step_pieces(self, model: CostModel) -> list[bytes | None]:
        found = self._steps.get(model.key)
        if found is None:
            arcs = len(model.graph.arc_edges)
            if self._step_count + arcs > STEP_CACHE_SIZE:
                # Old speeds and crowd versions: start again rather than track use.
                self._steps.clear()
                self._step_count = 0
            found = self._steps[model.key] = [None] * arcs
            self._step_count += arcs
        return found

    def _step(self, model: CostModel, arc: int) -> bytes:
        graph = model.graph
        target = self._venue.node(graph.node_ids[graph.arc_target[arc]])
        edge = graph.arc_edges[arc]
        step = pb.RouteStep(
            source_node_id=graph.node_ids[graph.arc_source[arc]],
            target_node_id=target.id,
            distance_m=edge.length_m,
            walking_time=duration(float(model.weights[arc])),
            connector=CONNECTOR[edge.kind],
            floor=target.floor,
            zone_id=target.zone,
        )
        return _field(2, step.SerializeToString())

    def encode(self, model: CostModel, path: Sequence[int]) -> tuple[bytes, float]:
        """The serialized Route (without times of day) and its walking seconds."""
        arcs = model.arcs_of(path)
        graph = model.graph
        seconds = math.fsum(model.weights[arcs].tolist())
        base = math.fsum(model.base[arcs].tolist())
        totals = pb.Route(
            distance_m=math.fsum(graph.arc_length[arcs].tolist()),
            walking_time=duration(seconds),
            crowd_delay=duration(max(0.0, seconds - base)),
        )
        nodes = self._node_pieces(model)
        steps = self._step_pieces(model)
        parts = [nodes[i] for i in path]
        for arc in arcs:
            piece = steps[arc]
            if piece is None:
                piece = steps[arc] = self._step(model, arc)
            parts.append(piece)
        parts.append(totals.SerializeToString())
        return b"".join(parts), seconds


def timed(message: pb.Route, route_seconds: float, depart: datetime) -> pb.Route:
    message.depart_at.CopyFrom(timestamp(depart))
    message.arrive_at.CopyFrom(timestamp(depart.timestamp() + route_seconds))
    return message


def plan_pb(
    plan: Plan,
    item_ids: list[str],
    poi_ids: list[str],
    kinds: list[TaskKind],
    distances: list[float],
    routes: list[pb.Route | None],
    finish_distance: float,
) -> pb.PlanItineraryResponse:
    reply = pb.PlanItineraryResponse(
        total_walk=duration(plan.total_walk),
        total_wait=duration(plan.total_wait),
        total_distance_m=math.fsum([*distances, finish_distance]),
        finish_at=timestamp(plan.finish_at),
        finish_walk=duration(plan.finish_walk),
        optimal=plan.exact,
    )
    for k, visit in enumerate(plan.visits):
        stop = pb.PlannedStop(
            item_id=item_ids[visit.task],
            poi_id=poi_ids[visit.task],
            kind=_TASK_KIND_PB[kinds[visit.task]],
            arrive_at=timestamp(visit.arrive),
            walk=duration(visit.walk_seconds),
            walk_distance_m=distances[k],
            wait=duration(visit.wait_seconds),
            start_at=timestamp(visit.start),
            end_at=timestamp(visit.end),
            wait_source=_WAIT_SOURCE[visit.source],
        )
        route = routes[k]
        if route is not None:
            stop.route.CopyFrom(route)
        reply.stops.append(stop)
    for skip in plan.skipped:
        reply.skipped.append(
            pb.SkippedItem(
                item_id=item_ids[skip.task],
                poi_id=poi_ids[skip.task],
                reason=_SKIP[skip.reason],
                detail=skip.detail,
            )
        )
    return reply


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
