"""The location service started in the test process on a real socket, each
instance on a fresh database of the session's PostgreSQL, following the
session's real identity service; helpers for reader devices, guests with
bands, ping batches and the event stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from services.location.service import DEFINITION
from services.platform import service_secrets
from services.platform.config import Settings
from services.platform.server import RunningService, start
from tests.service.conftest import OPS, READER, Guest, Identity
from tests.support.stubs import bearer
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.location.v1 import location_pb2 as pb
from venue.location.v1 import location_pb2_grpc

VENUE_ID = "lantern-bay-park"
# Two readers of one queue zone, 12 m range, and one of a land.
QUEUE_ZONE = "queue.river-expedition-cruise"
QUEUE_READER_A = "rd.river-expedition-cruise.q1"
QUEUE_READER_B = "rd.river-expedition-cruise.q2"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class BandedGuest:
    guest: Guest
    band_uid: str

    @property
    def guest_id(self) -> str:
        return self.guest.guest_id

    @property
    def party_id(self) -> str:
        return self.guest.party_id

    @property
    def token(self) -> str:
        return self.guest.token


@dataclass
class Location:
    running: RunningService
    stub: location_pb2_grpc.LocationServiceAsyncStub
    channel: grpc.aio.Channel
    db: asyncpg.Pool
    identity: Identity
    ops: str = ""
    gateway: str = ""
    gateway_id: str = ""
    _batches: int = field(default=0)

    async def close(self) -> None:
        await self.channel.close()
        await self.db.close()
        await self.running.stop()

    # --- people and devices ------------------------------------------------------------

    async def guest(self, tracking: bool = True, name: str = "Ann") -> BandedGuest:
        guest = await self.identity.guest(name, location_tracking=tracking)
        uid = f"BAND-{uuid.uuid4().hex[:12].upper()}"
        await self.identity.stub.LinkBand(
            ipb.LinkBandRequest(guest_id=guest.guest_id, band_uid=uid), metadata=bearer(guest.token)
        )
        return BandedGuest(guest, uid)

    async def reader_device(self, venue_ref: str) -> tuple[str, str]:
        return await self.identity.device(READER, venue_ref)

    async def service_token(self, name: str) -> str:
        master = service_secrets.load_or_create_master(self.identity.data_dir)
        return await self.identity.token(
            ipb.IssueTokenRequest(
                service_secret=ipb.ServiceSecret(
                    service=name, secret=service_secrets.derive(master, name)
                )
            )
        )

    async def child(self, parent: BandedGuest, tracking: bool = True) -> BandedGuest:
        """A child in the parent's party, with a band the parent linked."""
        reply = await self.identity.stub.AddChild(
            ipb.AddChildRequest(
                party_id=parent.party_id,
                display_name="Kid",
                consent=ipb.Consent(location_tracking=tracking),
            ),
            metadata=bearer(parent.token),
        )
        uid = f"BAND-{uuid.uuid4().hex[:12].upper()}"
        await self.identity.stub.LinkBand(
            ipb.LinkBandRequest(guest_id=reply.guest.guest_id, band_uid=uid),
            metadata=bearer(parent.token),
        )
        kid = Guest(reply.guest.guest_id, parent.party_id, "", "", parent.token)
        return BandedGuest(kid, uid)

    def watch(
        self, token: str | None = None, **request: Any
    ) -> tuple[list[pb.WatchLocationEventsResponse], asyncio.Task[None]]:
        """Follow the event stream from now into a list, in the background."""
        seen: list[pb.WatchLocationEventsResponse] = []
        call = self.stub.WatchLocationEvents(
            pb.WatchLocationEventsRequest(start=common_pb2.StreamCursor(from_now=True), **request),
            metadata=bearer(token or self.ops),
        )

        async def follow() -> None:
            async for event in call:
                seen.append(event)

        return seen, asyncio.create_task(follow())

    async def set_tracking(self, guest: BandedGuest, on: bool) -> None:
        await self.identity.stub.SetConsent(
            ipb.SetConsentRequest(guest_id=guest.guest_id, location_tracking=on),
            metadata=bearer(guest.token),
        )

    # --- ingest -------------------------------------------------------------------------

    def batch_id(self) -> str:
        self._batches += 1
        return f"b-{uuid.uuid4().hex[:8]}-{self._batches}"

    async def send(
        self, batches: Iterable[pb.PingBatch], token: str | None = None
    ) -> list[pb.IngestPingsResponse]:
        """Send batches on one stream; the acks in the order they came."""
        requests = [pb.IngestPingsRequest(batch=b) for b in batches]

        async def gen() -> AsyncIterator[pb.IngestPingsRequest]:
            for request in requests:
                yield request

        call = self.stub.IngestPings(gen(), metadata=bearer(token or self.gateway))
        return [ack async for ack in call]

    async def ping(
        self,
        rows: Iterable[tuple[str, str, int, int]],
        batch_id: str | None = None,
        token: str | None = None,
    ) -> pb.IngestPingsResponse:
        """One batch of (band_uid, reader_id, observed_at_ms, rssi) rows."""
        batch = make_batch(batch_id or self.batch_id(), rows)
        (ack,) = await self.send([batch], token)
        return ack

    async def ping_when_known(
        self, rows: list[tuple[str, str, int, int]], timeout: float = 10.0
    ) -> pb.IngestPingsResponse:
        """Send until no row is rejected for an unknown band (identity's events
        reach location a moment after the band is linked)."""
        deadline = time.monotonic() + timeout
        while True:
            ack = await self.ping(rows)
            unknown = [r for r in ack.rejected if r.reason == pb.PING_REJECT_REASON_UNKNOWN_BAND]
            if not unknown or time.monotonic() > deadline:
                return ack
            await asyncio.sleep(0.05)

    # --- reading back ---------------------------------------------------------------------

    async def where(
        self, guest_id: str, token: str | None = None, trail: bool = False
    ) -> pb.GuestLocation:
        reply = await self.stub.GetGuestLocation(
            pb.GetGuestLocationRequest(guest_id=guest_id, include_trail=trail),
            metadata=bearer(token or self.ops),
        )
        return reply.location

    async def count(self, zone_id: str) -> int:
        reply = await self.stub.GetZoneOccupancy(
            pb.GetZoneOccupancyRequest(zone_id=zone_id), metadata=bearer(self.ops)
        )
        return reply.occupancy.count

    async def until(
        self, check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or check}")
            await asyncio.sleep(0.05)

    async def placed_in(self, guest_id: str, zone_id: str, timeout: float = 10.0) -> None:
        async def check() -> bool:
            where = await self.where(guest_id)
            return where.status == pb.LOCATION_STATUS_KNOWN and where.place.zone_id == zone_id

        await self.until(check, timeout, f"{guest_id} in {zone_id}")

    async def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self.db.fetch(sql, *args))


def make_batch(batch_id: str, rows: Iterable[tuple[str, str, int, int]]) -> pb.PingBatch:
    batch = pb.PingBatch(batch_id=batch_id)
    for band, reader, at, rssi in rows:
        batch.band_uids.append(band)
        batch.reader_ids.append(reader)
        batch.observed_at_unix_ms.append(at)
        batch.rssi_dbm.append(rssi)
    return batch


async def _fresh_database(database_url: str) -> str:
    name = f"loc_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))


LocationFactory = Callable[..., Awaitable[Location]]


@pytest.fixture(scope="session")
async def location_factory(identity: Identity, database_url: str) -> AsyncIterator[LocationFactory]:
    started: list[Location] = []

    async def make(env: Mapping[str, str] | None = None, database: str | None = None) -> Location:
        url = database or await _fresh_database(database_url)
        settings = Settings.from_env(
            "location",
            env={
                "VENUE_DATA_DIR": str(identity.data_dir),
                "DATABASE_URL": url,
                "VENUE_IDENTITY_ADDR": identity.address,
                "VENUE_LOCATION_ADDR": "127.0.0.1:0",
                "VENUE_SHUTDOWN_GRACE": "1",
                "VENUE_DB_POOL_SIZE": "4",
                **(env or {}),
            },
        )
        running = await start(DEFINITION, settings)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        db = await asyncpg.create_pool(
            url, min_size=1, max_size=2, server_settings={"search_path": "location"}
        )
        loc = Location(
            running, location_pb2_grpc.LocationServiceStub(channel), channel, db, identity
        )
        _, loc.ops = await identity.staff(OPS)
        loc.gateway_id, loc.gateway = await loc.reader_device(VENUE_ID)
        started.append(loc)
        return loc

    yield make
    for loc in started:
        await loc.close()


@pytest.fixture(scope="session")
async def location(location_factory: LocationFactory) -> Location:
    return await location_factory()


GATE = common_pb2.DEVICE_KIND_GATE
