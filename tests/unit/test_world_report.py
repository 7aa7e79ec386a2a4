"""The report of a day: its figures are consistent with what the world recorded,
parts whose service was not running say so, and the folder holds the Markdown, the
figures as JSON and the charts."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from services.platform.config import ROOT
from services.venue_model import load_venue
from sim.config import WorldConfig
from sim.day import DayResult, offline_world
from sim.frame import DayFrame
from sim.report import write_report
from sim.report.metrics import card, wait_error
from sim.suite.stats import CallStats
from sim.truth import RideRecord


def ride(posted_min: float | None, waited_min: float) -> RideRecord:
    return RideRecord(
        guest=0,
        party=0,
        attraction="a",
        via_return=False,
        joined_s=0.0,
        boarded_s=waited_min * 60,
        posted_s=None if posted_min is None else posted_min * 60,
        posted_age_s=0.0,
        archetype="x",
        follows_app=False,
        uses_app=False,
        must=False,
    )


def test_wait_error_is_posted_minus_actual() -> None:
    err = wait_error([ride(10, 12), ride(20, 14), ride(5, 5), ride(None, 40)])
    assert err is not None
    assert err.joins == 3
    assert err.mae_min == pytest.approx((2 + 6 + 0) / 3, abs=0.01)
    assert err.bias_min == pytest.approx((-2 + 6 + 0) / 3, abs=0.01)
    assert err.within_5 == pytest.approx(200 / 3, abs=0.01)
    assert err.within_10 == 100.0
    assert wait_error([ride(None, 3)]) is None


@pytest.fixture(scope="module")
def result() -> DayResult:
    venue = load_venue(ROOT / "venues" / "lantern-bay-park.yaml")
    config = WorldConfig(guests=400, seed=4, hours=2)
    world = offline_world(venue, config, DayFrame.of(date(2026, 7, 4), venue.timezone))
    world.start()
    world.engine.run_until(float("inf"))
    return DayResult(config, venue, world.frame, world, {"identity"}, CallStats())


def test_the_card_agrees_with_the_world(result: DayResult) -> None:
    figures = card(result)
    a = figures["attendance"]
    assert a["entered"] == a["left"] + a["still_inside"]
    assert a["conserved"]
    assert figures["rides"]["boardings"] == len(result.world.truth.rides)
    riders = sum(row["riders"] for row in figures["rides"]["by_attraction"])
    assert riders == figures["rides"]["boardings"]
    assert figures["taps"]["total_made"] == sum(result.world.truth.taps.values())
    for part, service in (
        ("posted_waits", "queue"),
        ("location", "location"),
        ("nudges", "itinerary"),
    ):
        assert figures[part]["status"] == f"not measured yet: {service} not running"
    assert figures["taps"]["decided"] == "not measured yet: access not running"
    assert figures["photos"]["linking"] == "not measured yet: photo not running"


def test_the_report_folder(result: DayResult, tmp_path: Path) -> None:
    text = write_report(result, tmp_path, wall_s=1.0)
    assert "Day report" in text
    assert (tmp_path / "report.md").read_text().startswith("# Day report")
    figures = json.loads((tmp_path / "report.json").read_text())
    assert figures["guests"] == 400
    for chart in ("attendance.png", "occupancy.png", "waits.png"):
        assert (tmp_path / chart).stat().st_size > 1000
        assert f"]({chart})" in (tmp_path / "report.md").read_text()
