"""What the itinerary needs of the venue definition, read once at start-up.

The pure modules take these facts instead of the whole venue model, so their
tests can build a small venue by hand. `venue.demand` is never read: the twin
learns demand from devices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.itinerary.budget import Budget
from services.itinerary.model import Place
from services.venue_model import AccessPointKind, PoiKind, Venue, ZoneKind

# Typical time at a stop when neither the wish nor the venue says.
DEFAULT_VISIT_S = {
    PoiKind.FOOD: 40 * 60.0,
    PoiKind.DRINK: 10 * 60.0,
    PoiKind.SHOP: 15 * 60.0,
    PoiKind.RESTROOM: 5 * 60.0,
}
DEFAULT_OTHER_S = 15 * 60.0

# Zones where crowding slows a walk (lines, rides and shops are not walked through).
WALKED_ZONE_KINDS = frozenset(
    {ZoneKind.LAND, ZoneKind.PLAZA, ZoneKind.WALKWAY, ZoneKind.ENTRANCE, ZoneKind.CONCOURSE}
)


@dataclass(frozen=True, slots=True)
class PoiFact:
    poi_id: str
    name: str
    kind: str
    zone_id: str
    node_id: str
    tags: frozenset[str]
    # Attractions (anything with a line).
    is_attraction: bool = False
    ride_s: float = 0.0
    queue_zone_id: str = ""
    # Shows: minutes of one performance.
    show_s: float = 0.0
    opens_min: int = 0
    closes_min: int = 24 * 60

    @property
    def place(self) -> Place:
        return Place(self.zone_id, self.node_id)

    @property
    def visit_s(self) -> float:
        """Time at the stop once started."""
        if self.is_attraction:
            return self.ride_s
        if self.show_s:
            return self.show_s
        return DEFAULT_VISIT_S.get(PoiKind(self.kind), DEFAULT_OTHER_S)


@dataclass(frozen=True, slots=True)
class AccessPointFact:
    access_point_id: str
    kind: str
    attraction_id: str
    place: Place


@dataclass(frozen=True)
class VenueFacts:
    venue_id: str
    tz: ZoneInfo
    opens_min: int
    closes_min: int
    budget: Budget
    # Grace after a return window's end at the merge point.
    late_grace: timedelta
    pois: Mapping[str, PoiFact]
    access_points: Mapping[str, AccessPointFact]
    # Zone id -> (kind, capacity, parent).
    zones: Mapping[str, tuple[str, int, str]]
    # A zone -> the poi whose area it is (its own zone or its queue zone).
    poi_of_zone: Mapping[str, str]
    entrance: Place
    # Node id -> its zone.
    nodes: Mapping[str, str] = field(default_factory=dict)
    # Nodes on the walkway graph: the only nodes routing accepts as endpoints.
    # Readers inside a line or on a ride are not on it. Empty: every node is.
    walkable: frozenset[str] = frozenset()

    def poi(self, poi_id: str) -> PoiFact | None:
        return self.pois.get(poi_id)

    def name(self, poi_id: str) -> str:
        fact = self.pois.get(poi_id)
        return fact.name if fact else poi_id

    def local_time(self, at: datetime) -> str:
        return at.astimezone(self.tz).strftime("%H:%M")

    def venue_date(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def at_minute(self, day: date, minute: int) -> datetime:
        midnight = datetime.combine(day, time(0), tzinfo=self.tz)
        return midnight + timedelta(minutes=minute)

    def opening(self, day: date) -> datetime:
        return self.at_minute(day, self.opens_min)

    def closing(self, day: date) -> datetime:
        return self.at_minute(day, self.closes_min)

    def routable(self, place: Place) -> Place:
        """The place as routing takes it: a node inside a line or on a ride (where
        location puts a guest a reader there saw) becomes its zone, which routing
        maps to the attraction's entrance."""
        if not place.node_id or not self.walkable or place.node_id in self.walkable:
            return place
        return Place(zone_id=place.zone_id or self.nodes.get(place.node_id, ""))

    def walked_zone(self, zone_id: str) -> bool:
        zone = self.zones.get(zone_id)
        return zone is not None and zone[0] in WALKED_ZONE_KINDS


def from_venue(venue: Venue) -> VenueFacts:
    pois: dict[str, PoiFact] = {}
    poi_of_zone: dict[str, str] = {}
    for poi in venue.pois:
        queue = poi.queue
        pois[poi.id] = PoiFact(
            poi_id=poi.id,
            name=poi.name,
            kind=str(poi.kind),
            zone_id=poi.zone,
            node_id=poi.node,
            tags=frozenset(poi.tags),
            is_attraction=queue is not None,
            ride_s=queue.ride_seconds if queue else 0.0,
            queue_zone_id=queue.queue_zone if queue else "",
            show_s=poi.show.duration_minutes * 60.0 if poi.show else 0.0,
            opens_min=poi.hours.opens,
            closes_min=poi.hours.closes,
        )
        if queue:
            poi_of_zone[queue.queue_zone] = poi.id
        zone = venue.zone(poi.zone)
        if zone.kind not in WALKED_ZONE_KINDS:
            poi_of_zone.setdefault(poi.zone, poi.id)
    access_points = {
        ap.id: AccessPointFact(ap.id, str(ap.kind), ap.attraction or "", Place(ap.zone, ap.node))
        for ap in venue.access_points
    }
    entrances = venue.pois_of_kind(PoiKind.ENTRANCE)
    gates = venue.access_points_of_kind(AccessPointKind.PARK_ENTRY)
    if entrances:
        entrance = Place(entrances[0].zone, entrances[0].node)
    elif gates:
        entrance = Place(gates[0].zone, gates[0].node)
    else:  # pragma: no cover - every venue file has an entrance
        entrance = Place()
    rules = venue.rules
    return VenueFacts(
        venue_id=venue.id,
        tz=venue.tzinfo,
        opens_min=venue.hours.opens,
        closes_min=venue.hours.closes,
        budget=Budget(rules.nudges.max_per_hour, timedelta(minutes=rules.nudges.min_gap_minutes)),
        late_grace=timedelta(minutes=rules.return_window.late_grace_minutes),
        pois=pois,
        access_points=access_points,
        zones={z.id: (str(z.kind), z.capacity, z.parent or "") for z in venue.zones},
        poi_of_zone=poi_of_zone,
        entrance=entrance,
        nodes={n.id: n.zone for n in venue.nodes},
        walkable=frozenset(n.id for n in venue.graph_nodes()),
    )
