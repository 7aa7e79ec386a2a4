"""The access service started in the test process on a real socket, beside the
identity fixture, on the session's real database; with helpers that make
guests with bands, devices bound to their access point or till, staff and
service tokens."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.access.service import DEFINITION, Parts, build
from services.platform import service_secrets
from services.platform.config import Settings
from services.platform.server import RunningService, Runtime, start
from services.platform.validation import to_timestamp
from tests.service.conftest import ADMIN, DESK, OPS, Guest, Identity
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2 as pb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb

GATE = common_pb2.DEVICE_KIND_GATE
RIDE_SCANNER = common_pb2.DEVICE_KIND_RIDE_SCANNER
DOOR_LOCK = common_pb2.DEVICE_KIND_DOOR_LOCK
POS = common_pb2.DEVICE_KIND_POINT_OF_SALE
READER = common_pb2.DEVICE_KIND_READER

# Lantern Bay Park (the default venue): ids from venues/lantern-bay-park.yaml.
ENTRY = "ap.gate.in1"
EXIT = "ap.gate.out1"
ROOM_101_DOOR = "ap.room.101"
STAFF_DOOR = "ap.staff.street"
TILL = "till.lantern-emporium.1"
MERCHANT = "lantern-emporium"
OTHER_MERCHANT = "circle-cones"

# A day well away from the test clock's own: tickets and taps name it.
DAY = date(2031, 7, 4)


def at(hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    """An instant on DAY in the park's time zone (America/New_York, EDT)."""
    return datetime(DAY.year, DAY.month, DAY.day, hour + 4, minute, second, micro, tzinfo=UTC)


def ts(value: datetime) -> Timestamp:
    return to_timestamp(value)


def key() -> str:
    return uuid.uuid4().hex


def new_uid() -> str:
    return f"BAND-{uuid.uuid4().hex[:12]}"


@dataclass
class Member:
    guest: Guest
    band_uid: str
    band_id: str

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
class Access:
    running: RunningService
    parts: Parts
    stub: access_pb2_grpc.AccessServiceAsyncStub
    db: asyncpg.Pool
    identity: Identity
    desk: str
    ops: str
    admin: str
    queue: str
    photo: str
    itinerary: str
    _devices: dict[tuple[int, str], asyncio.Future[tuple[str, str]]]

    async def device(self, kind: int, venue_ref: str) -> tuple[tuple[str, str], ...]:
        """Metadata of a device of this kind bound to venue_ref (cached per pair).
        Concurrent first calls share one registration: a retried tap sent from
        twelve coroutines at once must come from one device, not twelve."""
        made = self._devices.get((kind, venue_ref))
        if made is None:
            made = asyncio.ensure_future(self.identity.device(kind, venue_ref))
            self._devices[(kind, venue_ref)] = made
        _, token = await made
        return bearer(token)

    async def member(
        self, name: str = "Ann", *, height_cm: int = 0, guest: Guest | None = None
    ) -> Member:
        """A new adult guest (own party) with an active band."""
        guest = guest or await self.identity.guest(name)
        if height_cm:
            await self.identity.stub.UpdateGuest(
                ipb.UpdateGuestRequest(guest_id=guest.guest_id, height_cm=height_cm),
                metadata=bearer(guest.token),
            )
        return await self.band_for(guest, guest.guest_id)

    async def band_for(self, guest: Guest, guest_id: str) -> Member:
        uid = new_uid()
        band = await self.identity.stub.LinkBand(
            ipb.LinkBandRequest(guest_id=guest_id, band_uid=uid), metadata=bearer(guest.token)
        )
        return Member(
            Guest(guest_id, guest.party_id, guest.email, guest.password, guest.token),
            uid,
            band.band.band_id,
        )

    async def child(self, adult: Member, height_cm: int = 0) -> Member:
        reply = await self.identity.stub.AddChild(
            ipb.AddChildRequest(party_id=adult.party_id, display_name="Kid", height_cm=height_cm),
            metadata=bearer(adult.token),
        )
        return await self.band_for(adult.guest, reply.guest.guest_id)

    async def ticket(
        self, member: Member, *days: date, days_allowed: int = 0, entries_per_day: int = 0
    ) -> pb.Entitlement:
        reply = await self.stub.CreateEntitlement(
            pb.CreateEntitlementRequest(
                guest_id=member.guest_id,
                park_ticket=pb.ParkTicket(
                    valid_dates=[
                        common_pb2.VenueDate(year=d.year, month=d.month, day=d.day)
                        for d in (days or (DAY,))
                    ],
                    days_allowed=days_allowed,
                    entries_per_day=entries_per_day,
                ),
            ),
            metadata=bearer(self.desk),
        )
        return reply.entitlement

    async def tap(
        self, point: str, band_uid: str, when: datetime, *, kind: int = 0, idem: str = ""
    ) -> pb.TapResponse:
        kind = kind or _device_kind(point)
        return await self.stub.Tap(
            pb.TapRequest(
                access_point_id=point,
                band_uid=band_uid,
                tapped_at=ts(when),
                idempotency_key=idem or key(),
            ),
            metadata=await self.device(kind, point),
        )

    async def top_up(self, member: Member, minor: int) -> pb.TopUpResponse:
        return await self.stub.TopUp(
            pb.TopUpRequest(
                party_id=member.party_id,
                amount=common_pb2.Money(minor_units=minor, currency="USD"),
                funding_source=pb.FUNDING_SOURCE_CARD,
                idempotency_key=key(),
            ),
            metadata=bearer(member.token),
        )

    async def charge(
        self,
        band_uid: str,
        minor: int,
        *,
        pin: str | None = None,
        till: str = TILL,
        merchant: str = MERCHANT,
        idem: str = "",
        when: datetime | None = None,
    ) -> pb.ChargeResponse:
        request = pb.ChargeRequest(
            merchant_id=merchant,
            band_uid=band_uid,
            amount=common_pb2.Money(minor_units=minor, currency="USD"),
            charged_at=ts(when or datetime.now(UTC)),
            idempotency_key=idem or key(),
        )
        if pin is not None:
            request.pin = pin
        return await self.stub.Charge(request, metadata=await self.device(POS, till))

    async def wait_in_map(self, band_uid: str, timeout: float = 5.0) -> None:
        """Wait until the band map has the band (its event came down the stream)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.parts.directory.live or self.parts.directory.cached(band_uid) is None:
            assert loop.time() < deadline, "band never reached the band map"
            await asyncio.sleep(0.01)

    async def count(self, table: str, where: str = "true", *args: object) -> int:
        return int(
            await self.db.fetchval(f"SELECT count(*) FROM access.{table} WHERE {where}", *args)
        )


def _device_kind(point: str) -> int:
    if point.startswith("ap.gate."):
        return GATE
    if point.startswith(("ap.room.", "ap.staff.")):
        return DOOR_LOCK
    return RIDE_SCANNER


@pytest.fixture(scope="session")
async def access(identity: Identity, data_dir: Path, database_url: str) -> AsyncIterator[Access]:
    settings = Settings.from_env(
        "access",
        env={
            "VENUE_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "VENUE_IDENTITY_ADDR": identity.address,
            "VENUE_ACCESS_ADDR": "127.0.0.1:0",
            "VENUE_SHUTDOWN_GRACE": "1",
        },
    )
    built: list[Parts] = []

    async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
        parts = await build(runtime)
        built.append(parts)

        def register(server: grpc.aio.Server) -> None:
            access_pb2_grpc.add_AccessServiceServicer_to_server(parts.servicer, server)

        return register

    running = await start(dataclasses.replace(DEFINITION, setup=setup), settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stub: access_pb2_grpc.AccessServiceAsyncStub = access_pb2_grpc.AccessServiceStub(channel)
    master = service_secrets.load_or_create_master(data_dir)

    async def service_token(name: str) -> str:
        return await identity.token(
            ipb.IssueTokenRequest(
                service_secret=ipb.ServiceSecret(
                    service=name, secret=service_secrets.derive(master, name)
                )
            )
        )

    _, desk = await identity.staff(DESK)
    _, ops = await identity.staff(OPS)
    _, admin = await identity.staff(ADMIN)
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    found = Access(
        running,
        built[0],
        stub,
        db,
        identity,
        desk,
        ops,
        admin,
        await service_token("queue"),
        await service_token("photo"),
        await service_token("itinerary"),
        {},
    )
    yield found
    await db.close()
    await channel.close()
    await running.stop()
