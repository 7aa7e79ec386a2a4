"""The world's own invariants on whole (short) days, played with no suite attached:
guests are conserved, recorded waits are boarding minus entry, the same seed plays
the same day, and both venues play with no change of code."""

from __future__ import annotations

from datetime import date
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.platform.config import ROOT
from services.venue_model import Venue, load_venue
from sim.config import WorldConfig
from sim.day import offline_world
from sim.frame import DayFrame
from sim.geography import Geography
from sim.world import State, World

PARK = ROOT / "venues" / "lantern-bay-park.yaml"
MALL = ROOT / "venues" / "millbrook-galleria.yaml"
DAY = date(2026, 7, 4)


_VENUE = load_venue(PARK)
# Loaded once for the module: hypothesis examples cannot take function fixtures.
_PARK = (_VENUE, Geography(_VENUE))


@pytest.fixture(scope="module")
def park() -> tuple[Venue, Geography]:
    return _PARK


def play(venue: Venue, geo: Geography | None, **config: object) -> World:
    cfg = WorldConfig(venue_file=Path(str(venue.source_path or PARK)), **config)  # type: ignore[arg-type]
    world = offline_world(venue, cfg, DayFrame.of(DAY, venue.timezone), geo)
    world.start()
    world.engine.run_until(float("inf"))
    return world


@pytest.fixture(scope="module")
def day(park: tuple[Venue, Geography]) -> World:
    venue, geo = park
    return play(venue, geo, guests=600, seed=3)


def test_every_guest_who_came_entered_and_went_home(day: World) -> None:
    t = day.truth
    assert t.arrived_guests == 600
    assert sum(n for _, n in t.entries) == 600
    assert sum(n for _, n in t.exits) == 600 == t.left_guests
    assert all(a.state == State.GONE for a in day.agents)
    assert not day.present
    assert all(not line.waiting() for line in day.lines.values())


def test_guests_are_conserved_at_every_sample(day: World) -> None:
    entries = sorted(day.truth.entries)
    exits = sorted(day.truth.exits)
    for when, inside in zip(day.truth.inside_times, day.truth.inside, strict=True):
        entered = sum(n for t, n in entries if t <= when)
        left = sum(n for t, n in exits if t <= when)
        assert inside == entered - left


def test_recorded_waits_are_boarding_minus_entry(day: World) -> None:
    assert day.truth.rides
    for ride in day.truth.rides:
        assert ride.boarded_s > ride.joined_s
        assert ride.wait_s == ride.boarded_s - ride.joined_s
        assert day.open_s <= ride.joined_s <= day.close_s + 3600


def test_a_ride_camera_shows_exactly_the_vehicle_it_follows(day: World) -> None:
    captures = [c for c in day.truth.captures.values() if c.attraction]
    assert captures
    for capture in captures:
        assert capture.attraction is not None
        q = day.venue.attraction(capture.attraction).queue
        assert q is not None
        assert 1 <= len(capture.guests) <= q.vehicle_capacity


def test_taps_match_what_guests_did(day: World) -> None:
    taps = day.truth.taps
    assert taps["entry"] == taps["exit"] == 600
    assert taps["boarding"] == len(day.truth.rides)
    standby = sum(1 for r in day.truth.rides if not r.via_return)
    assert taps["standby"] >= standby


def test_the_same_seed_plays_the_same_day(park: tuple[Venue, Geography]) -> None:
    venue, geo = park
    first = play(venue, geo, guests=250, seed=11, hours=3)
    second = play(venue, geo, guests=250, seed=11, hours=3)
    other = play(venue, geo, guests=250, seed=12, hours=3)
    assert first.truth.rides == second.truth.rides
    assert first.truth.purchases == second.truth.purchases
    assert first.truth.occupancy == second.truth.occupancy
    assert first.truth.rides != other.truth.rides


def test_a_cut_day_leaves_the_rest_inside(park: tuple[Venue, Geography]) -> None:
    venue, geo = park
    world = play(venue, geo, guests=300, seed=5, hours=1)
    assert world.engine.now >= world.end_s
    entered = sum(n for _, n in world.truth.entries)
    left = sum(n for _, n in world.truth.exits)
    inside = sum(a.party.size for a in world.present.values() if a.inside)
    assert entered == left + inside
    assert all(a.party.arrive_s < world.end_s for a in world.agents if a.state != State.EXPECTED)


def test_the_mall_plays_with_no_gates() -> None:
    venue = load_venue(MALL)
    world = play(venue, None, guests=400, seed=2)
    assert world.truth.arrived_guests == 400
    assert world.truth.left_guests == 400
    assert "entry" not in world.truth.taps
    assert world.truth.rides  # the food counters and metered stores have lines
    assert world.truth.purchases


def test_the_truth_knows_where_each_party_was(day: World) -> None:
    trails = day.truth.trails
    assert len(trails) == len(day.agents)
    zones = {z.id for z in day.venue.zones}
    for party, (times, where) in trails.items():
        assert times == sorted(times)
        assert all(a != b for a, b in pairwise(where))  # only changes are kept
        assert set(where) <= zones
        assert day.truth.zone_at(party, times[0] - 1.0) == ""
        for t, zone in zip(times, where, strict=True):
            assert day.truth.zone_at(party, t) == zone


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_any_seed_plays_the_same_day_twice(seed: int) -> None:
    venue, geo = _PARK
    first = play(venue, geo, guests=60, seed=seed, hours=1)
    second = play(venue, geo, guests=60, seed=seed, hours=1)
    assert first.truth.rides == second.truth.rides
    assert first.truth.trails == second.truth.trails
    assert first.truth.purchases == second.truth.purchases
    assert first.truth.captures == second.truth.captures
