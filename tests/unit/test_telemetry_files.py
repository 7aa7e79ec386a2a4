"""Local telemetry files: what an operator needs after a run, in OTLP/JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.platform.telemetry_files import LocalSpanFile, read_spans


def test_keeps_errors_the_slowest_server_spans_and_a_complete_sample(tmp_path: Path) -> None:
    processor = LocalSpanFile(
        tmp_path / "traces-test.jsonl", sample_per_mille=0, slowest_per_minute=2, flush_seconds=60
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for millis in (1, 2, 30, 40, 3):
        with tracer.start_as_current_span("/svc/Tap", kind=SpanKind.SERVER):
            time.sleep(millis / 1000)
    with tracer.start_as_current_span("/svc/Tap", kind=SpanKind.SERVER) as failed:
        failed.set_status(Status(StatusCode.ERROR, "boom"))
    with tracer.start_as_current_span("internal work"):
        pass
    provider.shutdown()
    spans = read_spans(tmp_path)
    durations = sorted(
        (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) // 1_000_000
        for s in spans
        if s.get("status", {}).get("code") != "STATUS_CODE_ERROR"
    )
    assert len(durations) == 2 and durations[0] >= 29, "the two slowest server spans"
    assert sum(s.get("status", {}).get("code") == "STATUS_CODE_ERROR" for s in spans) == 1
    assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in spans), "hex ids"
    assert not any(s["name"] == "internal work" for s in spans)


def test_sample_is_chosen_by_trace_id(tmp_path: Path) -> None:
    processor = LocalSpanFile(tmp_path / "traces-a.jsonl", sample_per_mille=1000, flush_seconds=60)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    provider.shutdown()
    spans = read_spans(tmp_path)
    assert {s["name"] for s in spans} == {"root", "child"}
    assert len({s["traceId"] for s in spans}) == 1
    line = (tmp_path / "traces-a.jsonl").read_text().splitlines()[0]
    assert "resourceSpans" in json.loads(line)
