"""Photo's instruments carry the names and attribute keys the dashboards
query (docs/observability.md)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.photo.telemetry import PhotoMetrics
from venue.photo.v1 import photo_pb2 as pb


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
    for outcome in (
        pb.CAPTURE_OUTCOME_ACCEPTED,
        pb.CAPTURE_OUTCOME_ACCEPTED,
        pb.CAPTURE_OUTCOME_DUPLICATE,
        pb.CAPTURE_OUTCOME_REJECTED,
    ):
        telemetry.captured(outcome)
    waiting = [7]
    telemetry.count_pending(lambda: waiting[0])
    found = points(reader)
    captures = {dict(p.attributes)["venue.outcome"]: p.value for p in found["venue.photo.captures"]}
    assert captures == {"accepted": 2, "duplicate": 1, "rejected": 1}
    assert [(dict(p.attributes), p.value) for p in found["venue.photo.pending"]] == [({}, 7)]
    waiting[0] = 2
    assert [p.value for p in points(reader)["venue.photo.pending"]] == [2]
