"""The lines of a venue, read from its definition: nameplate figures, the access
points and queue zone of each line, and the walk from each entrance to the
load (the priors the twin starts the day with).

Only the physical venue is read here; `venue.demand` is the simulated world's
and never touched.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from services.queue.line import LineSpec
from services.queue.twin import Hours
from services.venue_model import AccessPointKind, EdgeKind, Venue

# Guests shuffle along a queue slower than they walk a path.
QUEUE_WALK_SPEED = 1.0


@dataclass(frozen=True)
class VenueLines:
    specs: dict[str, LineSpec]
    hours: dict[str, Hours]
    # Access point id -> (attraction id, kind of access point).
    points: dict[str, tuple[str, AccessPointKind]]
    # Queue zone id -> attraction id.
    zones: dict[str, str]
    # Venue rules the booking side needs.
    slot_minutes: int
    early_grace_minutes: int
    late_grace_minutes: int
    max_holdings: int
    return_share: float
    has_gates: bool
    timezone: str


def _walk(venue: Venue, nodes: tuple[str, ...]) -> float:
    if len(nodes) < 2:
        return 0.0
    arcs = {(a.source, a.target): a.edge for a in venue.graph_edges((EdgeKind.QUEUE,))}
    total = 0.0
    for source, target in itertools.pairwise(nodes):
        edge = arcs.get((source, target))
        if edge is not None:
            total += edge.seconds(QUEUE_WALK_SPEED)
    return total


def venue_lines(venue: Venue) -> VenueLines:
    rules = venue.rules
    specs: dict[str, LineSpec] = {}
    hours: dict[str, Hours] = {}
    points: dict[str, tuple[str, AccessPointKind]] = {}
    zones: dict[str, str] = {}
    for poi in venue.attractions():
        queue = poi.queue
        assert queue is not None
        specs[poi.id] = LineSpec(
            attraction_id=poi.id,
            queue_zone=queue.queue_zone,
            standby_point=queue.standby_access_point,
            merge_point=queue.return_merge_access_point,
            boarding_point=queue.boarding_access_point,
            nameplate_per_hour=float(queue.hourly_capacity),
            vehicle_capacity=queue.vehicle_capacity,
            dispatch_interval=queue.dispatch_interval_seconds,
            walk_standby=_walk(venue, venue.queue_line(poi.id)),
            walk_return=_walk(venue, venue.return_line(poi.id)),
            return_share=rules.return_time_capacity_share,
            return_time=queue.return_time,
            virtual_queue=queue.virtual_queue,
        )
        hours[poi.id] = Hours(poi.hours.opens, poi.hours.closes)
        points[queue.standby_access_point] = (poi.id, AccessPointKind.RIDE_STANDBY)
        points[queue.boarding_access_point] = (poi.id, AccessPointKind.RIDE_BOARDING)
        if queue.return_merge_access_point is not None:
            points[queue.return_merge_access_point] = (poi.id, AccessPointKind.RIDE_RETURN_MERGE)
        zones[queue.queue_zone] = poi.id
    window = rules.return_window
    return VenueLines(
        specs=specs,
        hours=hours,
        points=points,
        zones=zones,
        slot_minutes=window.slot_minutes,
        early_grace_minutes=window.early_grace_minutes,
        late_grace_minutes=window.late_grace_minutes,
        max_holdings=rules.max_holdings_per_guest,
        return_share=rules.return_time_capacity_share,
        has_gates=bool(venue.access_points_of_kind(AccessPointKind.PARK_ENTRY)),
        timezone=venue.timezone,
    )
