"""Foundation benchmarks (issue: the platform and identity).

- floor: bare grpc.aio echo (no interceptors), 32 and 64 in flight, and sequential;
- platform: the diagnostic echo service with every interceptor and telemetry
  exported by OTLP: its overhead against the floor;
- identity ResolveBand (the scanners' hot path) against the running service with
  auth, tracing and logging on: throughput at 32 in flight, and latency at an
  offered 500 calls/s, open loop.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import grpc

from bench import harness
from bench.procs import helper, helper_process, otlp_env, with_cpu
from services.platform import embedded_pg
from services.platform.config import ROOT
from services.platform.principal import Kind, Principal
from services.platform.tokens import local_signing_key
from services.runner.suite import Suite, auto_ports, free_port
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as pb
from venue.identity.v1 import identity_pb2_grpc


def _raw(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(
        method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )


async def measured(
    pids: list[int], measurement: Awaitable[harness.Throughput | harness.Latency]
) -> dict[str, Any]:
    """A measurement's figures with the CPU each call cost server and driver."""
    figures, cpu = await with_cpu({"server": pids}, measurement, harness.calls_of)
    return {**figures.as_dict(), **cpu}


async def _echo_figures(call: harness.Call, seconds: float, pid: int) -> dict[str, Any]:
    return {
        "closed_32": await measured([pid], harness.closed_loop(call, 32, seconds)),
        "closed_64": await measured([pid], harness.closed_loop(call, 64, seconds)),
        "sequential": await measured([pid], harness.sequential(call, 2000)),
    }


async def floor(seconds: float) -> dict[str, Any]:
    with helper_process("bench.floor_server") as (port, pid):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = _raw(channel, "/bench.Floor/Echo")
            return await _echo_figures(lambda i: echo(b"band-0001"), seconds, pid)


async def platform_echo(work: Path, database_url: str, sink: int, seconds: float) -> dict[str, Any]:
    address = f"127.0.0.1:{free_port()}"
    env = {
        # The echo is measured against the bare floor, both plaintext: `--tls` is
        # for the suite's services (identity below).
        **{k: v for k, v in os.environ.items() if not k.startswith("VENUE_TLS_")},
        **otlp_env(sink),
        "VENUE_DATA_DIR": str(work),
        "DATABASE_URL": database_url,
        "VENUE_ECHO_ADDR": address,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.platform.echo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        token = local_signing_key(work).issue(Principal(Kind.DEVICE, "bench", device_kind=1), 3600)
        metadata = (("authorization", f"Bearer {token}"),)
        async with grpc.aio.insecure_channel(address) as channel:
            await channel.channel_ready()
            echo = _raw(channel, "/venue.diagnostics.Echo/Echo")
            for _ in range(100):
                try:
                    await echo(b"x", metadata=metadata, timeout=1)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)
            return await _echo_figures(
                lambda i: echo(b"band-0001", metadata=metadata), seconds, process.pid
            )
    finally:
        process.terminate()
        process.wait(10)


async def resolve_band(work: Path, database_url: str, sink: int, seconds: float) -> dict[str, Any]:
    suite = Suite(
        data_dir=work,
        services=["identity"],
        database_url=database_url,
        ports=auto_ports(["identity"]),
        env=otlp_env(sink),
    )
    await suite.start()
    try:
        admin = await suite.admin_token()
        async with suite.channel("identity") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            staff = (("authorization", f"Bearer {admin}"),)
            uids = await _bands(stub, staff, 1000)
            device = await stub.RegisterDevice(
                pb.RegisterDeviceRequest(
                    kind=common_pb2.DEVICE_KIND_RIDE_SCANNER, name="bench scanner"
                ),
                metadata=staff,
            )
            token = (
                await stub.IssueToken(
                    pb.IssueTokenRequest(
                        device_secret=pb.DeviceSecret(
                            device_id=device.device.device_id, secret=device.secret
                        )
                    )
                )
            ).access_token
            metadata = (("authorization", f"Bearer {token}"),)
            # The driver shares the machine's two cores with the service: like the
            # floor's client it sends bytes made beforehand, so that its own
            # protobuf work is not counted against the service.
            rng = random.Random(7)
            requests = [
                pb.ResolveBandRequest(band_uid=rng.choice(uids)).SerializeToString()
                for _ in range(4096)
            ]
            raw = _raw(channel, "/venue.identity.v1.IdentityService/ResolveBand")
            parse = pb.ResolveBandResponse.FromString

            async def resolve(i: int) -> None:
                reply = parse(await raw(requests[i & 4095], metadata=metadata))
                assert reply.active

            pids = [suite.processes["identity"].process.pid]
            return {
                "bands": len(uids),
                "closed_32": await measured(pids, harness.closed_loop(resolve, 32, seconds)),
                "sequential": await measured(pids, harness.sequential(resolve, 2000)),
                "open_500": await measured(pids, harness.open_loop(resolve, 500, max(seconds, 10))),
            }
    finally:
        await suite.stop()


async def _bands(stub: Any, staff: Any, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6].upper()
    uids: list[str] = []
    for start in range(0, count, 50):
        guests = await asyncio.gather(
            *(
                stub.CreateGuest(pb.CreateGuestRequest(display_name=f"Bench {i}"), metadata=staff)
                for i in range(start, start + 50)
            )
        )
        batch = [f"BENCH-{run}-{start + i:06d}" for i in range(50)]
        await asyncio.gather(
            *(
                stub.LinkBand(
                    pb.LinkBandRequest(guest_id=g.guest.guest_id, band_uid=uid), metadata=staff
                )
                for g, uid in zip(guests, batch, strict=True)
            )
        )
        uids += batch
    return uids


async def run(work: Path, seconds: float) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    database_url = await asyncio.to_thread(embedded_pg.ensure_running, work)
    try:
        with helper("bench.otlp_sink") as sink:
            floor_figures = await floor(seconds)
            platform = await platform_echo(work, database_url, sink, seconds)
            resolve = await resolve_band(work, database_url, sink, seconds)
    finally:
        await asyncio.to_thread(embedded_pg.stop, work)
    f32 = floor_figures["closed_32"]["per_second"]
    f64 = floor_figures["closed_64"]["per_second"]
    r32 = resolve["closed_32"]["per_second"]
    cpu = "server_cpu_us_per_call"
    return {
        "floor_bare_echo": floor_figures,
        "platform_echo": platform,
        "identity_resolve_band": resolve,
        "checks": {
            "resolve_32_vs_floor_32": round(r32 / f32, 3),
            "resolve_32_vs_floor_64": round(r32 / f64, 3),
            "bar_throughput_at_least_0.5_of_floor": r32 / f32 >= 0.5,
            "resolve_p99_ms_at_500_per_s": resolve["open_500"]["p99_ms"],
            "bar_p99_under_5_ms": resolve["open_500"]["p99_ms"] < 5.0,
            "platform_overhead_32": round(1 - platform["closed_32"]["per_second"] / f32, 3),
            "platform_extra_ms_per_sequential_call": round(
                platform["sequential"]["mean_ms"] - floor_figures["sequential"]["mean_ms"], 3
            ),
            # Server CPU per call at 32 in flight: less sensitive to the machine's
            # load than calls per second.
            "floor_cpu_us_per_call_32": floor_figures["closed_32"][cpu],
            "platform_echo_cpu_us_per_call_32": platform["closed_32"][cpu],
            "resolve_cpu_us_per_call_32": resolve["closed_32"][cpu],
            "resolve_cpu_us_per_call_at_500_per_s": resolve["open_500"][cpu],
            "load_average_1min_before_after": [
                round(load_before, 2),
                round(os.getloadavg()[0], 2),
            ],
        },
    }
