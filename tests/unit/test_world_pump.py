"""gRPC's completions reach a busy event loop: after the loop was held up long
enough for grpc.aio's notification socket to fill, one drain completes every call
that has its reply, where the loop alone completes one a loop iteration."""

from __future__ import annotations

import asyncio
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sim.suite.pump import Pump

CALLS = 1500


def test_one_drain_completes_every_reply_that_is_in() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    async def go() -> tuple[int, int, bool]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest())
            pump = Pump.find(asyncio.get_running_loop())
            calls = [stub.Check(health_pb2.HealthCheckRequest()) for _ in range(CALLS)]
            # Let every call go out, then hold the loop up as a busy world does:
            # the replies come in while nobody reads the notification socket.
            deadline = time.monotonic() + 30
            while not any(c.done() for c in calls) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            time.sleep(2.0)  # noqa: ASYNC251 - the point: the loop is held up
            # The loop alone: a few iterations complete a few calls.
            for _ in range(5):
                await asyncio.sleep(0)
            before = sum(c.done() for c in calls)
            # One drain, then as many iterations: every reply that is in completes.
            pump.drain()
            for _ in range(5):
                await asyncio.sleep(0)
            after = sum(c.done() for c in calls)
            await asyncio.gather(*calls, return_exceptions=True)
            return before, after, pump.found

    try:
        before, after, found = asyncio.run(go())
    finally:
        server.stop(None)
    assert found
    assert after - before > CALLS // 3, (before, after)
