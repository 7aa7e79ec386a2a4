"""The direct span encoding sends exactly the message the SDK's encoder builds."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from services.platform.span_wire import SpanWriter


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "venue-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def _same(spans: list[ReadableSpan], writer: SpanWriter | None = None) -> None:
    ours = ExportTraceServiceRequest.FromString((writer or SpanWriter()).request(spans))
    assert ours == encode_spans(spans)


def test_server_client_error_event_and_link_spans_encode_as_the_sdk_does() -> None:
    provider, memory = _provider()
    tracer = provider.get_tracer(
        "venue.rpc", "1.0", schema_url="https://opentelemetry.io/schemas/1.11.0"
    )
    db = provider.get_tracer("asyncpg")
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "x1")]),
    )
    parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    with tracer.start_as_current_span(
        "/venue.access.v1.AccessService/Tap",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.grpc.status_code": 0, "venue.caller.id": "d-1"},
        links=[Link(remote, {"venue.kind": "event", "n": 3})],
    ) as server:
        server.set_attribute("venue.band.active", True)
        server.set_attribute("ratio", 0.25)
        server.set_attribute("negative", -7)
        server.set_attribute("tags", ["a", "b"])
        server.set_attribute("empty", "")
        server.add_event("retry", {"attempt": 2})
        with db.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as child:
            child.set_attribute("db.statement", "SELECT 1")
        server.set_status(Status(StatusCode.ERROR, "StatusCode.INTERNAL:boom"))
    with tracer.start_as_current_span("plain") as plain:
        plain.record_exception(ValueError("x"))
    spans = list(memory.get_finished_spans())
    assert len(spans) == 3
    writer = SpanWriter()
    _same(spans, writer)
    _same(spans, writer)  # again, from the cache of repeated attribute pairs


_values = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=5), max_size=3),
    st.lists(st.integers(min_value=-1000, max_value=1000), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(attributes=st.dictionaries(st.text(min_size=1, max_size=12), _values, max_size=6))
def test_any_attributes_encode_as_the_sdk_does(attributes: dict[str, Any]) -> None:
    provider, memory = _provider()
    with provider.get_tracer("t").start_as_current_span("s", attributes=attributes):
        pass
    _same(list(memory.get_finished_spans()))
