"""A call whose deadline is gone by the time the platform gets to it: a busy
process (here, a token check that holds the event loop) must end it as
DEADLINE_EXCEEDED once and quietly, not abort it a second time ("Abort already
called") and log it as an unexpected error."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.metrics.export import MetricsData

from services.platform import echo
from services.platform.interceptors import PlatformInterceptor
from services.platform.principal import Kind, Principal
from services.platform.rpc_metrics import DurationExport, DurationHistogram
from services.platform.tokens import TokenVerifier, local_signing_key, local_verifier_for
from tests.support.stubs import bearer
from tests.unit.test_rpc_metrics import RESOURCE, Capture, _points

GUEST = Principal(Kind.GUEST, subject="g-1", party_id="p-1")


class BusyVerifier(TokenVerifier):
    """The real verifier, in a process too busy to get to a call in time: while
    `hold_s` is set, checking a token keeps the event loop for that long."""

    def __init__(self, inner: TokenVerifier) -> None:
        super().__init__()
        self._inner = inner
        self.hold_s = 0.0

    async def verify(self, token: str, now: float | None = None) -> Principal:
        time.sleep(self.hold_s)  # noqa: ASYNC251 - holding the loop is the point of it
        return await self._inner.verify(token, now)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, BusyVerifier, DurationHistogram, str]]:
    verifier = BusyVerifier(local_verifier_for(tmp_path))
    durations = DurationHistogram()
    interceptor = PlatformInterceptor(verifier, {echo.SERVICE: echo.POLICY}, durations=durations)
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers((echo._handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    token = local_signing_key(tmp_path).issue(GUEST, 600)
    try:
        yield f"127.0.0.1:{port}", verifier, durations, token
    finally:
        await server.stop(None)


async def test_a_call_past_its_deadline_ends_once_as_deadline_exceeded(
    server: tuple[str, BusyVerifier, DurationHistogram, str], caplog: pytest.LogCaptureFixture
) -> None:
    address, verifier, durations, token = server
    caplog.set_level(logging.DEBUG)
    async with grpc.aio.insecure_channel(address) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            f"/{echo.SERVICE}/Echo", request_serializer=None, response_deserializer=None
        )
        assert await call(b"warm", metadata=bearer(token), timeout=5) == b"warm"
        verifier.hold_s = 0.15
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(b"late", metadata=bearer(token), timeout=0.05)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        verifier.hold_s = 0.0
        # The server is none the worse for it.
        assert await call(b"again", metadata=bearer(token), timeout=5) == b"again"

    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage() for r in loud]
    assert not any("Abort already called" in r.getMessage() for r in caplog.records)
    # Each late call counts once, as DEADLINE_EXCEEDED, in rpc.server.duration.
    capture = Capture()
    DurationExport(capture, RESOURCE, durations).export(MetricsData([]))
    counts = {
        dict(series)["rpc.grpc.status_code"]: point[1]
        for series, point in _points(capture.exported[0]).items()
    }
    assert counts == {
        grpc.StatusCode.OK.value[0]: 2,
        grpc.StatusCode.DEADLINE_EXCEEDED.value[0]: 3,
    }
