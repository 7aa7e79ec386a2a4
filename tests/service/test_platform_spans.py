"""Every call's server span leaves by OTLP: the echo service, as its own process,
exports to a receiver in the test, which decodes what arrived."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from services.platform.config import ROOT
from services.runner.suite import free_port
from tests.service.test_platform_server import GUEST, Echo, unary, wait_serving
from tests.support.stubs import bearer

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[trace_pb2.Span] = []

    async def Export(self, request: Any, context: Any) -> Any:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def _attrs(span: trace_pb2.Span) -> dict[str, Any]:
    return {a.key: getattr(a.value, str(a.value.WhichOneof("value"))) for a in span.attributes}


async def test_server_spans_carry_rpc_conventions_caller_parent_and_status(
    tmp_path: Path, database_url: str
) -> None:
    receiver = Receiver()
    sink = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, sink)  # type: ignore[no-untyped-call]
    sink_port = sink.add_insecure_port("127.0.0.1:0")
    await sink.start()
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "VENUE_DATA_DIR": str(tmp_path),
        "DATABASE_URL": database_url,
        "VENUE_ECHO_ADDR": address,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.platform.echo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    echo = Echo(process, address, tmp_path)
    try:
        await wait_serving(echo)
        token = bearer(echo.token(GUEST))
        traced = (*token, ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"))
        async with grpc.aio.insecure_channel(address) as channel:
            assert await unary(channel, "Echo")(b"hi", metadata=traced) == b"hi"
            for failure in (b"invalid", b"surprise"):
                with pytest.raises(grpc.aio.AioRpcError):
                    await unary(channel, "Fail")(failure, metadata=token)
            with pytest.raises(grpc.aio.AioRpcError):
                await unary(channel, "Echo")(b"no token")
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 20)
        await sink.stop(None)

    by_name: dict[str, list[trace_pb2.Span]] = {}
    for span in receiver.spans:
        by_name.setdefault(span.name, []).append(span)
    assert not any("grpc.health" in name for name in by_name), "probes make no spans"

    echoed, anonymous = sorted(
        by_name["/venue.diagnostics.Echo/Echo"], key=lambda s: s.start_time_unix_nano
    )
    assert echoed.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert echoed.trace_id.hex() == TRACE_ID
    assert echoed.parent_span_id.hex() == PARENT_ID
    assert _attrs(echoed) == {
        "rpc.system": "grpc",
        "rpc.service": "venue.diagnostics.Echo",
        "rpc.method": "Echo",
        "rpc.grpc.status_code": 0,
        "venue.caller.kind": "guest",
        "venue.caller.id": "g-1",
    }
    assert echoed.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    assert _attrs(anonymous)["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert not anonymous.parent_span_id

    invalid, surprise = sorted(
        by_name["/venue.diagnostics.Echo/Fail"], key=lambda s: s.start_time_unix_nano
    )
    assert _attrs(invalid)["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert _attrs(invalid)["venue.error.reason"]
    # A caller's mistake is not the server's failure; an unexpected error is.
    assert invalid.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    assert _attrs(surprise)["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    assert surprise.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert [e.name for e in surprise.events] == ["exception"]
