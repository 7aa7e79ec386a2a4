"""The day's slowest traces, from the spans the services kept on disk.

Without a collector each service writes its errors, its slowest server spans
per RPC per minute and a trace sample as OTLP/JSON under the run's telemetry
folder (services/platform/telemetry_files.py); the report lists the slowest
of them so an operator knows which trace to open first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from services.platform import semconv
from services.platform.telemetry_files import read_spans

SEARCHABLE = (semconv.ATTRACTION, semconv.ACCESS_POINT, semconv.ZONE, semconv.DECISION)
# Streams an app or device keeps open for minutes are long by design, not slow.
LONG_LIVED = ("Watch", "Subscribe", "IngestPings")


def _long_lived(name: str) -> bool:
    return name.rsplit("/", 1)[-1].startswith(LONG_LIVED)


def _attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values()), None) for a in span.get("attributes", [])}


def _duration_ms(span: dict[str, Any]) -> float:
    return (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6


def slowest_traces(folder: Path | None, limit: int = 10) -> dict[str, Any]:
    collector = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if collector:
        return {"status": f"spans went to the collector at {collector}", "slowest": []}
    if folder is None or not folder.exists():
        return {"status": "no telemetry folder", "slowest": []}
    seen: dict[str, dict[str, Any]] = {}
    for span in read_spans(folder):
        if (
            span.get("kind") == "SPAN_KIND_SERVER"
            and "endTimeUnixNano" in span
            and not _long_lived(span["name"])
        ):
            seen[span["spanId"]] = span
    errors: dict[str, int] = {}
    for span in seen.values():
        if span.get("status", {}).get("code") == "STATUS_CODE_ERROR":
            key = f"{span['service']} {span['name']}"
            errors[key] = errors.get(key, 0) + 1
    ranked = sorted(seen.values(), key=_duration_ms, reverse=True)[:limit]
    rows = []
    for span in ranked:
        attrs = _attrs(span)
        rows.append(
            {
                "service": span["service"],
                "rpc": span["name"],
                "ms": round(_duration_ms(span), 1),
                "trace_id": span["traceId"],
                "status": str(attrs.get("rpc.grpc.status_code", "")),
                "where": ", ".join(f"{k}={attrs[k]}" for k in SEARCHABLE if k in attrs),
            }
        )
    return {
        "status": "ok",
        "folder": str(folder),
        "server_spans_kept": len(seen),
        "slowest": rows,
        "errors_by_rpc": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
    }
