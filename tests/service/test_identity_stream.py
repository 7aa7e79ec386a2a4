"""Identity's event stream across failures, over real gRPC between real processes:
a consumer killed and restarted and a producer killed and restarted together
lose no event, and the consumer takes duplicates in its stride."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc

from services.platform import events, migrations, service_secrets
from services.runner.suite import Suite, auto_ports
from tests.support.stubs import bearer
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as pb
from venue.identity.v1 import identity_pb2_grpc


async def test_no_event_lost_across_consumer_and_producer_restarts(
    tmp_path: Path, data_dir: Path, database_url: str, schema: str
) -> None:
    suite = Suite(
        data_dir=data_dir,
        services=["identity"],
        database_url=database_url,
        ports=auto_ports(["identity"]),
        log_dir=tmp_path,
    )
    await suite.start()
    conn = await asyncpg.connect(database_url)
    await migrations.migrate(conn, schema, {"platform": migrations.PLATFORM_MIGRATIONS})
    await conn.execute(f"CREATE TABLE {schema}.seen (guest_id text PRIMARY KEY, times int)")
    await conn.close()
    pool = await asyncpg.create_pool(database_url, server_settings={"search_path": schema})
    channel = grpc.aio.insecure_channel(suite.addresses["identity"])
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    try:
        master = service_secrets.load_or_create_master(data_dir)
        token = (
            await stub.IssueToken(
                pb.IssueTokenRequest(
                    service_secret=pb.ServiceSecret(
                        service="location", secret=service_secrets.derive(master, "location")
                    )
                )
            )
        ).access_token

        def open_stream(cursor: str) -> AsyncIterator[pb.WatchIdentityEventsResponse]:
            request = pb.WatchIdentityEventsRequest(start=common_pb2.StreamCursor(cursor=cursor))
            return stub.WatchIdentityEvents(request, metadata=bearer(token)).__aiter__()

        async def handle(
            event: pb.WatchIdentityEventsResponse, conn: asyncpg.Connection | None
        ) -> None:
            assert conn is not None
            if event.WhichOneof("event") == "guest_created":
                await conn.execute(
                    "INSERT INTO seen VALUES ($1, 1) "
                    "ON CONFLICT (guest_id) DO UPDATE SET times = seen.times + 1",
                    event.guest_created.guest_id,
                )

        def consumer() -> events.StreamConsumer[pb.WatchIdentityEventsResponse]:
            return events.StreamConsumer(
                "test-consumer",
                open_stream,
                handle,
                lambda e: e.cursor,
                events.TableCursor(pool, "c"),
                pool,
            )

        created: list[str] = []

        async def create(i: int) -> None:
            request = pb.CreateGuestRequest(
                display_name=f"G{i}",
                idempotency_key=f"g-{i}-{schema}",
                email=f"g{i}-{uuid.uuid4().hex[:6]}@example.com",
                password="long enough password",
            )
            while True:  # a device retries with its key until the suite answers
                try:
                    reply = await stub.CreateGuest(request, timeout=5)
                    created.append(reply.guest.guest_id)
                    return
                except grpc.aio.AioRpcError as err:
                    assert err.code() in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                    ), err
                    await asyncio.sleep(0.2)

        first = consumer()
        first.start()
        for i in range(45):
            await create(i)
            if i == 15:
                await first.stop()  # the consumer is killed ...
                second = consumer()
                second.start()  # ... and restarted from its stored cursor
            if i == 30:
                await suite.restart("identity", kill=True)  # the producer dies mid-stream

        # Other tests of the session create guests too: wait for ours, by id.
        async def missing() -> set[str]:
            rows = await pool.fetch("SELECT guest_id FROM seen WHERE guest_id = ANY($1)", created)
            return set(created) - {r["guest_id"] for r in rows}

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while await missing():
                    await asyncio.sleep(0.1)
        await second.stop()
        assert await missing() == set(), "events lost across the restarts"
    finally:
        await channel.close()
        await pool.close()
        with contextlib.suppress(Exception):
            await suite.stop()
