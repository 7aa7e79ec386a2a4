"""Checks of meaning beyond the graph: hours, zones, attractions, devices, demand."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.venue_model.errors import FieldPath, Problem
from services.venue_model.model import (
    AccessPointKind,
    CameraKind,
    EdgeKind,
    HourWeight,
    OpeningHours,
    Poi,
    PoiKind,
    ZoneKind,
    format_clock,
)
from services.venue_model.venue import Venue

# Ride edges carry the ride's time; the sum may differ from ride_minutes by rounding.
RIDE_TIME_TOLERANCE_S = 1.0


def venue_problems(v: Venue) -> list[Problem]:
    problems = []
    try:
        ZoneInfo(v.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(Problem(("venue", "timezone"), f"unknown IANA time zone {v.timezone!r}"))
    problems += _hours_problems(("venue", "hours"), v.hours)
    return problems


def _hours_problems(path: FieldPath, hours: OpeningHours) -> list[Problem]:
    if hours.closes <= hours.opens:
        return [
            Problem(
                (*path, "close"),
                f"closing time {format_clock(hours.closes)} must be later than opening time "
                f"{format_clock(hours.opens)} on the same day",
            )
        ]
    return []


def zone_problems(v: Venue) -> list[Problem]:
    parents = {z.id: z.parent for z in v.zones}
    problems = []
    reported: set[str] = set()
    for i, zone in enumerate(v.zones):
        chain = [zone.id]
        parent = zone.parent
        while parent is not None and parent not in chain:
            chain.append(parent)
            parent = parents[parent]
        # Report each cycle once, at its first zone in the file.
        if parent == zone.id and zone.id not in reported:
            reported.update(chain)
            loop = " > ".join([*chain, zone.id])
            problems.append(Problem(("zones", i, "parent"), f"zone parents form a cycle: {loop}"))
    if not problems:
        for i, zone in enumerate(v.zones):
            if zone.kind is ZoneKind.QUEUE and not v.readers_in(zone.id):
                problems.append(
                    Problem(
                        ("zones", i),
                        f"queue zone {zone.id!r} has no reader of its own; the queue twin "
                        "counts its line from this zone's readers",
                    )
                )
    return problems


def device_zone_problems(v: Venue) -> list[Problem]:
    """A device reports its node's zone; the file states it so a reader can see it."""
    problems = []
    groups: tuple[tuple[str, Sequence[tuple[str, str]]], ...] = (
        ("readers", [(d.node, d.zone) for d in v.readers]),
        ("access_points", [(d.node, d.zone) for d in v.access_points]),
        ("tills", [(d.node, d.zone) for d in v.tills]),
        ("cameras", [(d.node, d.zone) for d in v.cameras]),
    )
    for name, devices in groups:
        for i, (node_id, zone_id) in enumerate(devices):
            node_zone = v.node(node_id).zone
            if zone_id != node_zone:
                problems.append(
                    Problem(
                        (name, i, "zone"),
                        f"{zone_id!r} is not the zone of its node {node_id!r} ({node_zone!r})",
                    )
                )
    return problems


def poi_problems(v: Venue) -> list[Problem]:
    problems = []
    for i, poi in enumerate(v.pois):
        at: FieldPath = ("pois", i)
        node_zone = v.node(poi.node).zone
        allowed = {node_zone, *(z.id for z in v.zone_ancestors(node_zone))}
        if poi.zone not in allowed:
            problems.append(
                Problem(
                    (*at, "zone"),
                    f"{poi.zone!r} is neither the zone of node {poi.node!r} ({node_zone!r}) "
                    "nor one of its parents",
                )
            )
        hour_problems = _hours_problems((*at, "hours"), poi.hours)
        problems += hour_problems
        if not hour_problems and poi.kind is not PoiKind.HOTEL and not v.hours.contains(poi.hours):
            problems.append(
                Problem(
                    (*at, "hours"),
                    f"{poi.hours} lies outside the venue's hours {v.hours} "
                    "(only hotels may open when the venue is closed)",
                )
            )
        if poi.show is not None and not hour_problems:
            problems += _show_problems(at, poi)
        if poi.queue is not None:
            problems += _attraction_problems(v, at, poi)
        if poi.merchant is not None and not v.tills_for(poi.id):
            problems.append(
                Problem((*at, "merchant"), f"merchant {poi.id!r} has no till (tills[].merchant)")
            )
        if poi.hotel is not None:
            for j, room in enumerate(poi.hotel.rooms):
                door = v.node(v.access_point(room.door_access_point).node)
                if door.floor != room.floor:
                    problems.append(
                        Problem(
                            (*at, "hotel", "rooms", j, "floor"),
                            f"room is on floor {room.floor} but its door's node {door.id!r} "
                            f"is on floor {door.floor}",
                        )
                    )
    return problems


def _show_problems(at: FieldPath, poi: Poi) -> list[Problem]:
    assert poi.show is not None
    problems = []
    previous_end: float | None = None
    for j, start in enumerate(poi.show.performances):
        path: FieldPath = (*at, "show", "performances", j)
        end = start + poi.show.duration_minutes
        if not poi.hours.opens <= start or end > poi.hours.closes:
            problems.append(
                Problem(
                    path,
                    f"a performance from {format_clock(start)} for "
                    f"{poi.show.duration_minutes:g} min is not within the show's hours {poi.hours}",
                )
            )
        if previous_end is not None and start < previous_end:
            problems.append(
                Problem(
                    path,
                    f"starts at {format_clock(start)}, before the previous performance ends "
                    "(performances are in increasing order and do not overlap)",
                )
            )
        previous_end = end
    return problems


def _chain(v: Venue, start: str, end: str, kind: EdgeKind) -> list[str] | None:
    steps: dict[str, list[str]] = {}
    for edge in v.edges:
        if edge.kind is kind:
            steps.setdefault(edge.source, []).append(edge.target)
    path = [start]
    while path[-1] != end:
        nexts = steps.get(path[-1], [])
        if len(nexts) != 1 or nexts[0] in path:
            return None
        path.append(nexts[0])
    return path


def _attraction_problems(v: Venue, at: FieldPath, poi: Poi) -> list[Problem]:
    q = poi.queue
    assert q is not None
    problems = []
    qa: FieldPath = (*at, "queue")
    standby = v.access_point(q.standby_access_point).node
    boarding = v.access_point(q.boarding_access_point).node
    merge = (
        v.access_point(q.return_merge_access_point).node
        if q.return_merge_access_point is not None
        else None
    )
    if poi.node != standby:
        problems.append(
            Problem(
                (*at, "node"),
                f"an attraction's node is its standby entrance {standby!r}, not {poi.node!r}",
            )
        )
    points = {"standby entrance": standby, "boarding point": boarding, "exit node": q.exit_node}
    if merge is not None:
        points["return-time merge point"] = merge
    if len(set(points.values())) != len(points):
        problems.append(
            Problem(
                qa,
                "standby entrance, return-time merge point, boarding point and exit are "
                f"distinct nodes, but they are {points}",
            )
        )
        return problems
    if (q.return_time or q.virtual_queue) and merge is None:
        problems.append(
            Problem(
                (*qa, "return_merge_access_point"),
                "is required when return_time or virtual_queue is true",
            )
        )
    if q.vehicle_capacity > q.hourly_capacity:
        problems.append(
            Problem(
                (*qa, "vehicle_capacity"),
                f"{q.vehicle_capacity} guests per dispatch exceeds the hourly capacity "
                f"{q.hourly_capacity}",
            )
        )
    line = _chain(v, standby, boarding, EdgeKind.QUEUE)
    if line is None:
        problems.append(
            Problem(
                (*qa, "standby_access_point"),
                f"no single chain of queue edges leads from the standby entrance {standby!r} "
                f"to the boarding point {boarding!r}",
            )
        )
    else:
        stray = [n for n in line[:-1] if v.node(n).zone != q.queue_zone]
        if stray:
            problems.append(
                Problem(
                    (*qa, "queue_zone"),
                    f"line node {stray[0]!r} is not in the queue zone {q.queue_zone!r}",
                )
            )
    if merge is not None and _chain(v, merge, boarding, EdgeKind.QUEUE) is None:
        problems.append(
            Problem(
                (*qa, "return_merge_access_point"),
                f"no single chain of queue edges leads from the merge point {merge!r} "
                f"to the boarding point {boarding!r}",
            )
        )
    ride = _chain(v, boarding, q.exit_node, EdgeKind.RIDE)
    if ride is None:
        problems.append(
            Problem(
                (*qa, "exit_node"),
                f"no single chain of ride edges leads from the boarding point {boarding!r} "
                f"to the exit {q.exit_node!r}",
            )
        )
    else:
        problems += _ride_time_problems(v, qa, q.ride_seconds, ride)
    problems += _stray_access_points(v, poi)
    problems += _camera_problems(v, poi, ride or [])
    return problems


def _ride_time_problems(
    v: Venue, qa: FieldPath, ride_seconds: float, ride: list[str]
) -> list[Problem]:
    by_pair = {(e.source, e.target): e for e in v.edges if e.kind is EdgeKind.RIDE}
    total = sum(by_pair[pair].traverse_seconds or 0.0 for pair in itertools.pairwise(ride))
    if not math.isclose(total, ride_seconds, abs_tol=RIDE_TIME_TOLERANCE_S):
        return [
            Problem(
                (*qa, "ride_minutes"),
                f"{ride_seconds / 60:g} min, but the ride edges from boarding to exit take "
                f"{total:g} s in all",
            )
        ]
    return []


def _stray_access_points(v: Venue, poi: Poi) -> list[Problem]:
    q = poi.queue
    assert q is not None
    expected = {
        AccessPointKind.RIDE_STANDBY: q.standby_access_point,
        AccessPointKind.RIDE_BOARDING: q.boarding_access_point,
        AccessPointKind.RIDE_RETURN_MERGE: q.return_merge_access_point,
    }
    index = {a.id: i for i, a in enumerate(v.access_points)}
    problems = []
    for ap in v.access_points_for(poi.id):
        if ap.kind in expected and expected[ap.kind] != ap.id:
            problems.append(
                Problem(
                    ("access_points", index[ap.id], "attraction"),
                    f"a {ap.kind} access point of {poi.id!r}, but the attraction's queue block "
                    f"names {expected[ap.kind]!r}",
                )
            )
    return problems


def _camera_problems(v: Venue, poi: Poi, ride: list[str]) -> list[Problem]:
    q = poi.queue
    assert q is not None
    index = {c.id: i for i, c in enumerate(v.cameras)}
    problems = []
    for camera in v.cameras_for(poi.id):
        if camera.kind is not CameraKind.RIDE:
            continue
        at: FieldPath = ("cameras", index[camera.id])
        if camera.boarding_access_point != q.boarding_access_point:
            problems.append(
                Problem(
                    (*at, "boarding_access_point"),
                    f"{poi.id!r} boards at {q.boarding_access_point!r}",
                )
            )
        if ride and camera.node not in ride:
            problems.append(
                Problem((*at, "node"), f"{camera.node!r} is not on the ride of {poi.id!r}")
            )
        if camera.delay_seconds is not None and camera.delay_seconds > q.ride_seconds:
            problems.append(
                Problem(
                    (*at, "delay_seconds"),
                    f"{camera.delay_seconds:g} s is longer than the ride ({q.ride_seconds:g} s)",
                )
            )
    return problems


def demand_problems(v: Venue) -> list[Problem]:
    d = v.demand
    problems: list[Problem] = []
    for name, weights in (
        ("arrivals_by_hour", d.arrivals_by_hour),
        ("departures_by_hour", d.departures_by_hour),
    ):
        problems += _hour_problems(v, name, weights)
    totals: tuple[tuple[str, float], ...] = (
        ("arrivals_by_hour", sum(h.weight for h in d.arrivals_by_hour)),
        ("departures_by_hour", sum(h.weight for h in d.departures_by_hour)),
        ("party_sizes", sum(p.weight for p in d.party_sizes)),
        ("archetypes", sum(a.weight for a in d.archetypes)),
    )
    for name, total in totals:
        if total <= 0:
            problems.append(Problem(("demand", name), "weights add up to zero"))
    listed = {p.attraction for p in d.popularity}
    for i, poi in enumerate(v.pois):
        if poi.queue is not None and poi.id not in listed:
            problems.append(
                Problem(
                    ("pois", i),
                    f"attraction {poi.id!r} has no weight in demand.popularity",
                )
            )
    return problems


def _hour_problems(v: Venue, name: str, weights: Sequence[HourWeight]) -> list[Problem]:
    problems = []
    for i, entry in enumerate(weights):
        # The hour is the span hour:00-hour:59; it must overlap the opening hours.
        if not (v.hours.opens < (entry.hour + 1) * 60 and entry.hour * 60 < v.hours.closes):
            problems.append(
                Problem(
                    ("demand", name, i, "hour"),
                    f"hour {entry.hour} is outside the venue's hours {v.hours}",
                )
            )
    return problems
