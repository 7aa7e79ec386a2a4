"""Writes the Grafana dashboards (JSON models) into infra/grafana/dashboards/.

The dashboards are generated rather than hand-edited so that every query takes
its metric from services/platform/semconv.py, the same table the services
create their instruments from; tests/unit/test_dashboards.py checks the
committed files are what this writes.

  python -m tools.make_dashboards [--check]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from services.platform import semconv as sc
from services.platform.config import ROOT

OUT = ROOT / "infra" / "grafana" / "dashboards"
PROM = {"type": "prometheus", "uid": "prometheus"}
JAEGER = {"type": "jaeger", "uid": "jaeger"}

Json = dict[str, Any]


def label(attribute: str) -> str:
    return attribute.replace(".", "_")


def panel(
    title: str,
    kind: str,
    targets: list[Json],
    at: tuple[int, int, int, int],
    unit: str | None = None,
    datasource: Json = PROM,
) -> Json:
    x, y, w, h = at
    return {
        "title": title,
        "type": kind,
        "datasource": datasource,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [
            {"refId": chr(65 + i), "datasource": datasource, **t} for i, t in enumerate(targets)
        ],
        "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
        "options": {},
    }


def prom(expr: str, legend: str = "__auto") -> Json:
    return {"expr": expr, "legendFormat": legend}


def dashboard(
    uid: str, title: str, description: str, panels: list[Json], variables: list[Json] | None = None
) -> Json:
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "tags": ["venue-twin"],
        "timezone": "browser",
        "panels": panels,
        "templating": {"list": variables or []},
        "annotations": {"list": []},
    }


def overview() -> Json:
    occupancy = sc.ZONE_OCCUPANCY.prometheus
    density = sc.ZONE_DENSITY.prometheus
    taps = sc.ACCESS_TAPS.prometheus
    pays = sc.ACCESS_PAYMENTS.prometheus
    posted = sc.QUEUE_POSTED_WAIT.prometheus
    forecast = sc.QUEUE_FORECAST_WAIT.prometheus
    nudges = sc.ITINERARY_NUDGES.prometheus
    captures = sc.PHOTO_CAPTURES.prometheus
    pending = sc.PHOTO_PENDING.prometheus
    kind, decision, reason = (
        label(sc.ACCESS_POINT_KIND),
        label(sc.DECISION),
        label(sc.DENY_REASON),
    )
    outcome, zone, attraction = label(sc.OUTCOME), label(sc.ZONE), label(sc.ATTRACTION)
    gates = f'{kind}=~"park_entry|park_exit", {decision}="allow"'
    return dashboard(
        "venue-overview",
        "Venue overview",
        "What the venue is doing now: attendance, zones, waits, gates, payments, nudges, photos.",
        [
            panel(
                "Guests in the venue", "stat", [prom(f"sum({occupancy})", "guests")], (0, 0, 6, 4)
            ),
            panel(
                "Gate entries per minute",
                "stat",
                [
                    prom(
                        f'sum(rate({taps}{{{kind}="park_entry", {decision}="allow"}}[1m])) * 60',
                        "entries/min",
                    )
                ],
                (6, 0, 6, 4),
            ),
            panel(
                "Longest posted wait",
                "stat",
                [prom(f"max({posted})", "minutes")],
                (12, 0, 6, 4),
                unit="m",
            ),
            panel(
                "Payments declined (5 min)",
                "stat",
                [prom(f'sum(increase({pays}{{{outcome}="declined"}}[5m]))', "declined")],
                (18, 0, 6, 4),
            ),
            panel(
                "Attendance over the day",
                "timeseries",
                [prom(f"sum({occupancy})", "guests in the venue")],
                (0, 4, 12, 8),
            ),
            panel(
                "Gate throughput (guests per minute)",
                "timeseries",
                [prom(f"sum by ({kind}) (rate({taps}{{{gates}}}[1m])) * 60", f"{{{{{kind}}}}}")],
                (12, 4, 12, 8),
            ),
            panel(
                "Zone occupancy heat (density against capacity)",
                "status-history",
                [prom(density, f"{{{{{zone}}}}}")],
                (0, 12, 24, 10),
                unit="percentunit",
            ),
            panel(
                "Posted standby wait per attraction",
                "timeseries",
                [prom(posted, f"{{{{{attraction}}}}}")],
                (0, 22, 12, 8),
                unit="m",
            ),
            panel(
                "Forecast wait one hour ahead",
                "timeseries",
                [prom(f'{forecast}{{{label(sc.HORIZON)}="60m"}}', f"{{{{{attraction}}}}}")],
                (12, 22, 12, 8),
                unit="m",
            ),
            panel(
                "Tap decisions",
                "timeseries",
                [
                    prom(
                        f"sum by ({decision}, {reason}) (rate({taps}[5m]))",
                        f"{{{{{decision}}}}} {{{{{reason}}}}}",
                    )
                ],
                (0, 30, 12, 8),
            ),
            panel(
                "Payments by outcome",
                "timeseries",
                [prom(f"sum by ({outcome}) (rate({pays}[5m]))", f"{{{{{outcome}}}}}")],
                (12, 30, 12, 8),
            ),
            panel(
                "Nudges by kind and outcome",
                "timeseries",
                [
                    prom(
                        f"sum by ({label(sc.NUDGE_KIND)}, {outcome}) (rate({nudges}[5m]))",
                        f"{{{{{label(sc.NUDGE_KIND)}}}}} {{{{{outcome}}}}}",
                    )
                ],
                (0, 38, 12, 8),
            ),
            panel(
                "Photos by outcome, and pending",
                "timeseries",
                [
                    prom(f"sum by ({outcome}) (rate({captures}[5m]))", f"{{{{{outcome}}}}}"),
                    prom(f"sum({pending})", "pending"),
                ],
                (12, 38, 12, 8),
            ),
        ],
    )


def health() -> Json:
    rpc = sc.RPC_SERVER_DURATION.prometheus
    lag = sc.EVENTS_LAG.prometheus
    handled = sc.EVENTS_HANDLED.prometheus
    pings = sc.LOCATION_PINGS.prometheus
    consumer, outcome, why = label(sc.CONSUMER), label(sc.OUTCOME), label(sc.REASON)

    def quantile(q: str) -> str:
        return (
            f"histogram_quantile({q}, sum by (le, service_name, rpc_method) "
            f"(rate({rpc}_bucket[5m])))"
        )

    return dashboard(
        "service-health",
        "Service health",
        "Rates, errors and latency of every service, and the lag of every event-stream consumer.",
        [
            panel(
                "Requests per second by service",
                "timeseries",
                [prom(f"sum by (service_name) (rate({rpc}_count[1m]))", "{{service_name}}")],
                (0, 0, 12, 8),
                unit="reqps",
            ),
            panel(
                "Errors per second by service and code",
                "timeseries",
                [
                    prom(
                        "sum by (service_name, rpc_grpc_status_code) "
                        f'(rate({rpc}_count{{rpc_grpc_status_code!="0"}}[1m]))',
                        "{{service_name}} {{rpc_grpc_status_code}}",
                    )
                ],
                (12, 0, 12, 8),
                unit="reqps",
            ),
            panel(
                "p99 latency by method",
                "timeseries",
                [prom(quantile("0.99"), "{{service_name}} {{rpc_method}}")],
                (0, 8, 12, 8),
                unit="ms",
            ),
            panel(
                "p50 latency by method",
                "timeseries",
                [prom(quantile("0.5"), "{{service_name}} {{rpc_method}}")],
                (12, 8, 12, 8),
                unit="ms",
            ),
            panel(
                "Event-stream lag per consumer (p99)",
                "timeseries",
                [
                    prom(
                        f"histogram_quantile(0.99, sum by (le, {consumer}) "
                        f"(rate({lag}_bucket[5m])))",
                        f"{{{{{consumer}}}}}",
                    )
                ],
                (0, 16, 12, 8),
                unit="s",
            ),
            panel(
                "Events handled per consumer",
                "timeseries",
                [prom(f"sum by ({consumer}) (rate({handled}[1m]))", f"{{{{{consumer}}}}}")],
                (12, 16, 12, 8),
            ),
            panel(
                "Pings ingested and dropped",
                "timeseries",
                [
                    prom(
                        f"sum by ({outcome}, {why}) (rate({pings}[1m]))",
                        f"{{{{{outcome}}}}} {{{{{why}}}}}",
                    )
                ],
                (0, 24, 12, 8),
            ),
        ],
    )


def jaeger(service: str, tags: str) -> Json:
    return {"queryType": "search", "service": f"venue-{service}", "tags": tags, "limit": 50}


def trace_search() -> Json:
    return dashboard(
        "trace-search",
        "Trace search",
        "Find traces by attraction, access point or decision (pseudonymous ids only).",
        [
            panel(
                "Taps at an access point",
                "table",
                [jaeger("access", f"{sc.ACCESS_POINT}=$access_point")],
                (0, 0, 24, 10),
                datasource=JAEGER,
            ),
            panel(
                "Taps and queue work for an attraction",
                "table",
                [
                    jaeger("access", f"{sc.ATTRACTION}=$attraction"),
                    jaeger("queue", f"{sc.ATTRACTION}=$attraction"),
                ],
                (0, 10, 24, 10),
                datasource=JAEGER,
            ),
            panel(
                "Denied taps",
                "table",
                [jaeger("access", f"{sc.DECISION}=deny")],
                (0, 20, 24, 10),
                datasource=JAEGER,
            ),
            panel(
                "Calls that failed, by reason",
                "table",
                [jaeger("access", "error=true")],
                (0, 30, 24, 10),
                datasource=JAEGER,
            ),
        ],
        [
            {"name": "attraction", "type": "textbox", "label": "Attraction id", "query": ""},
            {"name": "access_point", "type": "textbox", "label": "Access point id", "query": ""},
        ],
    )


def dashboards() -> dict[str, Json]:
    return {
        "venue-overview.json": overview(),
        "service-health.json": health(),
        "trace-search.json": trace_search(),
    }


def render(model: Json) -> str:
    return json.dumps(model, indent=2) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, model in dashboards().items():
        path: Path = OUT / name
        text = render(model)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        print("dashboards out of date (run python -m tools.make_dashboards):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
