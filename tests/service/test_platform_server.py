"""The platform's server bootstrap, proven on the diagnostic echo service running
as its own process: health and reflection open to all, every other call
authenticated and authorized, domain errors with details, and SIGTERM draining
calls in flight."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from services.platform.config import ROOT
from services.platform.principal import Kind, Principal
from services.platform.tokens import local_signing_key
from services.runner.suite import free_port
from tests.support.stubs import bearer

GUEST = Principal(Kind.GUEST, subject="g-1", party_id="p-1")
OPS = Principal(Kind.STAFF, subject="s-1", staff_role=1)


@dataclass
class Echo:
    process: subprocess.Popen[bytes]
    address: str
    data_dir: Path

    def token(self, principal: Principal, lifetime: float = 60, now: float | None = None) -> str:
        return local_signing_key(self.data_dir).issue(principal, lifetime, now)


def start_echo(data_dir: Path, database_url: str) -> Echo:
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "VENUE_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "VENUE_ECHO_ADDR": address,
        "VENUE_SHUTDOWN_GRACE": "5",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.platform.echo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return Echo(process, address, data_dir)


async def wait_serving(echo: Echo) -> None:
    async with grpc.aio.insecure_channel(echo.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert echo.process.poll() is None, echo.process.stderr.read().decode()  # type: ignore[union-attr]
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("echo service did not start")


@pytest.fixture(scope="module")
def echo_process(data_dir: Path, database_url: str) -> Iterator[Echo]:
    echo = start_echo(data_dir, database_url)
    yield echo
    if echo.process.poll() is None:
        echo.process.terminate()
        echo.process.wait(10)


@pytest.fixture
async def echo(echo_process: Echo) -> AsyncIterator[Echo]:
    await wait_serving(echo_process)
    yield echo_process


def unary(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(
        f"/venue.diagnostics.Echo/{method}",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )


async def test_health_and_reflection_answer_without_credentials(echo: Echo) -> None:
    async with grpc.aio.insecure_channel(echo.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="venue.diagnostics.Echo"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        services = set()
        async for response in responses:
            services = {s.name for s in response.list_services_response.service}
            break
        assert {"venue.diagnostics.Echo", "grpc.health.v1.Health"} <= services


async def test_calls_without_a_good_token_are_unauthenticated(echo: Echo) -> None:
    async with grpc.aio.insecure_channel(echo.address) as channel:
        call = unary(channel, "Echo")
        cases = {
            "missing": (),
            "not bearer": (("authorization", "Basic dXNlcjpwdw=="),),
            "garbage": bearer("garbage"),
            "expired": bearer(echo.token(GUEST, lifetime=10, now=time.time() - 3600)),
        }
        for name, metadata in cases.items():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(b"hi", metadata=metadata)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
        forged = echo.token(GUEST)[:-6] + "AAAAAA"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"hi", metadata=bearer(forged))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert await unary(channel, "Public")(b"open") == b"open"


async def test_wrong_kind_of_caller_is_permission_denied(echo: Echo) -> None:
    async with grpc.aio.insecure_channel(echo.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await unary(channel, "StaffOnly")(b"x", metadata=bearer(echo.token(GUEST)))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert await unary(channel, "StaffOnly")(b"x", metadata=bearer(echo.token(OPS))) == b"x"
        who = json.loads(await unary(channel, "WhoAmI")(b"", metadata=bearer(echo.token(GUEST))))
        assert who == {"kind": "guest", "subject": "g-1"}
        # A method the service does not declare at all is refused, not served.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await unary(channel, "NoSuchMethod")(b"x", metadata=bearer(echo.token(OPS)))
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("failure", "code", "detail"),
    [
        (b"invalid", grpc.StatusCode.INVALID_ARGUMENT, error_details_pb2.BadRequest),
        (b"not_found", grpc.StatusCode.NOT_FOUND, error_details_pb2.ResourceInfo),
        (
            b"precondition",
            grpc.StatusCode.FAILED_PRECONDITION,
            error_details_pb2.PreconditionFailure,
        ),
        (b"exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED, error_details_pb2.QuotaFailure),
    ],
)
async def test_domain_errors_arrive_with_status_and_details(
    echo: Echo, failure: bytes, code: grpc.StatusCode, detail: Any
) -> None:
    async with grpc.aio.insecure_channel(echo.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await unary(channel, "Fail")(failure, metadata=bearer(echo.token(GUEST)))
    assert err.value.code() == code
    status = rpc_status.from_call(err.value)
    assert status is not None
    kinds = [d for d in status.details if d.Is(detail.DESCRIPTOR)]
    assert kinds, f"no {detail.__name__} in the details"
    if detail is error_details_pb2.BadRequest:
        bad = error_details_pb2.BadRequest()
        kinds[0].Unpack(bad)
        assert bad.field_violations[0].field == "amount"


async def test_surprises_are_internal_without_their_detail(echo: Echo) -> None:
    async with grpc.aio.insecure_channel(echo.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await unary(channel, "Fail")(b"surprise", metadata=bearer(echo.token(GUEST)))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (err.value.details() or "")


async def test_sigterm_lets_calls_in_flight_finish(data_dir: Path, database_url: str) -> None:
    echo = start_echo(data_dir, database_url)
    try:
        await wait_serving(echo)
        token = echo.token(GUEST)
        async with grpc.aio.insecure_channel(echo.address) as channel:
            slow = unary(channel, "Slow")
            calls = [
                asyncio.ensure_future(slow(b"1500", metadata=bearer(token), timeout=10))
                for _ in range(5)
            ]
            await asyncio.sleep(0.5)
            echo.process.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert results == [b"done:1500"] * 5, results
            with pytest.raises(grpc.aio.AioRpcError):
                await slow(b"1", metadata=bearer(token), timeout=2)
        assert await asyncio.to_thread(echo.process.wait, 10) == 0
    finally:
        if echo.process.poll() is None:
            echo.process.kill()
