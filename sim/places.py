"""The venue's places as guests use them, indexed once per day: gates, food,
snacks, shops, shows, photo spots and the attractions' lines."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from services.venue_model import (
    AccessPointKind,
    CameraKind,
    EdgeKind,
    Poi,
    PoiKind,
    PriceItem,
    Venue,
)
from sim.geography import Geography
from sim.lines import Line


@dataclass(frozen=True, slots=True)
class Attraction:
    poi: Poi
    standby_ap: str
    merge_ap: str | None
    boarding_ap: str
    standby_node: str
    merge_node: str | None
    exit_node: str
    line_nodes: tuple[str, ...]
    ride_nodes: tuple[str, ...]
    line_metres: float
    return_metres: float
    per_node: int  # guests a node of the line holds (for where a guest stands)
    camera: str | None
    camera_delay_s: float
    camera_jitter_s: float
    kiosk: str | None
    min_height_cm: int | None


def _line_metres(venue: Venue, nodes: tuple[str, ...]) -> float:
    by_pair = {(e.source, e.target): e for e in venue.edges if e.kind is EdgeKind.QUEUE}
    return sum(by_pair[(a, b)].length_m for a, b in itertools.pairwise(nodes))


class Places:
    def __init__(self, venue: Venue, geo: Geography) -> None:
        self.venue = venue
        self.geo = geo
        self.entry_aps = venue.access_points_of_kind(AccessPointKind.PARK_ENTRY)
        self.exit_aps = venue.access_points_of_kind(AccessPointKind.PARK_EXIT)
        self.has_gates = bool(self.entry_aps)
        self.entrances = venue.pois_of_kind(PoiKind.ENTRANCE)
        self.exits = venue.pois_of_kind(PoiKind.EXIT) or self.entrances
        self.attractions: dict[str, Attraction] = {}
        for poi in venue.attractions():
            q = poi.queue
            assert q is not None
            standby = venue.access_point(q.standby_access_point)
            merge = (
                venue.access_point(q.return_merge_access_point)
                if q.return_merge_access_point
                else None
            )
            line = venue.queue_line(poi.id)
            zone_capacity = venue.zone(q.queue_zone).capacity or 200
            camera = next((c for c in venue.cameras_for(poi.id) if c.kind is CameraKind.RIDE), None)
            kiosk = next(
                (
                    a.id
                    for a in venue.access_points_for(poi.id)
                    if a.kind is AccessPointKind.PHOTO_KIOSK
                ),
                None,
            )
            self.attractions[poi.id] = Attraction(
                poi=poi,
                standby_ap=standby.id,
                merge_ap=merge.id if merge else None,
                boarding_ap=q.boarding_access_point,
                standby_node=standby.node,
                merge_node=merge.node if merge else None,
                exit_node=q.exit_node,
                line_nodes=line,
                ride_nodes=venue.ride_path(poi.id),
                line_metres=_line_metres(venue, line),
                return_metres=_line_metres(venue, venue.return_line(poi.id)),
                per_node=max(1, zone_capacity // max(1, len(line) - 1)),
                camera=camera.id if camera else None,
                camera_delay_s=(camera.delay_seconds or 0.0) if camera else 0.0,
                camera_jitter_s=(camera.jitter_seconds or 0.0) if camera else 0.0,
                kiosk=kiosk,
                min_height_cm=q.min_height_cm,
            )
        merchants = [p for p in venue.merchants() if venue.tills_for(p.id)]
        self.meals = [p for p in merchants if _tagged(p, "meal")]
        self.snacks = [
            p
            for p in merchants
            if p.kind in (PoiKind.DRINK, PoiKind.FOOD)
            and (_tagged(p, "snack") or _tagged(p, "cold_drink"))
            and not _tagged(p, "meal")
        ]
        self.shops = [p for p in merchants if p.kind is PoiKind.SHOP and p.queue is None]
        self.shows = [p for p in venue.shows() if p.show and p.show.performances]
        self.restrooms = venue.pois_of_kind(PoiKind.RESTROOM)
        self.photo_spots = [c for c in venue.cameras if c.kind is CameraKind.PHOTO_SPOT]
        walk_nodes = {n.id for n in venue.graph_nodes()}
        plazas = [
            n.id
            for n in venue.nodes
            if n.id in walk_nodes
            and venue.zone(n.zone).kind.value in ("plaza", "land", "concourse", "floor")
        ]
        self.rest_nodes = plazas or sorted(walk_nodes)
        self.door_of_room = {
            room.id: (room.door_access_point, venue.access_point(room.door_access_point).node)
            for hotel in venue.hotels()
            if hotel.hotel
            for room in hotel.hotel.rooms
        }
        self.hotel_node = {
            room.id: hotel.node
            for hotel in venue.hotels()
            if hotel.hotel
            for room in hotel.hotel.rooms
        }

    def lines(self, return_share: float) -> dict[str, Line]:
        lines: dict[str, Line] = {}
        for a in self.attractions.values():
            q = a.poi.queue
            assert q is not None
            share = return_share if (q.return_time or q.virtual_queue) and a.merge_ap else 0.0
            lines[a.poi.id] = Line(
                a.poi.id, q.vehicle_capacity, q.dispatch_interval_seconds, q.ride_seconds, share
            )
        return lines


def _tagged(poi: Poi, tag: str) -> bool:
    return (
        tag in poi.tags or any(tag in i.tags for i in poi.merchant.price_list)
        if poi.merchant
        else False
    )


def items_tagged(poi: Poi, *tags: str) -> list[PriceItem]:
    if poi.merchant is None:
        return []
    return [i for i in poi.merchant.price_list if any(t in i.tags for t in tags)]
