"""OTLP span export that writes the protobuf wire format directly.

The SDK's exporter builds a protobuf message per span, per attribute and per
value, and hashes the resource (a JSON dump) once per span to group them: at a
park's call rates that was a quarter of a service's CPU, taken from the same
GIL the event loop needs. Here each span is written straight to bytes, and the
attribute pairs that repeat on every call (rpc.system, rpc.method, the caller's
kind ...) are encoded once and reused. The bytes are the same message the SDK
would send (tests/unit/test_span_wire.py decodes both and compares them).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200

_pack_q = struct.Struct("<Q").pack
_pack_i = struct.Struct("<I").pack
_pack_d = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, value: str) -> bytes:
    return _field(number, value.encode()) if value else b""


def _any_value(value: Any) -> bytes:
    """The bytes of an AnyValue message."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(1, value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, bytes):
        return _field(7, value)
    if isinstance(value, Sequence):
        return _field(5, b"".join(_field(1, _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(6, b"".join(_field(1, _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"cannot encode attribute value of type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _field(1, key.encode()) + _field(2, _any_value(value))


class SpanWriter:
    """Encodes spans; remembers the encoding of attribute pairs that repeat."""

    def __init__(self, cache_size: int = 4096) -> None:
        self._pairs: dict[tuple[str, type, Any], bytes] = {}
        self._names: dict[tuple[str, SpanKind], bytes] = {}
        self._cache_size = cache_size

    def _attributes(self, number: int, attributes: Mapping[str, Any] | None) -> bytes:
        if not attributes:
            return b""
        pairs = self._pairs
        out = []
        # A span's BoundedAttributes is a Mapping whose items() view looks each
        # key up again through __getitem__: its dict is read directly instead.
        items = (
            attributes._dict.items()
            if type(attributes) is BoundedAttributes
            else attributes.items()
        )
        for key, value in items:
            hashable = isinstance(value, str | bool | int | float)
            cache_key = (key, type(value), value) if hashable else None
            encoded = pairs.get(cache_key) if cache_key is not None else None
            if encoded is None:
                encoded = _field(number, _key_value(key, value))
                # Ids and timestamps never repeat; a full cache starts again
                # rather than growing without bound.
                if cache_key is not None:
                    if len(pairs) >= self._cache_size:
                        pairs.clear()
                    pairs[cache_key] = encoded
            out.append(encoded)
        return b"".join(out)

    def _name_kind(self, name: str, kind: SpanKind) -> bytes:
        found = self._names.get((name, kind))
        if found is None:
            if len(self._names) >= self._cache_size:
                self._names.clear()
            found = _text(5, name) + b"\x30" + _varint(_KIND[kind])
            self._names[(name, kind)] = found
        return found

    def span(self, span: ReadableSpan) -> bytes:
        context = span.get_span_context()
        assert context is not None
        parent = span.parent
        parts = [
            b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        ]
        state = context.trace_state
        if state:
            parts.append(_text(3, ",".join(f"{k}={v}" for k, v in state.items())))
        if parent is not None:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        parts.append(self._name_kind(span.name, span.kind))
        if span.start_time:
            parts.append(b"\x39" + _pack_q(span.start_time))
        if span.end_time:
            parts.append(b"\x41" + _pack_q(span.end_time))
        parts.append(self._attributes(9, span.attributes))
        if span.dropped_attributes:
            parts.append(b"\x50" + _varint(span.dropped_attributes))
        for event in span.events:
            body = b"\x09" + _pack_q(event.timestamp) if event.timestamp else b""
            body += _text(2, event.name) + self._attributes(3, event.attributes)
            if event.dropped_attributes:
                body += b"\x20" + _varint(event.dropped_attributes)
            parts.append(_field(11, body))
        if span.dropped_events:
            parts.append(b"\x60" + _varint(span.dropped_events))
        for link in span.links:
            body = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
            body += b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
            body += self._attributes(4, link.attributes)
            if link.dropped_attributes:
                body += b"\x28" + _varint(link.dropped_attributes)
            body += b"\x35" + _pack_i(_flags(link.context))
            parts.append(_field(13, body))
        if span.dropped_links:
            parts.append(b"\x70" + _varint(span.dropped_links))
        status = span.status
        body = _text(2, status.description or "")
        if status.status_code.value:
            body += b"\x18" + _varint(status.status_code.value)
        parts.append(_field(15, body))
        parts.append(b"\x85\x01" + _pack_i(_flags(parent)))
        return _field(2, b"".join(parts))  # ScopeSpans.spans

    def request(self, spans: Iterable[ReadableSpan]) -> bytes:
        """The bytes of an ExportTraceServiceRequest carrying `spans`."""
        # Grouped by resource and scope object identity: a process has one
        # resource and a handful of scopes, and equal ones encode alike.
        groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope
            _, scopes = groups.setdefault(id(resource), (resource, {}))
            scopes.setdefault(id(scope), (scope, []))[1].append(self.span(span))
        out = []
        for resource, scopes in groups.values():
            body = _field(1, self._attributes(1, resource.attributes))
            for scope, encoded in scopes.values():
                scope_body = b""
                if scope is not None:
                    scope_body = _text(1, scope.name) + _text(2, scope.version or "")
                    scope_body += self._attributes(3, scope.attributes)
                scope_spans = _field(1, scope_body) + b"".join(encoded)
                if scope is not None and scope.schema_url:
                    scope_spans += _text(3, scope.schema_url)
                body += _field(2, scope_spans)
            body += _text(3, resource.schema_url)
            out.append(_field(1, body))
        return b"".join(out)


def _flags(parent: SpanContext | None) -> int:
    if parent is not None and parent.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


class _RawTraceStub:
    """The TraceService stub, sending requests that are already bytes."""

    def __init__(self, channel: Any) -> None:
        self.Export = channel.unary_unary(
            _EXPORT,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class WireSpanExporter(OTLPSpanExporter):
    """OTLPSpanExporter (same settings, retries and endpoint variables) with the
    direct encoding above."""

    def __init__(self, **kwargs: Any) -> None:
        self._writer = SpanWriter()
        super().__init__(**kwargs)

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        self._client = _RawTraceStub(self._channel)  # type: ignore[assignment]

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        return self._writer.request(data)
