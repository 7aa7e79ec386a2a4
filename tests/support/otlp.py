"""An OTLP/gRPC receiver for tests: the services export to it over a real
socket exactly as they would to a collector, and the test reads what arrived."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: value(pair.value) for pair in pairs}


@dataclass
class ReceivedSpan:
    service: str
    span: Span

    @property
    def attrs(self) -> dict[str, Any]:
        return attributes(self.span.attributes)


@dataclass
class ReceivedPoint:
    service: str
    metric: str
    attrs: dict[str, Any]


@dataclass
class Receiver:
    server: grpc.aio.Server
    port: int
    spans: list[ReceivedSpan] = field(default_factory=list)
    points: list[ReceivedPoint] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def trace(self, trace_id: bytes) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.span.trace_id == trace_id]

    def strings(self) -> Iterator[str]:
        """Every string that left the services as telemetry."""
        for received in self.spans:
            yield received.span.name
            for pair in received.span.attributes:
                yield str(value(pair.value))
            for event in received.span.events:
                yield event.name
                for pair in event.attributes:
                    yield str(value(pair.value))
        for point in self.points:
            yield from (str(v) for v in point.attrs.values())

    async def wait_for(self, predicate: Any, timeout: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            assert loop.time() < deadline, "telemetry did not arrive in time"
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await self.server.stop(None)


def _service(resource: Any) -> str:
    return str(attributes(resource.attributes).get("service.name", ""))


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, into: list[ReceivedSpan]) -> None:
        self._into = into

    async def Export(self, request: Any, context: Any) -> Any:
        for resource in request.resource_spans:
            service = _service(resource.resource)
            for scope in resource.scope_spans:
                self._into.extend(ReceivedSpan(service, span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, into: list[ReceivedPoint]) -> None:
        self._into = into

    async def Export(self, request: Any, context: Any) -> Any:
        for resource in request.resource_metrics:
            service = _service(resource.resource)
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    data = getattr(metric, metric.WhichOneof("data"))
                    for point in data.data_points:
                        self._into.append(
                            ReceivedPoint(service, metric.name, attributes(point.attributes))
                        )
        return metrics_service_pb2.ExportMetricsServiceResponse()


async def start_receiver() -> Receiver:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    receiver = Receiver(server, 0)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(receiver.spans), server)  # type: ignore[no-untyped-call]
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _Metrics(receiver.points), server
    )
    receiver.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return receiver
