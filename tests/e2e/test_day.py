"""`venue run` as a user runs it, on a short day: the suite as real processes, the
world playing 300 guests for an hour of venue time at 200x, and a report
whose numbers hold together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.platform.config import ROOT

pytestmark = pytest.mark.e2e


# On a busy machine the suite gets up to four times longer to start (sim.run).
@pytest.mark.timeout(600)
def test_a_short_day_against_the_suite(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VENUE_")}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.runner.cli",
            "run",
            "--guests",
            "300",
            "--hours",
            "1",
            "--speed",
            "200",
            "--seed",
            "7",
            "--auto-ports",
            "--no-live",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "runs"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    (tmp_path / "out.txt").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    reports = list((tmp_path / "runs").glob("*/report.json"))
    assert len(reports) == 1, done.stdout
    folder = reports[0].parent
    f = json.loads(reports[0].read_text())
    assert f["guests"] == 300
    assert (folder / "report.md").exists()
    assert (folder / "attendance.png").exists()
    assert str(folder / "report.md") in done.stdout

    a = f["attendance"]
    assert 0 < a["entered"] <= 300
    assert a["entered"] == a["left"] + a["still_inside"]
    assert a["never_registered"] == 0
    assert f["calls"]["failed"] == 0
    assert f["calls"]["world_errors"] == []
    assert f["desk"]["devices_registered"] > 500

    running = set(f["services"])
    taps, pay = f["taps"], f["payments"]
    if "access" in running:
        assert taps["all_decided"], taps
        assert taps["allowed"] + sum(taps["denied"].values()) == taps["total_made"]
        assert taps["latency"]["p50_ms"] <= taps["latency"]["p99_ms"]
        assert pay["all_decided"] and pay["failed"] == 0, pay
    else:
        assert taps["decided"] == "not measured yet: access not running"
    for part, service in (
        ("posted_waits", "queue"),
        ("nudges", "itinerary"),
        ("location", "location"),
    ):
        if service not in running:
            assert f[part]["status"] == f"not measured yet: {service} not running"
    if "queue" in running:
        # Every standby join saw a posted wait once the tip board had one, and the
        # error figures are the twin's against the world's waits.
        w = f["posted_waits"]
        assert 0 < w["joins_with_posted_wait"] <= w["standby_joins"]
        assert w["mae_min"] >= abs(w["bias_min"])
        assert 0 <= w["within_5_pct"] <= w["within_10_pct"] <= 100
    if "photo" in running:
        p = f["photos"]
        assert p["links_correct"] + p["links_wrong"] > 0
        assert sum(p["acks"].values()) == p["ride_captures"] + p["photographer_captures"]
    if "itinerary" in running:
        n = f["nudges"]
        assert n["followed"] <= n["accepted"] <= n["received"]
    if "location" in running:
        loc = f["location"]
        assert loc["pings"]["rows_accepted"] == loc["pings"]["rows_sent"] > 0
