"""The routing service started in the test process on a real socket, with identity
for credentials, and scripted stand-ins for the queue and location services.

Why stand-ins when the real services exist. These tests pin routing's own
reactions to exact inputs: a forecast that grows through the morning beside a flat
one, a zone at exactly twice its capacity, a ride closed for weather, a posted
wait of exactly 25 minutes. The real queue and location services cannot be
scripted like that without a day of taps and pings, and these tests run in a
fraction of a second each. `QueuePeer` and `LocationPeer` speak the services' real
protobuf APIs on a real socket (snapshot RPCs answering empty, Watch streams fed by
the test), so routing's consumers run unchanged over gRPC.

What they do not prove: that routing is admitted by the real services' policies,
that the real snapshots and streams carry what routing reads, and that routing
follows identity's revocations. `tests/e2e/test_routing_live.py` proves that
against identity, access, location, queue and routing as real processes (a reader
device crowding a floor, ops staff setting a ride down, nearest points of interest,
a revoked credential). A stand-in must only ever send what the real service sends:
change it when their protos change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.platform import service_secrets
from services.platform.config import Settings
from services.platform.server import RunningService, start
from services.routing.service import DEFINITION
from tests.service.conftest import Identity
from venue.identity.v1 import identity_pb2
from venue.location.v1 import location_pb2, location_pb2_grpc
from venue.queue.v1 import queue_pb2, queue_pb2_grpc
from venue.routing.v1 import routing_pb2_grpc

# Venue time of the tests: a summer Saturday morning in the park.
VENUE_NOW = datetime(2026, 7, 4, 14, 0, tzinfo=UTC)  # 10:00 in New York


class _Broadcast:
    """Events pushed by the test, delivered to every open Watch call."""

    def __init__(self) -> None:
        self._subscribers: list[asyncio.Queue[Any]] = []
        self.opened = asyncio.Event()

    def push(self, event: Any) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    async def stream(self) -> AsyncIterator[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscribers.append(queue)
        self.opened.set()
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)


@dataclass
class QueuePeer(queue_pb2_grpc.QueueServiceServicer):
    forecasts: list[queue_pb2.AttractionForecast] = field(default_factory=list)
    waits: list[queue_pb2.AttractionWait] = field(default_factory=list)
    events: _Broadcast = field(default_factory=_Broadcast)
    cursor: int = 0

    async def GetForecast(self, request: Any, context: Any) -> queue_pb2.GetForecastResponse:
        return queue_pb2.GetForecastResponse(forecasts=self.forecasts)

    async def GetWaitTimes(self, request: Any, context: Any) -> queue_pb2.GetWaitTimesResponse:
        return queue_pb2.GetWaitTimesResponse(waits=self.waits)

    async def GetAttractionState(
        self, request: Any, context: Any
    ) -> queue_pb2.GetAttractionStateResponse:
        return queue_pb2.GetAttractionStateResponse(
            state=queue_pb2.AttractionState(attraction_id=request.attraction_id)
        )

    async def WatchQueueEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for event in self.events.stream():
            yield event

    def publish(self, **event: Any) -> None:
        self.cursor += 1
        message = queue_pb2.WatchQueueEventsResponse(cursor=f"c{self.cursor}", **event)
        message.occurred_at.FromDatetime(VENUE_NOW)
        self.events.push(message)


@dataclass
class LocationPeer(location_pb2_grpc.LocationServiceServicer):
    events: _Broadcast = field(default_factory=_Broadcast)
    cursor: int = 0

    async def ListZoneOccupancy(
        self, request: Any, context: Any
    ) -> location_pb2.ListZoneOccupancyResponse:
        return location_pb2.ListZoneOccupancyResponse()

    async def WatchLocationEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for event in self.events.stream():
            yield event

    def publish(self, zone_id: str, density: float, at: datetime) -> None:
        self.cursor += 1
        message = location_pb2.WatchLocationEventsResponse(
            cursor=f"l{self.cursor}",
            occupancy_changed=location_pb2.OccupancyChanged(
                zone_id=zone_id, count=int(density * 100), capacity=100, density=density
            ),
        )
        message.occurred_at.FromDatetime(at)
        self.events.push(message)


@dataclass
class Routing:
    running: RunningService
    stub: routing_pb2_grpc.RoutingServiceAsyncStub
    queue: QueuePeer
    location: LocationPeer
    identity: Identity

    async def service_token(self, name: str) -> str:
        master = service_secrets.load_or_create_master(self.identity.data_dir)
        return await self.identity.token(
            identity_pb2.IssueTokenRequest(
                service_secret=identity_pb2.ServiceSecret(
                    service=name, secret=service_secrets.derive(master, name)
                )
            )
        )


@pytest.fixture(scope="session")
async def routing(identity: Identity, data_dir: Path, database_url: str) -> AsyncIterator[Routing]:
    queue, location = QueuePeer(), LocationPeer()  # type: ignore[abstract]
    peers = grpc.aio.server()
    queue_pb2_grpc.add_QueueServiceServicer_to_server(queue, peers)
    location_pb2_grpc.add_LocationServiceServicer_to_server(location, peers)
    port = peers.add_insecure_port("127.0.0.1:0")
    await peers.start()
    settings = Settings.from_env(
        "routing",
        env={
            "VENUE_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "VENUE_IDENTITY_ADDR": identity.address,
            "VENUE_ROUTING_ADDR": "127.0.0.1:0",
            "VENUE_QUEUE_ADDR": f"127.0.0.1:{port}",
            "VENUE_LOCATION_ADDR": f"127.0.0.1:{port}",
            "VENUE_CLOCK_START": VENUE_NOW.isoformat(),
            "VENUE_SHUTDOWN_GRACE": "1",
        },
    )
    running = await start(DEFINITION, settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stub = routing_pb2_grpc.RoutingServiceStub(channel)
    async with asyncio.timeout(20):
        await queue.events.opened.wait()
        await location.events.opened.wait()
    yield Routing(running, stub, queue, location, identity)
    await channel.close()
    await running.stop()
    await peers.stop(0)
