"""The day report's slowest traces come from the spans the services kept on
disk: slowest first, with the attributes an operator searches by, errors
counted per call, and never from a collector's folder that isn't there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.platform import semconv
from services.platform.telemetry_files import LocalSpanFile
from sim.report.markdown import _traces
from sim.report.traces import slowest_traces


def test_slowest_server_spans_first_with_where_they_happened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    processor = LocalSpanFile(
        tmp_path / "traces-access.jsonl", sample_per_mille=0, slowest_per_minute=5, flush_seconds=60
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "venue-access"}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for millis, point in ((2, "gate.1"), (25, "gate.2"), (8, "gate.3")):
        with tracer.start_as_current_span(
            "/venue.access.v1.AccessService/Tap", kind=SpanKind.SERVER
        ) as span:
            span.set_attribute(semconv.ACCESS_POINT, point)
            time.sleep(millis / 1000)
    with tracer.start_as_current_span(
        "/venue.access.v1.AccessService/WatchAccessEvents", kind=SpanKind.SERVER
    ):
        time.sleep(0.05)  # a stream held open: long by design, not slow
    with tracer.start_as_current_span(
        "/venue.access.v1.AccessService/Charge", kind=SpanKind.SERVER
    ) as span:
        span.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()

    traces = slowest_traces(tmp_path, limit=2)
    assert traces["status"] == "ok"
    assert [row["where"] for row in traces["slowest"]] == [
        f"{semconv.ACCESS_POINT}=gate.2",
        f"{semconv.ACCESS_POINT}=gate.3",
    ]
    assert traces["slowest"][0]["ms"] >= 25
    assert traces["slowest"][0]["service"] == "venue-access"
    assert traces["errors_by_rpc"] == {"venue-access /venue.access.v1.AccessService/Charge": 1}
    text = "\n".join(_traces({"traces": traces}))
    assert traces["slowest"][0]["trace_id"] in text


def test_a_collector_run_says_where_the_spans_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    traces = slowest_traces(tmp_path)
    assert traces["slowest"] == [] and "collector" in traces["status"]
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert slowest_traces(tmp_path / "missing")["status"] == "no telemetry folder"
