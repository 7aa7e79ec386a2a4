"""Telemetry over the wire, as an operator sees it: real service processes
export OTLP to a receiver; one tap is one connected trace from the scanner's
call through access (and, through the event stream, the services that follow
it, linked to the tap), with the venue attributes an operator searches by and
nothing personal; the metrics the dashboards query arrive with their labels."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from services.platform import semconv
from services.platform.config import ROOT
from services.platform.validation import to_timestamp
from services.runner.suite import Suite, auto_ports, implemented_services
from tests.support.otlp import start_receiver
from tests.support.people import device
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2 as pb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.location.v1 import location_pb2 as lpb
from venue.location.v1 import location_pb2_grpc

pytestmark = pytest.mark.e2e

MALL = ROOT / "venues" / "millbrook-galleria.yaml"
LINE = "ap.patty-and-bun.standby"
# Services that follow the access stream: their work for a tap is linked to it.
FOLLOWERS = [name for name in ("queue", "photo") if name in implemented_services()]
READER = "rd.patty-and-bun.q1"
# Metrics each running service must export (the dashboards query them).
EXPECTED = {
    "access": {semconv.ACCESS_TAPS, semconv.RPC_SERVER_DURATION, semconv.EVENTS_HANDLED},
    "location": {semconv.LOCATION_PINGS, semconv.ZONE_OCCUPANCY, semconv.ZONE_DENSITY},
    "queue": {semconv.QUEUE_POSTED_WAIT, semconv.QUEUE_FORECAST_WAIT},
}


async def test_one_tap_is_one_trace_with_venue_attributes_and_no_personal_data(
    tmp_path: Path, database_url: str
) -> None:
    receiver = await start_receiver()
    services = ["identity", "access", "location", *FOLLOWERS]
    suite = Suite(
        data_dir=tmp_path / "data",
        services=services,
        ports=auto_ports(services),
        venue_file=MALL,
        database_url=database_url,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
    )
    name = f"Zelda Quintessa {secrets.token_hex(3)}"
    email = f"zq-{secrets.token_hex(4)}@example.org"
    uid = f"BAND-{secrets.token_hex(6).upper()}"
    try:
        await suite.start()
        admin = await suite.admin_token()
        async with (
            grpc.aio.insecure_channel(suite.addresses["identity"]) as ichannel,
            grpc.aio.insecure_channel(suite.addresses["access"]) as achannel,
        ):
            identity: identity_pb2_grpc.IdentityServiceAsyncStub = (
                identity_pb2_grpc.IdentityServiceStub(ichannel)
            )
            access: access_pb2_grpc.AccessServiceAsyncStub = access_pb2_grpc.AccessServiceStub(
                achannel
            )
            guest = await identity.CreateGuest(
                ipb.CreateGuestRequest(
                    display_name=name, email=email, password="correct horse battery"
                ),
                metadata=bearer(admin),
            )
            await identity.LinkBand(
                ipb.LinkBandRequest(guest_id=guest.guest.guest_id, band_uid=uid),
                metadata=bearer(admin),
            )
            scanner = await device(identity, admin, common_pb2.DEVICE_KIND_RIDE_SCANNER, LINE)

            # The scanner's own span, as a W3C traceparent on the call.
            trace_id, parent_id = secrets.token_bytes(16), secrets.token_bytes(8)
            traceparent = f"00-{trace_id.hex()}-{parent_id.hex()}-01"
            reply = await access.Tap(
                pb.TapRequest(
                    access_point_id=LINE,
                    band_uid=uid,
                    tapped_at=to_timestamp(datetime.now(UTC)),
                    idempotency_key=uuid.uuid4().hex,
                ),
                metadata=(*scanner, ("traceparent", traceparent)),
            )
            assert reply.decision == pb.TAP_DECISION_ALLOW
            # The band is heard by a reader in the line: pings and occupancy.
            reader = await device(identity, admin, common_pb2.DEVICE_KIND_READER, READER)
            async with grpc.aio.insecure_channel(suite.addresses["location"]) as lchannel:
                location: location_pb2_grpc.LocationServiceAsyncStub = (
                    location_pb2_grpc.LocationServiceStub(lchannel)
                )

                async def pings() -> AsyncIterator[lpb.IngestPingsRequest]:
                    yield lpb.IngestPingsRequest(
                        batch=lpb.PingBatch(
                            batch_id=uuid.uuid4().hex,
                            band_uids=[uid, "BAND-NOBODY"],
                            reader_ids=[READER, READER],
                            observed_at_unix_ms=[int(time.time() * 1000)] * 2,
                            rssi_dbm=[-50, -50],
                        )
                    )

                acks = [a async for a in location.IngestPings(pings(), metadata=reader)]
                assert len(acks) == 1
            # A denial is findable by its attribute too.
            denied = await access.Tap(
                pb.TapRequest(
                    access_point_id=LINE,
                    band_uid="BAND-NOT-LINKED",
                    tapped_at=to_timestamp(datetime.now(UTC)),
                    idempotency_key=uuid.uuid4().hex,
                ),
                metadata=scanner,
            )
            assert denied.decision == pb.TAP_DECISION_DENY

        def tap_span() -> Span | None:
            for received in receiver.trace(trace_id):
                if received.span.name.endswith("AccessService/Tap"):
                    return received.span
            return None

        def linked(service: str) -> bool:
            return any(
                link.trace_id == trace_id
                for s in receiver.spans
                if s.service == f"venue-{service}"
                for link in s.span.links
            )

        def metric_names() -> set[str]:
            return {p.metric for p in receiver.points}

        wanted = {m.name for name in services if name in EXPECTED for m in EXPECTED[name]}
        await receiver.wait_for(lambda: tap_span() is not None)
        try:
            await receiver.wait_for(lambda: wanted <= metric_names(), timeout=30)
        except AssertionError:
            raise AssertionError(f"metrics missing: {wanted - metric_names()}") from None
        for follower in FOLLOWERS:
            await receiver.wait_for(lambda f=follower: linked(f))
        # The denial's span may leave in a later batch than the allowed tap's.
        await receiver.wait_for(
            lambda: any(s.attrs.get(semconv.DECISION) == "deny" for s in receiver.spans)
        )
    finally:
        await suite.stop()
        await receiver.stop()

    span = tap_span()
    assert span is not None
    assert span.parent_span_id == parent_id, "the tap's server span continues the scanner's trace"
    assert span.kind == Span.SPAN_KIND_SERVER
    attrs = {pair.key: pair.value.string_value or pair.value.int_value for pair in span.attributes}
    assert attrs["rpc.system"] == "grpc"
    assert attrs["rpc.service"] == "venue.access.v1.AccessService"
    assert attrs["rpc.method"] == "Tap"
    assert attrs[semconv.ACCESS_POINT] == LINE
    assert attrs[semconv.DECISION] == "allow"
    assert attrs[semconv.GUEST] == guest.guest.guest_id
    assert attrs[semconv.CALLER_KIND] == "device"
    database = [
        s.span
        for s in receiver.trace(trace_id)
        if s.attrs.get("db.system") == "postgresql" and s.span.parent_span_id == span.span_id
    ]
    assert database and database[0].kind == Span.SPAN_KIND_CLIENT, "the tap's database work"
    deny = next(s for s in receiver.spans if s.attrs.get(semconv.DECISION) == "deny")
    assert deny.attrs[semconv.DENY_REASON] == "unknown_band"

    taps = [p for p in receiver.points if p.metric == semconv.ACCESS_TAPS.name]
    assert {semconv.ACCESS_POINT, semconv.DECISION, semconv.DENY_REASON} <= set(taps[0].attrs)
    assert {p.attrs[semconv.ACCESS_POINT] for p in taps} == {LINE}
    assert {p.attrs[semconv.DECISION] for p in taps} == {"allow", "deny"}
    consumers = {
        p.attrs[semconv.CONSUMER]
        for p in receiver.points
        if p.metric == semconv.EVENTS_HANDLED.name
    }
    assert consumers, "no consumer reported the events it handled"
    heard = [p for p in receiver.points if p.metric == semconv.LOCATION_PINGS.name]
    assert {p.attrs.get(semconv.OUTCOME) for p in heard} == {"accepted", "rejected"}
    for point in receiver.points:
        metric = next((m for m in semconv.METRICS if m.name == point.metric), None)
        if metric is not None:
            assert set(point.attrs) <= set(metric.attributes), point

    everything = list(receiver.strings())
    for personal in (name, email, uid, "Zelda"):
        leaks = [s for s in everything if personal in s]
        assert not leaks, f"personal data in telemetry: {leaks[:3]}"
    for log in (suite.data_dir / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        for personal in (name, email, uid):
            assert personal not in text, f"personal data in {log.name}"
