"""Location's metrics (docs/observability.md): zone occupancy and density as
gauges, and pings by outcome and reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from contextlib import AbstractContextManager

from opentelemetry import context, metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, Span

from services.location.occupancy import Occupancy, density
from services.location.topology import Topology
from services.platform import semconv
from services.platform.semconv import CALLER_ID, CALLER_KIND, OUTCOME, REASON, ZONE
from venue.location.v1 import location_pb2 as pb

_tracer = trace.get_tracer("venue.location")
_meter = metrics.get_meter("venue.location")
_pings = semconv.counter(_meter, semconv.LOCATION_PINGS)


def _name(enum: object, value: int, prefix: str) -> str:
    return semconv.strip_enum(str(enum.Name(value)), prefix)  # type: ignore[attr-defined]


_ACCEPTED = {OUTCOME: "accepted"}
_DUPLICATE = {OUTCOME: "duplicate"}
_REJECTED = {
    value: {
        OUTCOME: "rejected",
        REASON: _name(pb.PingRejectReason, value, "PING_REJECT_REASON_"),
    }
    for value in pb.PingRejectReason.values()
}
_REFUSED = {
    value: {
        OUTCOME: "refused",
        REASON: _name(pb.PingBatchRefusalReason, value, "PING_BATCH_REFUSAL_REASON_"),
    }
    for value in pb.PingBatchRefusalReason.values()
}


def batch_span(stream: trace.SpanContext, device_id: str) -> AbstractContextManager[Span]:
    """A trace of its own for each batch of a long-lived ingest stream, linked to
    the stream's span (one trace per stream would grow for hours)."""
    return _tracer.start_as_current_span(
        "location.ingest_batch",
        context=context.Context(),
        links=[Link(stream)] if stream.is_valid else [],
        attributes={CALLER_KIND: "device", CALLER_ID: device_id},
    )


def tick_span() -> AbstractContextManager[Span]:
    return _tracer.start_as_current_span("location.publish", context=context.Context())


def describe_ack(span: Span, ack: pb.IngestPingsResponse) -> None:
    if span.is_recording():
        span.set_attribute(OUTCOME, _name(pb.PingBatchOutcome, ack.outcome, "PING_BATCH_OUTCOME_"))
        span.set_attribute("venue.location.accepted", ack.accepted_count)
        span.set_attribute("venue.location.rejected", len(ack.rejected))


def count_pings(ack: pb.IngestPingsResponse, rows: int) -> None:
    """Count a batch's rows by what became of them."""
    if ack.outcome == pb.PING_BATCH_OUTCOME_REFUSED:
        _pings.add(rows, _REFUSED[ack.refusal_reason])
        return
    if ack.outcome == pb.PING_BATCH_OUTCOME_DUPLICATE:
        _pings.add(rows, _DUPLICATE)
        return
    if ack.accepted_count:
        _pings.add(ack.accepted_count, _ACCEPTED)
    if ack.rejected:
        for reason, n in Counter(r.reason for r in ack.rejected).items():
            _pings.add(n, _REJECTED[reason])


def observe_zones(topology: Topology, occupancy: Occupancy) -> None:
    """Gauges of every zone's count and density, read when metrics are collected."""
    attributes = [{ZONE: zone.id} for zone in topology.zones]

    def counts(_: CallbackOptions) -> Iterable[Observation]:
        current = occupancy.counts.tolist()
        return [Observation(n, attributes[i]) for i, n in enumerate(current)]

    def densities(_: CallbackOptions) -> Iterable[Observation]:
        current = occupancy.counts.tolist()
        capacity = occupancy.capacity.tolist()
        return [Observation(density(n, capacity[i]), attributes[i]) for i, n in enumerate(current)]

    # Observable: read from placement's arrays only when metrics are collected.
    for metric, callback in (
        (semconv.ZONE_OCCUPANCY, counts),
        (semconv.ZONE_DENSITY, densities),
    ):
        _meter.create_observable_gauge(
            metric.name, callbacks=[callback], unit=metric.unit, description=metric.description
        )
