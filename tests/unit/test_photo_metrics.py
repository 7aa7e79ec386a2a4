"""Photo's instruments carry the names and attribute keys the dashboards
query (docs/observability.md)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.photo.telemetry import PhotoMetrics
from services.platform import semconv


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


def test_captures_are_counted_by_outcome_and_pending_is_a_gauge() -> None:
    reader = InMemoryMetricReader()
    telemetry = PhotoMetrics(MeterProvider(metric_readers=[reader]).get_meter("venue.photo"))
    telemetry.captures("linked")
    telemetry.captures("linked")
    telemetry.captures("held")
    telemetry.captures("deleted", 3)
    telemetry.captures("deleted", 0)
    telemetry.pending(7)
    found = points(reader)
    captures = {dict(p.attributes)["venue.outcome"]: p.value for p in found["venue.photo.captures"]}
    assert captures == {"linked": 2, "held": 1, "deleted": 3}
    assert [(dict(p.attributes), p.value) for p in found["venue.photo.pending"]] == [({}, 7)]
    telemetry.pending(2)
    assert [p.value for p in points(reader)["venue.photo.pending"]] == [2]


def test_the_instruments_are_the_ones_the_dashboards_query() -> None:
    reader = InMemoryMetricReader()
    telemetry = PhotoMetrics(MeterProvider(metric_readers=[reader]).get_meter("venue.photo"))
    telemetry.captures("rejected")
    telemetry.pending(0)
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    for named in (semconv.PHOTO_CAPTURES, semconv.PHOTO_PENDING):
        assert metrics[named.name].unit == named.unit
        for point in metrics[named.name].data.data_points:
            assert set(point.attributes or {}) == set(named.attributes)
