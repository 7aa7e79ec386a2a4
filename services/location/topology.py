"""The venue as the location service sees it: readers and zones numbered densely
so that ingest and placement work on numpy arrays instead of dictionaries of
strings, and the reader scopes of devices.

Numbers follow the venue file's order and live only in memory; anything stored
names readers through the `readers` table and zones by id, so reordering the
venue file never misreads stored data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from services.venue_model import Venue, ZoneKind
from venue.location.v1 import location_pb2 as pb

ZONE_KINDS: Mapping[ZoneKind, int] = MappingProxyType(
    {
        ZoneKind.LAND: pb.ZONE_KIND_LAND,
        ZoneKind.PLAZA: pb.ZONE_KIND_WALKWAY,
        ZoneKind.WALKWAY: pb.ZONE_KIND_WALKWAY,
        ZoneKind.CONCOURSE: pb.ZONE_KIND_WALKWAY,
        ZoneKind.ENTRANCE: pb.ZONE_KIND_ENTRANCE,
        ZoneKind.QUEUE: pb.ZONE_KIND_QUEUE,
        ZoneKind.RIDE: pb.ZONE_KIND_ATTRACTION,
        ZoneKind.SHOW: pb.ZONE_KIND_ATTRACTION,
        ZoneKind.SHOP: pb.ZONE_KIND_SHOP,
        ZoneKind.FOOD: pb.ZONE_KIND_RESTAURANT,
        ZoneKind.FOOD_COURT: pb.ZONE_KIND_FOOD_COURT,
        ZoneKind.FLOOR: pb.ZONE_KIND_FLOOR,
        ZoneKind.HOTEL: pb.ZONE_KIND_HOTEL,
        ZoneKind.RESTROOM: pb.ZONE_KIND_OTHER,
        ZoneKind.SERVICE: pb.ZONE_KIND_OTHER,
        ZoneKind.BACKSTAGE: pb.ZONE_KIND_OTHER,
    }
)

# Reader numbers are stored as smallint and break placement ties in 16 bits.
MAX_READERS = 32_767

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ZoneInfo:
    index: int
    id: str
    name: str
    kind: int  # location ZoneKind
    capacity: int
    parent_id: str
    attraction_id: str
    floor: int
    # Guests are counted in every zone of this chain (the zone, its parent ...).
    rollup: tuple[int, ...]
    # An entrance: a guest last heard here and then not at all has left.
    is_exit: bool


@dataclass(frozen=True)
class ReaderInfo:
    index: int
    id: str
    node_id: str
    zone_index: int
    range_m: float


@dataclass(frozen=True)
class Topology:
    venue_id: str
    zones: tuple[ZoneInfo, ...]
    readers: tuple[ReaderInfo, ...]
    zone_index: Mapping[str, int]
    reader_index: Mapping[str, int]
    # reader number -> zone number, for placement.
    reader_zone: npt.NDArray[np.int16]
    # (zones x zones): counts of guests per placed zone @ rollup = counts per zone
    # including the zones nested in it.
    rollup: npt.NDArray[np.int64]
    capacity: npt.NDArray[np.int64]
    is_exit: BoolArray
    _descendants: Mapping[int, frozenset[int]] = field(repr=False)

    @property
    def zone_count(self) -> int:
        return len(self.zones)

    @property
    def reader_count(self) -> int:
        return len(self.readers)

    def zone(self, zone_id: str) -> ZoneInfo | None:
        index = self.zone_index.get(zone_id)
        return None if index is None else self.zones[index]

    def zone_and_nested(self, zone_index: int) -> frozenset[int]:
        return self._descendants[zone_index]

    def readers_in(self, zone_index: int) -> list[ReaderInfo]:
        """Readers placed in the zone or in any zone nested in it, in venue order."""
        inside = self._descendants[zone_index]
        return [r for r in self.readers if r.zone_index in inside]

    def scope(self, venue_ref: str) -> BoolArray | None:
        """The readers a device may send pings for, from the venue_ref of its
        credential: a reader id (that reader), a zone id (a gateway for every
        reader in the zone and the zones nested in it), or the venue id (a
        gateway for the whole venue). None when the reference names none of these."""
        allowed = np.zeros(self.reader_count, dtype=np.bool_)
        if venue_ref in self.reader_index:
            allowed[self.reader_index[venue_ref]] = True
        elif venue_ref in self.zone_index:
            for reader in self.readers_in(self.zone_index[venue_ref]):
                allowed[reader.index] = True
        elif venue_ref and venue_ref == self.venue_id:
            allowed[:] = True
        else:
            return None
        return allowed


def _attractions_by_zone(venue: Venue) -> dict[str, str]:
    """Queue zones name their attraction; an attraction's own zone names it when
    no other attraction shares that zone (a food court holds many counters)."""
    found: dict[str, str] = {}
    own: dict[str, list[str]] = {}
    for poi in venue.attractions():
        assert poi.queue is not None
        found[poi.queue.queue_zone] = poi.id
        own.setdefault(poi.zone, []).append(poi.id)
    for zone_id, ids in own.items():
        if len(ids) == 1 and zone_id not in found:
            found[zone_id] = ids[0]
    return found


def build(venue: Venue) -> Topology:
    index = {zone.id: i for i, zone in enumerate(venue.zones)}
    attractions = _attractions_by_zone(venue)
    zones: list[ZoneInfo] = []
    for i, zone in enumerate(venue.zones):
        chain = (i, *(index[z.id] for z in venue.zone_ancestors(zone.id)))
        zones.append(
            ZoneInfo(
                index=i,
                id=zone.id,
                name=zone.name,
                kind=ZONE_KINDS.get(zone.kind, pb.ZONE_KIND_OTHER),
                capacity=zone.capacity,
                parent_id=zone.parent or "",
                attraction_id=attractions.get(zone.id, ""),
                floor=zone.floor,
                rollup=chain,
                is_exit=zone.kind is ZoneKind.ENTRANCE,
            )
        )
    count = len(zones)
    rollup = np.zeros((count, count), dtype=np.int64)
    descendants: dict[int, set[int]] = {i: set() for i in range(count)}
    for info in zones:
        for target in info.rollup:
            rollup[info.index, target] = 1
            descendants[target].add(info.index)
    readers = tuple(
        ReaderInfo(i, r.id, r.node, index[r.zone], r.range_m) for i, r in enumerate(venue.readers)
    )
    if len(readers) > MAX_READERS:
        raise ValueError(f"{venue.id}: more than {MAX_READERS} readers")
    return Topology(
        venue_id=venue.id,
        zones=tuple(zones),
        readers=readers,
        zone_index=MappingProxyType(index),
        reader_index=MappingProxyType({r.id: r.index for r in readers}),
        reader_zone=np.array([r.zone_index for r in readers], dtype=np.int16),
        rollup=rollup,
        capacity=np.array([z.capacity for z in zones], dtype=np.int64),
        is_exit=np.array([z.is_exit for z in zones], dtype=np.bool_),
        _descendants=MappingProxyType({k: frozenset(v) for k, v in descendants.items()}),
    )
