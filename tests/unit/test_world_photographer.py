"""The world's photographers serve one party at a time, so the suite's rule (a
photographer's photos belong to the party of the device's latest tap before
them) and the world's truth (who is in each photo) agree however crowded a
photo spot gets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from services.platform.config import ROOT
from services.venue_model import load_venue
from sim.config import WorldConfig
from sim.day import offline_world
from sim.frame import DayFrame
from sim.geography import Geography
from sim.population import Member, Party
from sim.ports import OfflineDevices

PARK = ROOT / "venues" / "lantern-bay-park.yaml"
VENUE = load_venue(PARK)
# Built once for the module: hypothesis examples cannot take function fixtures.
GEO = Geography(VENUE)
DAY = date(2026, 7, 4)


class Recorder(OfflineDevices):
    def __init__(self) -> None:
        self.taps: list[tuple[str, float, int]] = []  # camera, device time, party
        self.captures: dict[str, tuple[str, float]] = {}  # capture id -> camera, device time

    def photographer_tap(self, camera: str, party: Party, member: Member, t: float) -> None:
        self.taps.append((camera, t, party.index))

    def capture(self, camera: str, capture_id: str, taken_s: float) -> None:
        self.captures[capture_id] = (camera, taken_s)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=400.0), min_size=2, max_size=12))
def test_each_photographer_photo_shows_the_party_of_the_latest_tap(arrivals: list[float]) -> None:
    config = WorldConfig(venue_file=Path(PARK), guests=60, seed=1)
    world = offline_world(VENUE, config, DayFrame.of(DAY, VENUE.timezone), GEO)
    devices = Recorder()
    world.devices = devices
    spot = world.places.photo_spots[0].id
    start = world.open_s + 3600.0
    agents = world.agents[: len(arrivals)]
    for agent, offset in zip(agents, arrivals, strict=False):
        world.engine.at(start + offset, world.at_photo_spot, agent, spot)
    world.engine.run_until(start + 4 * 3600.0)

    taps = sorted((t, party) for camera, t, party in devices.taps if camera == spot)
    photographed = 0
    for capture_id, (camera, taken) in devices.captures.items():
        truth = world.truth.captures[capture_id]
        if camera != spot or truth.attraction is not None:
            continue
        before = [party for t, party in taps if t <= taken]
        assert before, "a photo before any tap"
        assert truth.parties == (before[-1],)
        photographed += 1
    assert photographed == 2 * len(taps) > 0
