"""The day report: a folder with report.md, report.json and PNG charts, and the
terminal summary that points at it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sim.day import DayResult
from sim.report import charts
from sim.report.markdown import markdown, summary
from sim.report.metrics import card
from sim.report.traces import slowest_traces


def write_report(
    result: DayResult,
    out: Path,
    wall_s: float,
    stopped: list[str] | None = None,
    telemetry_dir: Path | None = None,
) -> str:
    """Write the report into `out`; returns the terminal summary."""
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = card(result)
    figures["wall_s"] = round(wall_s, 1)
    figures["services_stopped_early"] = stopped or []
    figures["traces"] = slowest_traces(telemetry_dir)
    images: dict[str, str | None] = {
        "attendance": charts.attendance(result, out),
        "occupancy": charts.occupancy(result, out),
        "waits": charts.waits(result, out),
        "wait_error": charts.wait_error(result, out),
        "latency": charts.latency(result, out),
        "events": charts.events(result, out),
        "nudges": charts.nudges(result, out, figures["nudges"].get("by_kind", {})),
    }
    (out / "report.json").write_text(json.dumps(figures, indent=2, default=str))
    (out / "report.md").write_text(markdown(result, figures, images))
    return summary(figures)
