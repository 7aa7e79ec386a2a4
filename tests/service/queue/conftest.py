"""The queue service started in the test process on a real socket and the
session's real database, with identity beside it, and helpers that feed it
the events of access's and location's streams through its own handlers (the
same code the stream consumers run, in the same kind of transaction).

The venue clock runs at 1x from 11:00 on a summer day at Lantern Bay Park, so
every attraction is open.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest

from services.access.service import DEFINITION as ACCESS
from services.platform.clock import VenueClock
from services.platform.config import Settings, clock_env
from services.platform.server import RunningService, Runtime, ServiceDefinition, start
from services.queue import service as queue_service
from services.queue.feeds import Batch
from services.queue.messages import ts
from services.queue.service import QueueApp
from services.runner.suite import free_port
from tests.service.conftest import DESK, OPS, Identity
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2 as apb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.location.v1 import location_pb2 as lpb
from venue.queue.v1 import queue_pb2_grpc

TZ = ZoneInfo("America/New_York")
VENUE_START = datetime(2026, 7, 1, 11, 0, tzinfo=TZ)
# One venue clock for every service of the session.
CLOCK = VenueClock(VENUE_START, time.time())

POINT_KINDS = {
    "standby": apb.ACCESS_POINT_KIND_RIDE_STANDBY_ENTRANCE,
    "merge": apb.ACCESS_POINT_KIND_RIDE_RETURN_MERGE,
    "boarding": apb.ACCESS_POINT_KIND_RIDE_BOARDING,
}


@dataclass
class Queue:
    running: RunningService
    app: QueueApp
    stub: queue_pb2_grpc.QueueServiceAsyncStub
    identity: Identity
    ops: str
    desk: str
    address: str
    access: access_pb2_grpc.AccessServiceAsyncStub

    def now(self) -> float:
        return self.app.live.now()

    async def ticket(self, guest_id: str) -> str:
        """A park ticket for today (the venue date of the queue's clock),
        sold at the desk in access."""
        day = self.app.desk.day(self.now())
        reply = await self.access.CreateEntitlement(
            apb.CreateEntitlementRequest(
                guest_id=guest_id,
                park_ticket=apb.ParkTicket(
                    valid_dates=[common_pb2.VenueDate(year=day.year, month=day.month, day=day.day)]
                ),
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=bearer(self.desk),
        )
        return str(reply.entitlement.entitlement_id)

    async def passes(self, party_id: str) -> list[apb.Entitlement]:
        """The party's return-time and virtual-queue passes as access holds them."""
        reply = await self.access.ListEntitlements(
            apb.ListEntitlementsRequest(
                party_id=party_id,
                kinds=[apb.ENTITLEMENT_KIND_RETURN_TIME, apb.ENTITLEMENT_KIND_VIRTUAL_QUEUE],
                include_inactive=True,
                page=common_pb2.PageRequest(page_size=100),
            ),
            metadata=bearer(self.desk),
        )
        return list(reply.entitlements)

    def tap_event(
        self,
        kind: str,
        attraction: str,
        guest: str,
        at: float | None = None,
        entitlement_id: str = "",
        tap_id: str | None = None,
    ) -> apb.WatchAccessEventsResponse:
        spec = self.app.live.lines.specs[attraction]
        point = {
            "standby": spec.standby_point,
            "merge": spec.merge_point or "",
            "boarding": spec.boarding_point,
        }[kind]
        return apb.WatchAccessEventsResponse(
            tap_recorded=apb.TapRecorded(
                tap_id=tap_id or str(uuid.uuid4()),
                access_point_id=point,
                access_point_kind=POINT_KINDS[kind],
                attraction_id=attraction,
                guest_id=guest,
                party_id=str(uuid.uuid4()),
                tapped_at=ts(self.now() if at is None else at),
                entitlement_id=entitlement_id,
            )
        )

    async def feed_access(self, events: list[apb.WatchAccessEventsResponse]) -> None:
        """Handle events as the access stream consumer does: one transaction."""
        async with self.app.store.pool.acquire() as conn, conn.transaction():
            await self.app.handle_access(Batch(events, ""), conn)

    async def tap(self, kind: str, attraction: str, guest: str, at: float | None = None) -> str:
        event = self.tap_event(kind, attraction, guest, at)
        await self.feed_access([event])
        return event.tap_recorded.tap_id

    async def feed_occupancy(self, zone_id: str, count: int, at: float | None = None) -> None:
        event = lpb.WatchLocationEventsResponse(
            occurred_at=ts(self.now() if at is None else at),
            occupancy_changed=lpb.OccupancyChanged(zone_id=zone_id, count=count),
        )
        async with self.app.store.pool.acquire() as conn, conn.transaction():
            await self.app.handle_location(Batch([event], ""), conn)

    async def count(self, table: str, where: str = "true", *args: object) -> int:
        value = await self.app.store.pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE {where}", *args
        )
        return int(value)


def queue_settings(
    data_dir: Path,
    database_url: str,
    identity_address: str,
    clock: VenueClock | None = None,
    access_address: str | None = None,
) -> Settings:
    """Settings of a queue instance (sharing `clock` with another, if given)."""
    clock = clock or CLOCK
    return Settings.from_env(
        "queue",
        env={
            "VENUE_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "VENUE_QUEUE_ADDR": "127.0.0.1:0",
            "VENUE_IDENTITY_ADDR": identity_address,
            # Without access, nothing listens here: the feed retries quietly
            # and tests inject the events it would carry.
            "VENUE_ACCESS_ADDR": access_address or f"127.0.0.1:{free_port()}",
            "VENUE_LOCATION_ADDR": f"127.0.0.1:{free_port()}",
            **clock_env(clock),
            "VENUE_SHUTDOWN_GRACE": "1",
        },
    )


async def start_queue(settings: Settings) -> tuple[RunningService, QueueApp]:
    """Start the service as its definition does, keeping hold of its parts."""
    built: list[QueueApp] = []

    async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
        app = await queue_service.build(runtime)
        built.append(app)
        return queue_service.start(runtime, app)

    definition = ServiceDefinition(
        name=queue_service.DEFINITION.name,
        proto_service=queue_service.DEFINITION.proto_service,
        policy=queue_service.DEFINITION.policy,
        setup=setup,
        migrations=queue_service.DEFINITION.migrations,
    )
    running = await start(definition, settings)
    return running, built[0]


@pytest.fixture(scope="session")
async def access(identity: Identity, data_dir: Path, database_url: str) -> AsyncIterator[str]:
    """The real access service on its own socket, on the queue's venue clock:
    bookings check tickets in it and write their passes into it."""
    settings = Settings.from_env(
        "access",
        env={
            "VENUE_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "VENUE_IDENTITY_ADDR": identity.address,
            "VENUE_ACCESS_ADDR": "127.0.0.1:0",
            "VENUE_SHUTDOWN_GRACE": "1",
            **clock_env(CLOCK),
        },
    )
    running = await start(ACCESS, settings)
    yield f"127.0.0.1:{running.port}"
    await running.stop()


@pytest.fixture(scope="session")
async def queue(
    identity: Identity, access: str, data_dir: Path, database_url: str
) -> AsyncIterator[Queue]:
    settings = queue_settings(data_dir, database_url, identity.address, access_address=access)
    running, app = await start_queue(settings)
    address = f"127.0.0.1:{running.port}"
    channel = grpc.aio.insecure_channel(address)
    stub: queue_pb2_grpc.QueueServiceAsyncStub = queue_pb2_grpc.QueueServiceStub(channel)
    _, ops = await identity.staff(OPS)
    _, desk = await identity.staff(DESK)
    access_channel = grpc.aio.insecure_channel(access)
    access_stub: access_pb2_grpc.AccessServiceAsyncStub = access_pb2_grpc.AccessServiceStub(
        access_channel
    )
    yield Queue(running, app, stub, identity, ops, desk, address, access_stub)
    await access_channel.close()
    await channel.close()
    await running.stop()
