"""The venue as location numbers it, for both venues: zones nest, readers sit
in zones, and a device's venue_ref names the readers it speaks for."""

from __future__ import annotations

from functools import cache

import pytest

from services.location.topology import Topology, build
from services.platform.config import ROOT
from services.venue_model import load_venue
from venue.location.v1 import location_pb2 as pb

VENUES = ["lantern-bay-park.yaml", "millbrook-galleria.yaml"]


@cache
def topology(name: str) -> Topology:
    return build(load_venue(ROOT / "venues" / name))


@pytest.mark.parametrize("name", VENUES)
def test_counts_roll_up_to_every_enclosing_zone(name: str) -> None:
    t = topology(name)
    for zone in t.zones:
        assert zone.rollup[0] == zone.index
        for outer in zone.rollup[1:]:
            assert zone.index in t.zone_and_nested(outer)
        assert t.rollup[zone.index].sum() == len(zone.rollup)
        if zone.parent_id:
            assert t.zones[zone.rollup[1]].id == zone.parent_id


@pytest.mark.parametrize("name", VENUES)
def test_every_reader_is_placed_and_every_zone_has_a_kind(name: str) -> None:
    t = topology(name)
    for reader in t.readers:
        assert t.reader_zone[reader.index] == reader.zone_index
        assert reader.node_id
    assert all(z.kind != pb.ZONE_KIND_UNSPECIFIED for z in t.zones)


@pytest.mark.parametrize("name", VENUES)
def test_a_device_speaks_for_its_reader_its_zone_or_the_whole_venue(name: str) -> None:
    t = topology(name)
    reader = t.readers[0]
    only = t.scope(reader.id)
    assert only is not None and only.sum() == 1 and only[reader.index]
    everything = t.scope(t.venue_id)
    assert everything is not None and everything.all()
    outer = t.zones[t.zones[reader.zone_index].rollup[-1]]
    area = t.scope(outer.id)
    assert area is not None and area[reader.index]
    assert area.sum() == len(t.readers_in(outer.index))
    assert t.scope("") is None
    assert t.scope("no-such-thing") is None


def test_queue_zones_name_their_attraction() -> None:
    t = topology("lantern-bay-park.yaml")
    venue = load_venue(ROOT / "venues" / "lantern-bay-park.yaml")
    for poi in venue.attractions():
        assert poi.queue is not None
        zone = t.zone(poi.queue.queue_zone)
        assert zone is not None
        assert zone.attraction_id == poi.id
        assert zone.kind == pb.ZONE_KIND_QUEUE


def test_a_food_court_shared_by_counters_names_no_single_attraction() -> None:
    t = topology("millbrook-galleria.yaml")
    court = t.zone("food-court")
    assert court is not None
    assert court.kind == pb.ZONE_KIND_FOOD_COURT
    assert court.attraction_id == ""
