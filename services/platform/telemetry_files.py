"""Telemetry without a collector: OTLP JSON files an operator can read after a run.

When OTEL_EXPORTER_OTLP_ENDPOINT is unset and VENUE_TELEMETRY_DIR is set (the
runner sets it), each service writes, as OTLP/JSON lines (one export request a
line, ids in hex, the format of the collector's file exporter and its
otlpjsonfile receiver):

- traces-<service>.jsonl: not every span — at a park's call rates that would
  cost more CPU than the calls — but what an operator looks for afterwards:
  every span that ended in error; the slowest server spans of each RPC in each
  minute; and every span of a fixed sample of traces, chosen by trace id so
  that all services keep the same traces and each sampled trace is complete.
- metrics-<service>.jsonl: every metric, every export interval.
"""

from __future__ import annotations

import base64
import heapq
import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

_HEX_FIELDS = {"traceId", "spanId", "parentSpanId"}


def _hexify(node: Any) -> Any:
    """Protobuf JSON writes bytes as base64; OTLP/JSON wants trace and span ids in hex."""
    if isinstance(node, dict):
        return {
            k: base64.b64decode(v).hex() if k in _HEX_FIELDS and isinstance(v, str) else _hexify(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_hexify(v) for v in node]
    return node


class _JsonLines:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, message: Any) -> None:
        line = json.dumps(_hexify(MessageToDict(message)), separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class LocalSpanFile(SpanProcessor):
    """Keeps errors, the slowest server spans per RPC per minute, and a trace sample."""

    def __init__(
        self,
        path: Path,
        sample_per_mille: int = 10,
        slowest_per_minute: int = 5,
        flush_seconds: float = 5.0,
    ) -> None:
        self._out = _JsonLines(path)
        self._sample = sample_per_mille
        self._slowest = slowest_per_minute
        self._kept: list[ReadableSpan] = []
        # RPC name -> min-heap of (duration, tiebreak, span) for the current minute.
        self._slow: dict[str, list[tuple[int, int, ReadableSpan]]] = {}
        self._minute = int(time.time() // 60)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(flush_seconds,), name="local-span-file", daemon=True
        )
        self._thread.start()

    def _sampled(self, trace_id: int) -> bool:
        return (trace_id >> 64) % 1000 < self._sample

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        if span.status.status_code is StatusCode.ERROR or self._sampled(context.trace_id):
            with self._lock:
                self._kept.append(span)
            return
        if span.kind is not SpanKind.SERVER or span.end_time is None or span.start_time is None:
            return
        duration = span.end_time - span.start_time
        with self._lock:
            heap = self._slow.setdefault(span.name, [])
            entry = (duration, context.span_id, span)
            if len(heap) < self._slowest:
                heapq.heappush(heap, entry)
            elif duration > heap[0][0]:
                heapq.heapreplace(heap, entry)

    def _take(self, closing_minute: bool) -> list[ReadableSpan]:
        with self._lock:
            spans, self._kept = self._kept, []
            if closing_minute:
                for heap in self._slow.values():
                    spans += [span for _, _, span in heap]
                self._slow = {}
        return spans

    def _flush(self, closing_minute: bool) -> None:
        spans = self._take(closing_minute)
        if spans:
            self._out.write(encode_spans(spans))

    def _loop(self, every: float) -> None:
        while not self._stop.wait(every):
            minute = int(time.time() // 60)
            self._flush(closing_minute=minute != self._minute)
            self._minute = minute

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._flush(closing_minute=True)
        self._out.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._flush(closing_minute=False)
        return True


class LocalMetricFile(MetricExporter):
    def __init__(self, path: Path) -> None:
        super().__init__(preferred_temporality={}, preferred_aggregation={})
        self._out = _JsonLines(path)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self._out.write(encode_metrics(metrics_data))
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._out.close()


def telemetry_dir() -> Path | None:
    raw = os.environ.get("VENUE_TELEMETRY_DIR")
    return Path(raw) if raw else None


def read_spans(folder: Path) -> list[dict[str, Any]]:
    """Every span in a folder's trace files, flattened with its service name."""
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("traces-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            request = json.loads(line)
            for resource in request.get("resourceSpans", []):
                attrs = {
                    a["key"]: next(iter(a["value"].values()), None)
                    for a in resource.get("resource", {}).get("attributes", [])
                }
                for scope in resource.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        found.append({**span, "service": attrs.get("service.name", "")})
    return found
