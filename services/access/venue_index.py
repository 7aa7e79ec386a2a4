"""What access needs from the venue definition, indexed once at start-up.

Access points with their proto kind, attraction, park, hotel room and height
rule; the device kinds that may tap at each; tills and their merchants; the
money and return-window rules; and the venue day of an instant. Ids are opaque:
everything is looked up in the model, never parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

from services.venue_model import AccessPointKind, UnknownIdError, Venue
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2

GATE = common_pb2.DEVICE_KIND_GATE
RIDE_SCANNER = common_pb2.DEVICE_KIND_RIDE_SCANNER
DOOR_LOCK = common_pb2.DEVICE_KIND_DOOR_LOCK
KIOSK = common_pb2.DEVICE_KIND_KIOSK

KIND_TO_PB: Final = MappingProxyType(
    {
        AccessPointKind.PARK_ENTRY: pb.ACCESS_POINT_KIND_PARK_ENTRY,
        AccessPointKind.PARK_EXIT: pb.ACCESS_POINT_KIND_PARK_EXIT,
        AccessPointKind.RIDE_STANDBY: pb.ACCESS_POINT_KIND_RIDE_STANDBY_ENTRANCE,
        AccessPointKind.RIDE_RETURN_MERGE: pb.ACCESS_POINT_KIND_RIDE_RETURN_MERGE,
        AccessPointKind.RIDE_BOARDING: pb.ACCESS_POINT_KIND_RIDE_BOARDING,
        AccessPointKind.HOTEL_DOOR: pb.ACCESS_POINT_KIND_HOTEL_DOOR,
        AccessPointKind.STAFF_DOOR: pb.ACCESS_POINT_KIND_STAFF_DOOR,
        AccessPointKind.PHOTO_KIOSK: pb.ACCESS_POINT_KIND_PHOTO_KIOSK,
    }
)

# Which devices tap at which kind of access point. A staff door may be a lock
# or a turnstile.
DEVICES_FOR_KIND: Final = MappingProxyType(
    {
        pb.ACCESS_POINT_KIND_PARK_ENTRY: frozenset({GATE}),
        pb.ACCESS_POINT_KIND_PARK_EXIT: frozenset({GATE}),
        pb.ACCESS_POINT_KIND_RIDE_STANDBY_ENTRANCE: frozenset({RIDE_SCANNER}),
        pb.ACCESS_POINT_KIND_RIDE_RETURN_MERGE: frozenset({RIDE_SCANNER}),
        pb.ACCESS_POINT_KIND_RIDE_BOARDING: frozenset({RIDE_SCANNER}),
        pb.ACCESS_POINT_KIND_HOTEL_DOOR: frozenset({DOOR_LOCK}),
        pb.ACCESS_POINT_KIND_STAFF_DOOR: frozenset({DOOR_LOCK, GATE}),
        pb.ACCESS_POINT_KIND_PHOTO_KIOSK: frozenset({KIOSK}),
    }
)

# Taps at these kinds are published as TapRecorded (queue and photo follow them).
PUBLISHED_KINDS: Final = frozenset(
    {
        pb.ACCESS_POINT_KIND_PARK_ENTRY,
        pb.ACCESS_POINT_KIND_PARK_EXIT,
        pb.ACCESS_POINT_KIND_RIDE_STANDBY_ENTRANCE,
        pb.ACCESS_POINT_KIND_RIDE_RETURN_MERGE,
        pb.ACCESS_POINT_KIND_RIDE_BOARDING,
    }
)

# Merchants that are not places in the venue: a service selling in the app.
SERVICE_MERCHANTS: Final = MappingProxyType({"photo": "photo"})


@dataclass(frozen=True, slots=True)
class PointInfo:
    """One access point as the tap rules see it."""

    access_point_id: str
    name: str
    kind: int  # AccessPointKind of the proto
    attraction_id: str
    park_id: str
    hotel_id: str
    room_id: str
    zone_id: str
    node_id: str
    # The attraction's minimum height, 0 when it has none.
    min_height_cm: int
    devices: frozenset[int]

    @property
    def published(self) -> bool:
        return self.kind in PUBLISHED_KINDS


@dataclass(frozen=True, slots=True)
class Grace:
    early: timedelta
    late: timedelta


class VenueIndex:
    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.venue_id = venue.id
        self.currency = venue.currency
        self.currency_exponent = venue.currency_exponent
        self.tz = ZoneInfo(venue.timezone)
        self.pin_threshold_minor = venue.rules.pin_threshold_minor
        window = venue.rules.return_window
        self.grace = Grace(
            timedelta(minutes=window.early_grace_minutes),
            timedelta(minutes=window.late_grace_minutes),
        )
        rooms: dict[str, tuple[str, str]] = {}  # door access point -> (hotel, room)
        self.hotel_rooms: dict[str, frozenset[str]] = {}
        for hotel in venue.hotels():
            assert hotel.hotel is not None
            self.hotel_rooms[hotel.id] = frozenset(r.id for r in hotel.hotel.rooms)
            for room in hotel.hotel.rooms:
                rooms[room.door_access_point] = (hotel.id, room.id)
        points: dict[str, PointInfo] = {}
        for ap in venue.access_points:
            kind = KIND_TO_PB[ap.kind]
            min_height = 0
            if ap.attraction is not None:
                queue = venue.attraction(ap.attraction).queue
                min_height = (queue.min_height_cm or 0) if queue else 0
            hotel_id, room_id = rooms.get(ap.id, ("", ""))
            gate = kind in (pb.ACCESS_POINT_KIND_PARK_ENTRY, pb.ACCESS_POINT_KIND_PARK_EXIT)
            points[ap.id] = PointInfo(
                access_point_id=ap.id,
                name=ap.name or ap.id,
                kind=kind,
                attraction_id=ap.attraction or "",
                park_id=venue.id if gate else "",
                hotel_id=hotel_id,
                room_id=room_id,
                zone_id=ap.zone,
                node_id=ap.node,
                min_height_cm=min_height,
                devices=DEVICES_FOR_KIND[kind],
            )
        self.points: MappingProxyType[str, PointInfo] = MappingProxyType(points)
        self.ordered_points = tuple(points[ap.id] for ap in venue.access_points)
        self.has_gates = any(p.kind == pb.ACCESS_POINT_KIND_PARK_ENTRY for p in self.ordered_points)
        self.tills: MappingProxyType[str, str] = MappingProxyType(
            {t.id: t.merchant for t in venue.tills}
        )
        self.merchants = frozenset(m.id for m in venue.merchants())

    # --- lookups ---------------------------------------------------------------

    def point(self, access_point_id: str) -> PointInfo | None:
        return self.points.get(access_point_id)

    def merchant_of_till(self, till_id: str) -> str | None:
        return self.tills.get(till_id)

    def is_merchant(self, merchant_id: str) -> bool:
        return merchant_id in self.merchants or merchant_id in SERVICE_MERCHANTS

    def attraction(self, attraction_id: str) -> tuple[bool, bool] | None:
        """(return_time, virtual_queue) of an attraction, None if there is none."""
        try:
            queue = self.venue.queue_of(attraction_id)
        except UnknownIdError:
            return None
        has_merge = queue.return_merge_access_point is not None
        return queue.return_time and has_merge, queue.virtual_queue and has_merge

    # --- time ------------------------------------------------------------------

    def day_of(self, instant: datetime) -> date:
        """The venue day an instant belongs to (the venue's local date: a day's
        schedule closes by midnight in the model)."""
        return instant.astimezone(self.tz).date()

    def day_end(self, day: date) -> datetime:
        """The first instant after a venue day."""
        return datetime.combine(day + timedelta(days=1), datetime.min.time(), self.tz)

    def clock_text(self, instant: datetime) -> str:
        return instant.astimezone(self.tz).strftime("%H:%M")

    def minor_text(self, minor: int) -> str:
        """An amount for a till's screen, e.g. 'USD 12.50'."""
        exponent = self.currency_exponent
        if exponent == 0:
            return f"{self.currency} {minor}"
        whole, frac = divmod(abs(minor), 10**exponent)
        sign = "-" if minor < 0 else ""
        return f"{self.currency} {sign}{whole}.{frac:0{exponent}d}"
