"""rpc.server.duration, recorded cheaply and exported as the same OTel histogram.

Every call of every service records its duration. Through the SDK's Histogram
that cost about 25 µs a call (a Measurement object, the exemplar filter, a hash
of the attribute dict, locks per view): more than the rest of the platform's
metrics together. Here a call's series (method and status code) is known before
the call, so recording is a bisect and a few additions under one lock; the
exporters of the SDK's metric readers get the histogram added to what they
export (`DurationExport` wraps them), with the SDK's default bucket bounds, its
temporality rules (cumulative points repeat while nothing new arrives, delta
points only for series that moved) and its instrumentation scope. So the
collector, Prometheus and the dashboards see exactly what the SDK's instrument
sent (tests/unit/test_rpc_metrics.py compares the two).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from services.platform import semconv

# The SDK's default bounds for an explicit-bucket histogram (the instrument
# declared none), so the buckets a dashboard reads do not change.
DEFAULT_BOUNDS: tuple[float, ...] = (
    0.0,
    5.0,
    10.0,
    25.0,
    50.0,
    75.0,
    100.0,
    250.0,
    500.0,
    750.0,
    1000.0,
    2500.0,
    5000.0,
    7500.0,
    10000.0,
)

Attributes = tuple[tuple[str, str | int], ...]


class _Bins:
    """One series' counts, sum, min and max over some interval."""

    __slots__ = ("counts", "max", "min", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, other: _Bins) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)


@dataclass
class _Reader:
    """What one exporter has seen: everything (cumulative) or since its last export."""

    cumulative: bool
    last_collection_ns: int
    total: dict[Attributes, _Bins] = field(default_factory=dict)
    pending: dict[Attributes, _Bins] = field(default_factory=dict)


class DurationHistogram:
    """A histogram of one metric whose series are known up front.

    The hot path (`record`) fills one interval; an export takes the interval and
    adds it to every reader's view, so any number of exporters, cumulative or
    delta, each see every measurement once."""

    def __init__(
        self,
        metric: semconv.Metric = semconv.RPC_SERVER_DURATION,
        scope: str = "venue.rpc",
        bounds: Sequence[float] = DEFAULT_BOUNDS,
    ) -> None:
        assert metric.kind == "histogram", metric.name
        self.metric = metric
        self.scope = InstrumentationScope(scope)
        self.bounds = tuple(bounds)
        self._buckets = len(self.bounds) + 1
        self._lock = threading.Lock()
        self._interval: dict[Attributes, _Bins] = {}
        self._started: dict[Attributes, int] = {}
        self._readers: list[_Reader] = []

    def record(self, series: Attributes, value: float) -> None:
        """Add one measurement (a non-negative, finite value) to `series`."""
        index = bisect_left(self.bounds, value)
        with self._lock:
            bins = self._interval.get(series)
            if bins is None:
                bins = self._interval[series] = _Bins(self._buckets)
                self._started.setdefault(series, time.time_ns())
            bins.counts[index] += 1
            bins.sum += value
            bins.min = min(bins.min, value)
            bins.max = max(bins.max, value)

    def reader(self, cumulative: bool) -> _Reader:
        reader = _Reader(cumulative, time.time_ns())
        with self._lock:
            self._readers.append(reader)
        return reader

    def collect(self, reader: _Reader) -> Metric | None:
        """The metric as `reader` should export it now; None if it has no point."""
        now = time.time_ns()
        with self._lock:
            interval, self._interval = self._interval, {}
            for other in self._readers:
                for series, bins in interval.items():
                    for view in (other.total, other.pending):
                        kept = view.get(series)
                        if kept is None:
                            view[series] = kept = _Bins(self._buckets)
                        kept.add(bins)
            chosen = reader.total if reader.cumulative else reader.pending
            points = [
                HistogramDataPoint(
                    attributes=dict(series),
                    start_time_unix_nano=(
                        self._started[series] if reader.cumulative else reader.last_collection_ns
                    ),
                    time_unix_nano=now,
                    count=sum(bins.counts),
                    sum=bins.sum,
                    bucket_counts=tuple(bins.counts),
                    explicit_bounds=self.bounds,
                    min=bins.min,
                    max=bins.max,
                )
                for series, bins in chosen.items()
            ]
            reader.pending = {}
            reader.last_collection_ns = now
        if not points:
            return None
        temporality = (
            AggregationTemporality.CUMULATIVE if reader.cumulative else AggregationTemporality.DELTA
        )
        return Metric(
            name=self.metric.name,
            description=self.metric.description,
            unit=self.metric.unit,
            data=Histogram(data_points=points, aggregation_temporality=temporality),
        )


# The process's rpc.server.duration: the interceptor records, exporters read.
RPC_DURATIONS = DurationHistogram()


def add_metric(
    data: MetricsData, resource: Resource, scope: InstrumentationScope, metric: Metric
) -> MetricsData:
    """`data` with `metric` added under `scope` of the (first) resource."""
    if not data.resource_metrics:
        only = ResourceMetrics(resource, [ScopeMetrics(scope, [metric], "")], resource.schema_url)
        return MetricsData([only])
    first, *rest = data.resource_metrics
    scopes = list(first.scope_metrics)
    for i, existing in enumerate(scopes):
        if existing.scope.name == scope.name and existing.scope.version == scope.version:
            scopes[i] = replace(existing, metrics=[*existing.metrics, metric])
            break
    else:
        scopes.append(ScopeMetrics(scope, [metric], ""))
    return MetricsData([replace(first, scope_metrics=scopes), *rest])


class DurationExport(MetricExporter):
    """An exporter of a metric reader, with the RPC durations added to each export."""

    def __init__(
        self,
        inner: MetricExporter,
        resource: Resource,
        histogram: DurationHistogram = RPC_DURATIONS,
    ) -> None:
        preferred: Mapping[type, AggregationTemporality] = inner._preferred_temporality or {}
        super().__init__(
            preferred_temporality=dict(preferred),
            preferred_aggregation=dict(inner._preferred_aggregation or {}),
        )
        self._inner = inner
        self._resource = resource
        self._histogram = histogram
        cumulative = (
            preferred.get(HistogramInstrument, AggregationTemporality.CUMULATIVE)
            is AggregationTemporality.CUMULATIVE
        )
        self._reader = histogram.reader(cumulative)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        metric = self._histogram.collect(self._reader)
        if metric is not None:
            metrics_data = add_metric(metrics_data, self._resource, self._histogram.scope, metric)
        return self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
