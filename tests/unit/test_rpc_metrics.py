"""rpc.server.duration leaves the platform's own histogram exactly as the SDK's
Histogram instrument would have sent it: same name, unit, scope, attributes,
bounds, counts, sums, min and max, cumulative and delta."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.resources import Resource

from services.platform import semconv
from services.platform.rpc_metrics import DurationExport, DurationHistogram

RESOURCE = Resource.create({"service.name": "venue-test"})
SERIES = [
    (
        ("rpc.system", "grpc"),
        ("rpc.service", "venue.identity.v1.IdentityService"),
        ("rpc.method", method),
        ("rpc.grpc.status_code", code),
    )
    for method in ("ResolveBand", "LinkBand")
    for code in (0, 5, 4)
]
DELTA: dict[type, AggregationTemporality] = {HistogramInstrument: AggregationTemporality.DELTA}


class Capture(MetricExporter):
    def __init__(self, temporality: dict[type, AggregationTemporality] | None = None) -> None:
        super().__init__(preferred_temporality=temporality or {}, preferred_aggregation={})
        self.exported: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.exported.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _points(data: MetricsData | None) -> dict[Any, Any]:
    """Each rpc.server.duration point by its attributes, less its timestamps."""
    found: dict[Any, Any] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != semconv.RPC_SERVER_DURATION.name:
                    continue
                assert scope.scope.name == "venue.rpc"
                assert metric.unit == "ms"
                assert metric.description == semconv.RPC_SERVER_DURATION.description
                histogram = metric.data
                assert isinstance(histogram, Histogram)
                for p in histogram.data_points:
                    found[tuple(sorted((p.attributes or {}).items()))] = (
                        histogram.aggregation_temporality,
                        p.count,
                        round(p.sum, 9),
                        tuple(p.bucket_counts),
                        tuple(p.explicit_bounds),
                        p.min,
                        p.max,
                    )
    return found


values = st.floats(min_value=0, max_value=20_000, allow_nan=False, allow_infinity=False)
rounds = st.lists(
    st.lists(st.tuples(st.integers(0, len(SERIES) - 1), values), max_size=40),
    min_size=1,
    max_size=4,
)


@settings(max_examples=40, deadline=None)
@given(rounds=rounds)
def test_export_matches_the_sdk_instrument_cumulative_and_delta(
    rounds: list[list[tuple[int, float]]],
) -> None:
    cumulative_sdk, delta_sdk = InMemoryMetricReader(), InMemoryMetricReader(DELTA)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[cumulative_sdk, delta_sdk])
    instrument = semconv.histogram(provider.get_meter("venue.rpc"), semconv.RPC_SERVER_DURATION)
    ours = DurationHistogram()
    cumulative, delta = Capture(), Capture(DELTA)
    exports = [DurationExport(cumulative, RESOURCE, ours), DurationExport(delta, RESOURCE, ours)]
    for measurements in rounds:
        for index, value in measurements:
            instrument.record(value, dict(SERIES[index]))
            ours.record(SERIES[index], value)
        for export in exports:
            export.export(MetricsData([]))
        assert _points(cumulative.exported[-1]) == _points(cumulative_sdk.get_metrics_data())
        assert _points(delta.exported[-1]) == _points(delta_sdk.get_metrics_data())
    provider.shutdown()


def test_joins_the_other_metrics_of_its_resource_and_scope() -> None:
    sdk = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[sdk])
    provider.get_meter("venue.rpc").create_counter("venue.other").add(1)
    provider.get_meter("venue.access").create_counter("venue.access.taps").add(2)
    ours = DurationHistogram()
    capture = Capture()
    export = DurationExport(capture, RESOURCE, ours)
    ours.record(SERIES[0], 3.0)
    data = sdk.get_metrics_data()
    assert data is not None
    export.export(data)
    [resource] = capture.exported[0].resource_metrics
    by_scope = {s.scope.name: sorted(m.name for m in s.metrics) for s in resource.scope_metrics}
    assert by_scope == {
        "venue.rpc": ["rpc.server.duration", "venue.other"],
        "venue.access": ["venue.access.taps"],
    }
    # Nothing recorded since: a delta exporter sends no point, a cumulative one repeats it.
    export.export(MetricsData([]))
    assert _points(capture.exported[1])[tuple(sorted(SERIES[0]))][1] == 1
    provider.shutdown()
