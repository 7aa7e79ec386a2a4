"""Records of the location service as protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from services.location.occupancy import density
from services.location.places import Place
from services.location.store import VisitRow
from services.location.topology import ReaderInfo, Topology, ZoneInfo
from venue.common.v1 import common_pb2
from venue.location.v1 import location_pb2 as pb


def ts_ms(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def ts(at: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(at.astimezone(UTC))
    return value


def zone_pb(zone: ZoneInfo) -> pb.Zone:
    return pb.Zone(
        zone_id=zone.id,
        name=zone.name,
        kind=zone.kind,  # type: ignore[arg-type]
        capacity=zone.capacity,
        parent_zone_id=zone.parent_id,
        attraction_id=zone.attraction_id,
        floor=zone.floor,
    )


def reader_pb(topology: Topology, reader: ReaderInfo, last_ping_ms: int) -> pb.Reader:
    message = pb.Reader(
        reader_id=reader.id,
        place=common_pb2.Place(
            zone_id=topology.zones[reader.zone_index].id, node_id=reader.node_id
        ),
        range_m=reader.range_m,
    )
    if last_ping_ms:
        message.last_ping_at.CopyFrom(ts_ms(last_ping_ms))
    return message


def occupancy_pb(zone: ZoneInfo, count: int, as_of_ms: int) -> pb.ZoneOccupancy:
    return pb.ZoneOccupancy(
        zone_id=zone.id,
        count=count,
        capacity=zone.capacity,
        density=density(count, zone.capacity),
        as_of=ts_ms(as_of_ms),
    )


def trail_pb(rows: list[VisitRow], cutoff: datetime) -> list[pb.ZoneVisit]:
    """Visit rows (newest first) as the trail: gaps dropped, each visit's end
    taken from the row after it, visits that ended before `cutoff` left out."""
    trail: list[pb.ZoneVisit] = []
    left: datetime | None = None
    for row in rows:
        if left is not None and left < cutoff:
            break
        if row.zone_id is not None:
            visit = pb.ZoneVisit(zone_id=row.zone_id, entered_at=ts(row.entered_at))
            if left is not None:
                visit.left_at.CopyFrom(ts(left))
            trail.append(visit)
        left = row.entered_at
    return trail


def location_pb(topology: Topology, guest_id: str, party_id: str, place: Place) -> pb.GuestLocation:
    message = pb.GuestLocation(guest_id=guest_id, party_id=party_id, status=place.status)  # type: ignore[arg-type]
    if place.status == pb.LOCATION_STATUS_KNOWN:
        node = topology.readers[place.reader].node_id if place.reader >= 0 else ""
        message.place.CopyFrom(
            common_pb2.Place(zone_id=topology.zones[place.zone].id, node_id=node)
        )
        message.observed_at.CopyFrom(ts_ms(place.at_ms))
    return message
