"""The server span of a call, made with less work than `Tracer.start_span`.

Every call of every service makes one, so its cost is paid thousands of times a
second. The SDK's path cleans each attribute value again (a recursive type check
per value, under a lock), builds a sampling result, then copies the span into a
new `ReadableSpan` when it ends. The platform's own attributes are strings and
integers it wrote itself, so here they go into the span as they are; everything
that decides what is exported stays the SDK's: the provider's sampler, id
generator, span limits, resource, instrumentation scope and span processors
(tests/unit/test_server_span.py compares the result with the SDK's own span).

When the global tracer provider is not the SDK's (no telemetry configured, or
another implementation), spans come from the API's tracer as usual.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from time import time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_DEFAULT = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)


class ServerSpan(sdk_trace.Span):
    """An SDK span (every method is the SDK's) that is its own readable span once
    ended: after `end()` nothing in it can change, so exporters may read it as is."""

    def _readable_span(self) -> sdk_trace.ReadableSpan:
        return self

    def add_trusted(self, attributes: Mapping[str, str | int | bool]) -> None:
        """Add attributes the platform made itself (valid values, short strings)."""
        bounded = self._attributes
        if (
            self._end_time is None
            and isinstance(bounded, BoundedAttributes)
            and bounded.max_value_len is None
            and (bounded.maxlen is None or len(bounded) + len(attributes) <= bounded.maxlen)
        ):
            bounded._dict.update(attributes)
        else:
            self.set_attributes(attributes)


class ServerSpans:
    """Starts server spans named after the method, with pre-made attributes."""

    def __init__(
        self, scope: str = "venue.rpc", provider: trace.TracerProvider | None = None
    ) -> None:
        self._scope = scope
        self._provider = provider
        self._api_tracer = trace.get_tracer(scope, tracer_provider=provider)
        self._sdk_tracer: sdk_trace.Tracer | None = None
        self._lock = threading.Lock()

    def _tracer(self) -> sdk_trace.Tracer | None:
        found = self._sdk_tracer
        if found is None:
            # The global provider may be set after the server is built (it can
            # only be set once, so an SDK tracer, once found, stays right).
            provider = self._provider or trace.get_tracer_provider()
            if isinstance(provider, sdk_trace.TracerProvider):
                tracer = provider.get_tracer(self._scope)
                if isinstance(tracer, sdk_trace.Tracer):
                    with self._lock:
                        self._sdk_tracer = found = tracer
        return found

    def start(
        self, name: str, parent: otel_context.Context, attributes: dict[str, Any]
    ) -> trace.Span:
        """A started SERVER span, child of the span in `parent` (if any).

        `attributes` is copied; its values must be valid attribute values."""
        tracer = self._tracer()
        if tracer is None:
            return self._api_tracer.start_span(
                name, context=parent, kind=SpanKind.SERVER, attributes=attributes
            )
        parent_span = get_current_span(parent).get_span_context()
        if not tracer._is_enabled():
            return NonRecordingSpan(parent_span)
        ids = tracer.id_generator
        parent_context: SpanContext | None = parent_span
        if parent_span is None or not parent_span.is_valid:
            parent_context = None
            trace_id = ids.generate_trace_id()
            random_trace_id = ids.is_trace_id_random()
        else:
            trace_id = parent_span.trace_id
            random_trace_id = parent_span.trace_flags.random_trace_id
        sampled = tracer.sampler.should_sample(
            parent, trace_id, name, SpanKind.SERVER, attributes, ()
        )
        decision = sampled.decision
        flags = _SAMPLED if decision.is_sampled() else _DEFAULT  # type: ignore[no-untyped-call]
        if random_trace_id:
            flags = TraceFlags(flags | TraceFlags.RANDOM_TRACE_ID)
        span_context = SpanContext(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=flags,
            trace_state=sampled.trace_state,
        )
        end_metrics = tracer._tracer_metrics.start_span(parent_context, decision)
        if not decision.is_recording():  # type: ignore[no-untyped-call]
            return NonRecordingSpan(span_context)
        span = _new_span(tracer, name, span_context, parent_context, sampled.attributes)
        span._record_end_metrics = end_metrics
        span._start_time = time_ns()
        tracer.span_processor.on_start(span, parent_context=parent)
        return span


def _new_span(
    tracer: sdk_trace.Tracer,
    name: str,
    context: SpanContext,
    parent: SpanContext | None,
    chosen: Mapping[str, Any],
) -> ServerSpan:
    """An unstarted span with the fields SDK Span.__init__ sets, in the same state."""
    limits = tracer._span_limits
    # Span.__new__ refuses direct use; ServerSpan is concrete, so object's will do.
    span = object.__new__(ServerSpan)
    span._name = name
    span._context = context
    span._kind = SpanKind.SERVER
    span._instrumentation_info = tracer.instrumentation_info
    span._instrumentation_scope = tracer._instrumentation_scope
    span._parent = parent
    span._start_time = None
    span._end_time = None
    span._resource = tracer.resource
    span._status = _UNSET
    span._sampler = tracer.sampler
    span._trace_config = None
    span._record_exception = True
    span._set_status_on_exception = True
    span._span_processor = tracer.span_processor
    span._limits = limits
    span._lock = threading.Lock()
    bounded = BoundedAttributes(
        limits.max_span_attributes,
        None,
        immutable=False,
        max_value_len=limits.max_span_attribute_length,
    )
    if bounded.max_value_len is None and (bounded.maxlen is None or len(chosen) <= bounded.maxlen):
        bounded._dict.update(chosen)
    elif chosen:
        bounded._set_items(chosen)
    span._attributes = bounded
    span._events = BoundedList(limits.max_events)
    span._links = BoundedList(limits.max_links)
    return span


def annotate(attributes: Mapping[str, str | int | bool]) -> None:
    """Add attributes to the current span (the call's server span, in a
    servicer); the values must be strings, integers or booleans."""
    span = get_current_span()
    if type(span) is ServerSpan:
        span.add_trusted(attributes)
    elif span.is_recording():
        span.set_attributes(attributes)
