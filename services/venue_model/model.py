"""The parts of a venue, as immutable values.

Field meanings are documented once, in venues/schema/venue.schema.json; this module
mirrors that file. Times of day are minutes after local midnight (0..1440) so that
"24:00" can be represented and comparisons stay integer arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class VenueKind(StrEnum):
    THEME_PARK = "theme_park"
    MALL = "mall"


class ZoneKind(StrEnum):
    LAND = "land"
    PLAZA = "plaza"
    WALKWAY = "walkway"
    ENTRANCE = "entrance"
    QUEUE = "queue"
    RIDE = "ride"
    SHOW = "show"
    SHOP = "shop"
    FOOD = "food"
    FOOD_COURT = "food_court"
    RESTROOM = "restroom"
    CONCOURSE = "concourse"
    FLOOR = "floor"
    HOTEL = "hotel"
    SERVICE = "service"
    BACKSTAGE = "backstage"


class EdgeKind(StrEnum):
    WALKWAY = "walkway"
    STAIRS = "stairs"
    ESCALATOR = "escalator"
    ELEVATOR = "elevator"
    RAMP = "ramp"
    QUEUE = "queue"
    RIDE = "ride"

    @property
    def walkable(self) -> bool:
        """Part of walking routes (queue and ride edges are the inside of an attraction)."""
        return self not in (EdgeKind.QUEUE, EdgeKind.RIDE)

    @property
    def accessible(self) -> bool:
        """Usable by a wheelchair or a stroller."""
        return self.walkable and self not in (EdgeKind.STAIRS, EdgeKind.ESCALATOR)

    @property
    def vertical(self) -> bool:
        """Joins two different floors by definition."""
        return self in (EdgeKind.STAIRS, EdgeKind.ESCALATOR, EdgeKind.ELEVATOR)


WALKING_EDGE_KINDS: frozenset[EdgeKind] = frozenset(k for k in EdgeKind if k.walkable)
ACCESSIBLE_EDGE_KINDS: frozenset[EdgeKind] = frozenset(k for k in EdgeKind if k.accessible)


class PoiKind(StrEnum):
    ATTRACTION = "attraction"
    SHOW = "show"
    SHOP = "shop"
    FOOD = "food"
    DRINK = "drink"
    RESTROOM = "restroom"
    ENTRANCE = "entrance"
    EXIT = "exit"
    FIRST_AID = "first_aid"
    HOTEL = "hotel"


class AccessPointKind(StrEnum):
    PARK_ENTRY = "park_entry"
    PARK_EXIT = "park_exit"
    RIDE_STANDBY = "ride_standby"
    RIDE_RETURN_MERGE = "ride_return_merge"
    RIDE_BOARDING = "ride_boarding"
    PHOTO_KIOSK = "photo_kiosk"
    HOTEL_DOOR = "hotel_door"
    STAFF_DOOR = "staff_door"

    @property
    def belongs_to_attraction(self) -> bool:
        return self in _ATTRACTION_ACCESS_KINDS


_ATTRACTION_ACCESS_KINDS = frozenset(
    {
        AccessPointKind.RIDE_STANDBY,
        AccessPointKind.RIDE_RETURN_MERGE,
        AccessPointKind.RIDE_BOARDING,
        AccessPointKind.PHOTO_KIOSK,
    }
)


class CameraKind(StrEnum):
    RIDE = "ride"
    PHOTO_SPOT = "photo_spot"


class SpendCategory(StrEnum):
    FOOD = "food"
    DRINK = "drink"
    MERCHANDISE = "merchandise"
    PHOTOS = "photos"


MINUTES_PER_DAY = 24 * 60


def format_clock(minute_of_day: int) -> str:
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """A day's schedule; `opens` and `closes` are minutes after local midnight."""

    opens: int
    closes: int

    def is_open_at(self, minute_of_day: float) -> bool:
        return self.opens <= minute_of_day < self.closes

    def contains(self, other: OpeningHours) -> bool:
        return self.opens <= other.opens and other.closes <= self.closes

    @property
    def minutes(self) -> int:
        return self.closes - self.opens

    def __str__(self) -> str:
        return f"{format_clock(self.opens)}-{format_clock(self.closes)}"


@dataclass(frozen=True, slots=True)
class ReturnWindowRule:
    slot_minutes: int
    early_grace_minutes: int
    late_grace_minutes: int


@dataclass(frozen=True, slots=True)
class NudgeBudget:
    max_per_hour: int
    min_gap_minutes: int


@dataclass(frozen=True, slots=True)
class Rules:
    pin_threshold_minor: int
    return_window: ReturnWindowRule
    max_holdings_per_guest: int
    return_time_capacity_share: float
    ping_retention_hours: int
    trail_retention_minutes: int
    photo_retention_days: int
    photo_dispatch_window_seconds: float
    nudges: NudgeBudget


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    kind: ZoneKind
    capacity: int
    floor: int
    parent: str | None


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    x: float
    y: float
    floor: int
    zone: str

    def distance_to(self, other: Node) -> float:
        """Straight-line distance in the plan, ignoring floors."""
        return math.hypot(self.x - other.x, self.y - other.y)


@dataclass(frozen=True, slots=True)
class Edge:
    id: str
    source: str
    target: str
    length_m: float
    kind: EdgeKind
    one_way: bool
    traverse_seconds: float | None

    def seconds(self, walking_speed_mps: float) -> float:
        """Time to travel the edge for a guest walking at the given speed."""
        if self.traverse_seconds is not None:
            return self.traverse_seconds
        return self.length_m / walking_speed_mps


@dataclass(frozen=True, slots=True)
class Arc:
    """One direction of travel along an edge: what a routing DiGraph holds."""

    source: str
    target: str
    edge: Edge


@dataclass(frozen=True, slots=True)
class CalibrationSource:
    dataset: str
    code: str


@dataclass(frozen=True, slots=True)
class QueueSpec:
    hourly_capacity: int
    ride_minutes: float
    vehicle_capacity: int
    min_height_cm: int | None
    queue_zone: str
    standby_access_point: str
    return_merge_access_point: str | None
    boarding_access_point: str
    exit_node: str
    return_time: bool
    virtual_queue: bool
    source: CalibrationSource | None

    @property
    def dispatch_interval_seconds(self) -> float:
        return self.vehicle_capacity * 3600.0 / self.hourly_capacity

    @property
    def ride_seconds(self) -> float:
        return self.ride_minutes * 60.0


@dataclass(frozen=True, slots=True)
class ShowSpec:
    duration_minutes: float
    capacity: int
    performances: tuple[int, ...]  # start times, minutes after local midnight


@dataclass(frozen=True, slots=True)
class PriceItem:
    sku: str
    name: str
    price_minor: int
    tags: frozenset[str]


@dataclass(frozen=True, slots=True)
class MerchantSpec:
    price_list: tuple[PriceItem, ...]

    def item(self, sku: str) -> PriceItem:
        for entry in self.price_list:
            if entry.sku == sku:
                return entry
        raise KeyError(sku)


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    number: str
    floor: int
    door_access_point: str


@dataclass(frozen=True, slots=True)
class HotelSpec:
    rooms: tuple[Room, ...]


@dataclass(frozen=True, slots=True)
class Poi:
    id: str
    name: str
    kind: PoiKind
    node: str
    zone: str
    tags: frozenset[str]
    hours: OpeningHours  # the venue's hours when the file gives none
    queue: QueueSpec | None
    show: ShowSpec | None
    merchant: MerchantSpec | None
    hotel: HotelSpec | None

    @property
    def is_attraction(self) -> bool:
        """Anything with a line: rides, and in a mall food counters and popular stores."""
        return self.queue is not None


@dataclass(frozen=True, slots=True)
class Reader:
    id: str
    node: str
    zone: str
    range_m: float


@dataclass(frozen=True, slots=True)
class AccessPoint:
    id: str
    kind: AccessPointKind
    node: str
    zone: str
    attraction: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class Till:
    id: str
    merchant: str
    node: str
    zone: str


@dataclass(frozen=True, slots=True)
class Camera:
    id: str
    kind: CameraKind
    node: str
    zone: str
    name: str | None
    attraction: str | None
    boarding_access_point: str | None
    delay_seconds: float | None
    jitter_seconds: float | None


@dataclass(frozen=True, slots=True)
class HourWeight:
    hour: int
    weight: float


@dataclass(frozen=True, slots=True)
class PartySize:
    size: int
    weight: float


@dataclass(frozen=True, slots=True)
class Archetype:
    id: str
    weight: float
    description: str
    stay_minutes: float
    attraction_preference: float
    max_wait_minutes: float


@dataclass(frozen=True, slots=True)
class Popularity:
    attraction: str
    weight: float


@dataclass(frozen=True, slots=True)
class Spend:
    category: SpendCategory
    mean_minor_per_guest: int


@dataclass(frozen=True, slots=True)
class Demand:
    """Read by the simulated world only; services must learn demand from devices."""

    typical_daily_guests: int
    arrivals_by_hour: tuple[HourWeight, ...]
    departures_by_hour: tuple[HourWeight, ...]
    party_sizes: tuple[PartySize, ...]
    archetypes: tuple[Archetype, ...]
    popularity: tuple[Popularity, ...]
    spend: tuple[Spend, ...]
    notes: str
