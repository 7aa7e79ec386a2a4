"""The platform's server spans are the spans the SDK's tracer would make: same
sampling, ids, parent, limits, resource, scope and processors, and the same
bytes on the wire apart from ids and times."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.span import TraceState

from services.platform.server_span import ServerSpan, ServerSpans

ATTRS: dict[str, Any] = {
    "rpc.system": "grpc",
    "rpc.service": "venue.identity.v1.IdentityService",
    "rpc.method": "ResolveBand",
    "rpc.grpc.status_code": 0,
}
REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "value")]),
)


def _provider(
    sampler: Sampler | None = None, limits: SpanLimits | None = None
) -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "venue-test"}),
        sampler=sampler,
        span_limits=limits,
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def _both(
    provider: TracerProvider, parent: otel_context.Context, caller: dict[str, Any]
) -> tuple[trace.Span, trace.Span]:
    sdk = provider.get_tracer("venue.rpc").start_span(
        "/svc/Method", context=parent, kind=SpanKind.SERVER, attributes=ATTRS
    )
    sdk.set_attributes(caller)
    ours = ServerSpans("venue.rpc", provider).start("/svc/Method", parent, ATTRS)
    assert isinstance(ours, ServerSpan)
    ours.add_trusted(caller)
    return sdk, ours


def _blank(spans: list[ReadableSpan]) -> Any:
    """The export request with what differs between any two spans (ids, times) zeroed."""
    request = encode_spans(spans)
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                span.span_id = b""
                span.start_time_unix_nano = span.end_time_unix_nano = 0
                for event in span.events:
                    event.time_unix_nano = 0
                if not span.parent_span_id:
                    span.trace_id = b""
    return request


@pytest.mark.parametrize("remote", [True, False])
def test_a_server_span_exports_as_the_sdk_span_does(remote: bool) -> None:
    provider, memory = _provider()
    parent = (
        trace.set_span_in_context(NonRecordingSpan(REMOTE), otel_context.Context())
        if remote
        else otel_context.Context()
    )
    sdk, ours = _both(provider, parent, {"venue.caller.kind": "guest", "venue.caller.id": "g-1"})
    for span in (sdk, ours):
        span.set_attribute("rpc.grpc.status_code", 3)
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.add_event("retried", {"attempt": 2})
        span.end()
    made, theirs = memory.get_finished_spans()[1], memory.get_finished_spans()[0]
    # An ended server span is its own readable span.
    assert isinstance(made, ServerSpan)
    assert made.get_span_context() == ours.get_span_context()
    assert _blank([made]) == _blank([theirs])
    assert made.parent == (REMOTE if remote else None)
    context = ours.get_span_context()
    assert context.trace_flags == sdk.get_span_context().trace_flags
    if remote:
        assert context.trace_id == REMOTE.trace_id
        assert context.trace_state == REMOTE.trace_state
    # Ended: nothing changes any more.
    ours.set_attribute("late", 1)
    assert "late" not in (made.attributes or {})


def test_a_child_of_a_server_span_is_its_child() -> None:
    provider, memory = _provider()
    ours = ServerSpans("venue.rpc", provider).start("/svc/Method", otel_context.Context(), ATTRS)
    token = otel_context.attach(trace.set_span_in_context(ours))
    try:
        child = provider.get_tracer("asyncpg").start_span("SELECT")
        child.end()
    finally:
        otel_context.detach(token)
    ours.end()
    child_span, server = memory.get_finished_spans()
    assert child_span.parent is not None
    assert child_span.parent.span_id == server.context.span_id
    assert child_span.context.trace_id == server.context.trace_id


def test_the_providers_sampler_decides() -> None:
    provider, memory = _provider(sampler=ParentBased(ALWAYS_OFF))
    ours = ServerSpans("venue.rpc", provider).start("/svc/Method", otel_context.Context(), ATTRS)
    assert not ours.is_recording()
    ours.end()
    # A sampled remote parent is followed.
    parent = trace.set_span_in_context(NonRecordingSpan(REMOTE), otel_context.Context())
    followed = ServerSpans("venue.rpc", provider).start("/svc/Method", parent, ATTRS)
    assert followed.is_recording()
    followed.end()
    assert [s.name for s in memory.get_finished_spans()] == ["/svc/Method"]
    provider, memory = _provider(sampler=TraceIdRatioBased(0.0))
    dropped = ServerSpans("venue.rpc", provider).start("/svc/Method", otel_context.Context(), ATTRS)
    assert not dropped.is_recording()
    assert not dropped.get_span_context().trace_flags.sampled


def test_span_limits_apply_as_in_the_sdk() -> None:
    provider, memory = _provider(limits=SpanLimits(max_span_attributes=5, max_attribute_length=4))
    sdk, ours = _both(provider, otel_context.Context(), {"venue.caller.id": "guest-12345"})
    sdk.end()
    ours.end()
    theirs, made = memory.get_finished_spans()
    assert dict(made.attributes or {}) == dict(theirs.attributes or {})
    assert made.dropped_attributes == theirs.dropped_attributes


def test_without_the_sdk_spans_come_from_the_api() -> None:
    spans = ServerSpans("venue.rpc", trace.NoOpTracerProvider())
    span = spans.start("/svc/Method", otel_context.Context(), ATTRS)
    assert not span.is_recording()
    span.end()
