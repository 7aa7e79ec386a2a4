"""OpenTelemetry tracing and metrics, configured by the standard OTEL_* variables.

OTEL_EXPORTER_OTLP_ENDPOINT set: traces and metrics leave by OTLP/gRPC (the
exporters read OTEL_EXPORTER_OTLP_* themselves). OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES name the process; OTEL_SDK_DISABLED=true turns it off.
Without an endpoint, VENUE_TELEMETRY_DIR (set by the runner) receives OTLP JSON
files instead (telemetry_files.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from services.platform.rpc_metrics import DurationExport
from services.platform.telemetry_files import LocalMetricFile, LocalSpanFile, telemetry_dir


@dataclass
class Telemetry:
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None

    def shutdown(self) -> None:
        """Flush what is buffered; called last on shutdown."""
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush(5000)
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown(timeout_millis=5000)


def _enabled(signal: str) -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return os.environ.get(f"OTEL_{signal}_EXPORTER", "otlp").lower() != "none"


# Defaults for the standard batch-span-processor variables (an operator's own
# values win). Small, frequent batches: encoding a batch holds the GIL, and the
# SDK's 512-span batches every 5 s stall the event loop for tens of
# milliseconds, which shows as p99 latency on every hot path.
BSP_DEFAULTS = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64"}


def setup_telemetry(service: str, extra_readers: list[MetricReader] | None = None) -> Telemetry:
    """Install the global tracer and meter providers for this process.

    The exporters of the readers made here also carry rpc.server.duration
    (rpc_metrics.py); `extra_readers` get only the SDK's instruments."""
    os.environ.setdefault("OTEL_SERVICE_NAME", f"venue-{service}")
    for name, value in BSP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    resource = Resource.create({"service.namespace": "venue-twin"})
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return Telemetry(None, None)

    local = None if endpoint else telemetry_dir()
    tracer_provider = TracerProvider(resource=resource)
    if local is not None:
        tracer_provider.add_span_processor(LocalSpanFile(local / f"traces-{service}.jsonl"))
    if endpoint and _enabled("TRACES"):
        from services.platform.span_wire import WireSpanExporter  # noqa: PLC0415

        tracer_provider.add_span_processor(BatchSpanProcessor(WireSpanExporter()))
    trace.set_tracer_provider(tracer_provider)

    readers: list[MetricReader] = list(extra_readers or [])
    if local is not None:
        readers.append(
            PeriodicExportingMetricReader(
                DurationExport(LocalMetricFile(local / f"metrics-{service}.jsonl"), resource),
                export_interval_millis=10_000,
            )
        )
    if endpoint and _enabled("METRICS"):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter,
        )

        interval = int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "10000"))
        readers.append(
            PeriodicExportingMetricReader(
                DurationExport(OTLPMetricExporter(), resource), export_interval_millis=interval
            )
        )
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(meter_provider)
    return Telemetry(tracer_provider, meter_provider)
