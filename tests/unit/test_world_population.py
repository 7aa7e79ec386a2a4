"""Who comes: exactly the guests asked for, arriving by the venue's curve, with
bands the suite accepts, and wishes their shortest member is tall enough for."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.platform.config import ROOT
from services.venue_model import Venue, load_venue
from sim.config import Shares
from sim.frame import DayFrame
from sim.population import Party, generate

BAND = re.compile(r"^[0-9A-Za-z:_-]{4,64}$")


@pytest.fixture(scope="module")
def venue() -> Venue:
    return load_venue(ROOT / "venues" / "lantern-bay-park.yaml")


def parties_of(
    venue: Venue, guests: int, seed: int, hours: float | None = None
) -> tuple[list[Party], float, float, DayFrame]:
    frame = DayFrame.of(date(2026, 7, 4), venue.timezone)
    open_s = frame.at_clock(venue.hours.opens)
    close_s = frame.at_clock(venue.hours.closes)
    end_s = close_s if hours is None else open_s + hours * 3600
    rng = np.random.default_rng(seed)
    return (
        generate(venue, guests, rng, Shares(), "T1", frame.at_clock, open_s, end_s, close_s),
        open_s,
        end_s,
        frame,
    )


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 1500), st.integers(0, 2**31))
def test_exactly_the_guests_asked_for(venue: Venue, guests: int, seed: int) -> None:
    parties, open_s, end_s, _ = parties_of(venue, guests, seed)
    assert sum(p.size for p in parties) == guests
    assert all(p.size >= 1 for p in parties)
    assert all(open_s <= p.arrive_s < end_s for p in parties)
    assert all(p.arrive_s < p.leave_s for p in parties)
    indexes = [m.index for p in parties for m in p.members]
    assert indexes == list(range(guests))


def test_arrivals_follow_the_hourly_curve(venue: Venue) -> None:
    parties, _, _, frame = parties_of(venue, 10_000, 1)
    by_hour = Counter(int(frame.instant(p.arrive_s).hour) for p in parties)
    weights = {h.hour: h.weight for h in venue.demand.arrivals_by_hour}
    total = sum(by_hour.values())
    for hour, weight in weights.items():
        assert abs(by_hour[hour] / total - weight / sum(weights.values())) < 0.02


def test_bands_are_unique_and_valid_and_children_follow_their_adult(venue: Venue) -> None:
    parties, *_ = parties_of(venue, 2000, 4)
    bands = [m.band_uid for p in parties for m in p.members]
    assert len(set(bands)) == len(bands)
    assert all(BAND.match(b) for b in bands)
    for p in parties:
        assert p.members[0].adult
        for m in p.members:
            if not m.adult:
                assert m.consent == p.members[0].consent


def test_wishes_fit_the_shortest_member(venue: Venue) -> None:
    parties, *_ = parties_of(venue, 3000, 5)
    for p in parties:
        assert len({w.attraction for w in p.wishes}) == len(p.wishes)
        for wish in p.wishes:
            q = venue.attraction(wish.attraction).queue
            assert q is not None
            assert q.min_height_cm is None or q.min_height_cm <= p.shortest_cm


def test_a_short_day_brings_everyone_within_its_hours(venue: Venue) -> None:
    parties, open_s, end_s, _ = parties_of(venue, 300, 9, hours=1)
    assert sum(p.size for p in parties) == 300
    assert all(open_s <= p.arrive_s < end_s for p in parties)
