"""Every Grafana dashboard query names a metric the services emit, with labels
that metric carries, and every trace search a venue attribute the services
set: a renamed instrument or attribute breaks this test, not the ops team's
board in the middle of a busy day."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from services.platform import semconv
from services.platform.config import ROOT, SERVICE_PORTS
from tools import make_dashboards

DASHBOARDS = {
    path.name: json.loads(path.read_text()) for path in make_dashboards.OUT.glob("*.json")
}
SERIES = {series: metric for metric in semconv.METRICS for series in metric.series}
ATTRIBUTES = {
    value
    for name, value in vars(semconv).items()
    if name.isupper() and isinstance(value, str) and value.startswith("venue.")
}


def targets(datasource: str) -> list[dict[str, Any]]:
    return [
        target
        for board in DASHBOARDS.values()
        for panel in board["panels"]
        for target in panel["targets"]
        if target["datasource"]["type"] == datasource
    ]


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    assert make_dashboards.main(["--check"]) == 0
    assert set(DASHBOARDS) == {"venue-overview.json", "service-health.json", "trace-search.json"}


def test_every_query_names_an_emitted_metric_and_its_labels() -> None:
    queries = [t["expr"] for t in targets("prometheus")]
    assert len(queries) >= 15
    used: set[str] = set()
    for expr in queries:
        bare = re.sub(r"by \([^)]*\)|\{[^}]*\}", "", expr)
        names = set(re.findall(r"\b((?:venue|rpc)_[a-z_]+)\b", bare))
        assert names, expr
        for name in names:
            assert name in SERIES, f"{name} in {expr!r} is not a metric the services emit"
        metric = SERIES[next(iter(names))]
        used.add(metric.name)
        labels = set()
        for group in re.findall(r"by \(([^)]*)\)", expr):
            labels |= {x.strip() for x in group.split(",")}
        labels |= set(re.findall(r"([a-z_]+)\s*(?:=~|!=|=)\s*\"", expr))
        assert labels <= metric.labels, f"{expr!r}: {labels - metric.labels} not on {metric.name}"
    # The list: every metric family the ops team needs is on a board.
    assert used == {m.name for m in semconv.METRICS}


def test_every_trace_search_uses_a_venue_attribute_of_a_real_service() -> None:
    searches = targets("jaeger")
    assert searches
    for search in searches:
        assert search["service"].removeprefix("venue-") in SERVICE_PORTS
        key = search["tags"].split("=")[0]
        assert key in ATTRIBUTES or key == "error", key


def test_grafana_provisions_the_dashboards_folder_it_is_given() -> None:
    provider = yaml.safe_load(
        (ROOT / "infra/grafana/provisioning/dashboards/dashboards.yaml").read_text()
    )
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = provider["providers"][0]["options"]["path"]
    assert f"./infra/grafana/dashboards:{path}:ro" in mounts


def test_prometheus_names_follow_the_collector_exporter() -> None:
    assert semconv.ACCESS_TAPS.prometheus == "venue_access_taps_total"
    assert semconv.QUEUE_POSTED_WAIT.prometheus == "venue_queue_posted_wait_minutes"
    assert semconv.ZONE_DENSITY.prometheus == "venue_location_zone_density_ratio"
    assert semconv.RPC_SERVER_DURATION.series[0] == "rpc_server_duration_milliseconds_bucket"
    assert semconv.EVENTS_LAG.prometheus == "venue_events_consumer_lag_seconds"
