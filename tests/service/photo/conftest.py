"""The photo service started in the test process on a real socket and the
session's real database, beside the identity fixture and a real access
process (photo charges through it and follows its boarding taps), with helpers
that make guests, bands and devices, and that feed boarding taps either
through photo's own access-stream handler (the same code its consumer runs) or
through access itself, by a ride scanner."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest

from services.photo import service
from services.photo.consumers import on_tap
from services.photo.service import PhotoParts
from services.platform.config import Settings
from services.platform.server import RunningService, Runtime, ServiceDefinition, start
from services.platform.validation import to_timestamp
from services.runner.suite import Suite, free_port
from tests.service.conftest import Guest, Identity
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2, access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2
from venue.photo.v1 import photo_pb2 as pb
from venue.photo.v1 import photo_pb2_grpc

# A ride whose prior window can hold only one vehicle (a long dispatch
# interval), so the linker decides without calibrating first.
RIDE = "summit-yeti-express"
RIDE_CAMERA = "cam.summit-yeti-express"
BOARDING = "ap.summit-yeti-express.boarding"
RIDE_DELAY = 57.6
KIOSK = "ap.rocket-coaster.photo-kiosk"
KIOSK_RIDE = "rocket-coaster"
KIOSK_CAMERA = "cam.rocket-coaster"
SPOT = "cam.spot.street.01"
CAMERA = common_pb2.DEVICE_KIND_CAMERA
PHOTOGRAPHER = common_pb2.DEVICE_KIND_PHOTOGRAPHER
KIOSK_DEVICE = common_pb2.DEVICE_KIND_KIOSK
RIDE_SCANNER = common_pb2.DEVICE_KIND_RIDE_SCANNER
CURRENCY = "USD"
OPS = common_pb2.STAFF_ROLE_OPS

_slots = itertools.count(1)
_uids = itertools.count(1)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def capture(camera: str, at: datetime, capture_id: str | None = None, **extra: Any) -> pb.Capture:
    ident = f"cap-{uuid.uuid4().hex[:12]}" if capture_id is None else capture_id
    fields: dict[str, Any] = {
        "capture_id": ident,
        "camera_id": camera,
        "captured_at": to_timestamp(at),
        "image_uri": f"s3://photos/{ident or uuid.uuid4().hex}.jpg",
        "image_sha256": sha(ident),
    }
    return pb.Capture(**{**fields, **extra})


@dataclass
class Member:
    guest: Guest
    band_uid: str

    @property
    def guest_id(self) -> str:
        return self.guest.guest_id

    @property
    def party_id(self) -> str:
        return self.guest.party_id

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.guest.token)


@dataclass
class Photo:
    running: RunningService
    parts: PhotoParts
    stub: photo_pb2_grpc.PhotoServiceAsyncStub
    identity: Identity
    db: asyncpg.Pool
    access: access_pb2_grpc.AccessServiceAsyncStub
    _devices: dict[tuple[int, str], str] = field(default_factory=dict)

    async def device(self, kind: int, ref: str) -> tuple[tuple[str, str], ...]:
        """Credentials of a device of this kind serving `ref` (made once)."""
        if (kind, ref) not in self._devices:
            _, token = await self.identity.device(kind, venue_ref=ref)
            self._devices[(kind, ref)] = token
        return bearer(self._devices[(kind, ref)])

    async def ops(self) -> tuple[tuple[str, str], ...]:
        if (0, "ops") not in self._devices:
            _, token = await self.identity.staff(OPS)
            self._devices[(0, "ops")] = token
        return bearer(self._devices[(0, "ops")])

    async def member(self, party_of: Member | None = None, consent: bool = True) -> Member:
        """A guest with a band, in a new party or in `party_of`'s (known to photo)."""
        if party_of is None:
            guest = await self.identity.guest("Ann", photo_linking=consent)
        else:
            reply = await self.identity.stub.AddChild(
                identity_pb2.AddChildRequest(
                    party_id=party_of.party_id,
                    display_name="Kim",
                    height_cm=120,
                    consent=identity_pb2.Consent(photo_linking=consent),
                ),
                metadata=party_of.auth,
            )
            guest = Guest(reply.guest.guest_id, party_of.party_id, "", "", party_of.guest.token)
        uid = f"PHOTO-{next(_uids):06d}-{uuid.uuid4().hex[:6]}"
        await self.identity.stub.LinkBand(
            identity_pb2.LinkBandRequest(guest_id=guest.guest_id, band_uid=uid),
            metadata=bearer(self.identity.admin),
        )
        await self.known(guest.guest_id, consent)
        return Member(guest, uid)

    async def known(self, guest_id: str, consent: bool | None = None) -> None:
        """Wait until photo's identity consumer has heard of the guest."""
        for _ in range(200):
            row = await self.db.fetchrow(
                "SELECT photo_linking FROM photo.guests WHERE guest_id = $1", guest_id
            )
            if row is not None and (consent is None or row["photo_linking"] == consent):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("photo never heard of the guest")

    async def tap(self, member: Member, at: datetime, point: str = BOARDING) -> str:
        """A boarding tap as access's stream delivers it, through photo's handler."""
        tap_id = str(uuid.uuid4())
        event = access_pb2.TapRecorded(
            tap_id=tap_id,
            access_point_id=point,
            access_point_kind=access_pb2.ACCESS_POINT_KIND_RIDE_BOARDING,
            attraction_id=RIDE,
            guest_id=member.guest_id,
            party_id=member.party_id,
            tapped_at=to_timestamp(at),
        )
        parts = self.parts
        async with self.running.runtime.pool.acquire() as conn, conn.transaction():
            await on_tap(event, conn, parts.store, parts.linker, parts.catalog)
        return tap_id

    async def scan(self, member: Member, at: datetime, point: str = BOARDING) -> None:
        """A boarding tap by the ride's scanner, through the real access service."""
        auth = await self.device(RIDE_SCANNER, point)

        async def allowed() -> bool:
            reply = await self.access.Tap(
                access_pb2.TapRequest(
                    access_point_id=point,
                    band_uid=member.band_uid,
                    tapped_at=to_timestamp(at),
                    idempotency_key=uuid.uuid4().hex,
                ),
                metadata=auth,
            )
            if reply.deny_reason == access_pb2.DENY_REASON_UNKNOWN_BAND:
                return False  # access has not heard of the new band yet
            assert reply.decision == access_pb2.TAP_DECISION_ALLOW, reply.display_message
            return True

        await self.until(allowed)

    async def heard_tap(self, member: Member) -> bool:
        """Photo has recorded a boarding tap of the member (from access's stream)."""
        found = await self.db.fetchval(
            "SELECT count(*) FROM photo.boarding_taps WHERE guest_id = $1", member.guest_id
        )
        return bool(found)

    async def top_up(self, member: Member, minor: int) -> None:
        """Funds in the party's wallet, paid by card in the app."""
        await self.access.TopUp(
            access_pb2.TopUpRequest(
                party_id=member.party_id,
                amount=common_pb2.Money(minor_units=minor, currency=CURRENCY),
                funding_source=access_pb2.FUNDING_SOURCE_CARD,
                payment_reference=f"card-{uuid.uuid4().hex[:8]}",
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=member.auth,
        )

    async def balance(self, member: Member) -> int:
        reply = await self.access.GetWallet(
            access_pb2.GetWalletRequest(party_id=member.party_id), metadata=member.auth
        )
        return int(reply.wallet.balance.minor_units)

    async def ingest(
        self, *captures: pb.Capture, camera: str = RIDE_CAMERA
    ) -> pb.IngestCapturesResponse:
        auth = await self.device(CAMERA if camera != SPOT else PHOTOGRAPHER, camera)
        return await self.stub.IngestCaptures(
            pb.IngestCapturesRequest(captures=list(captures)), metadata=auth
        )

    async def until(self, probe: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
        """Poll until `probe()` returns something truthy."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await probe()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition never became true")
            await asyncio.sleep(0.05)

    async def photos_of(self, member: Member) -> list[pb.Photo]:
        reply = await self.stub.ListPhotos(
            pb.ListPhotosRequest(party_id=member.party_id), metadata=member.auth
        )
        return list(reply.photos)

    async def state(self, photo_id: str) -> int:
        return int(
            await self.db.fetchval(
                "SELECT match_state FROM photo.photos WHERE photo_id = $1", photo_id
            )
        )

    async def decided(self, photo_id: str) -> int:
        """Wait for the linker's decision on a ride photo; its match_state."""
        return int(await self.until(lambda: self._decided(photo_id)))

    async def _decided(self, photo_id: str) -> int:
        state = await self.state(photo_id)
        return 0 if state == 1 else state

    async def count(self, table: str) -> int:
        return int(await self.db.fetchval(f"SELECT count(*) FROM photo.{table}"))


def slot() -> datetime:
    """A venue time of this test's own, hours in the past and 20 minutes from any
    other test's, so no two tests put taps or captures in each other's windows."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    return base - timedelta(minutes=20 * next(_slots))


@pytest.fixture(scope="session")
async def access_process(
    identity: Identity, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """Access as its own process (as deployed), beside the in-process identity;
    its address."""
    identity_port = int(identity.address.rsplit(":", 1)[1])
    suite = Suite(
        data_dir=identity.data_dir,
        services=["access"],
        database_url=database_url,
        ports={"identity": identity_port, "access": free_port(), "photo": free_port()},
        log_dir=tmp_path_factory.mktemp("photo-access-logs"),
        telemetry_dir=tmp_path_factory.mktemp("photo-access-telemetry"),
    )
    await suite.start()
    try:
        yield suite.addresses["access"]
    finally:
        await suite.stop()


@pytest.fixture(scope="session")
async def photo(identity: Identity, database_url: str, access_process: str) -> AsyncIterator[Photo]:
    built: list[PhotoParts] = []

    async def capturing(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
        parts = await service.build(runtime)
        built.append(parts)
        return parts.register

    definition = ServiceDefinition(
        name=service.DEFINITION.name,
        proto_service=service.DEFINITION.proto_service,
        policy=service.DEFINITION.policy,
        setup=capturing,
        migrations=service.DEFINITION.migrations,
    )
    settings = Settings.from_env(
        "photo",
        env={
            "VENUE_DATA_DIR": str(identity.data_dir),
            "DATABASE_URL": database_url,
            "VENUE_PHOTO_ADDR": "127.0.0.1:0",
            "VENUE_IDENTITY_ADDR": identity.address,
            "VENUE_ACCESS_ADDR": access_process,
            "VENUE_SHUTDOWN_GRACE": "1",
        },
    )
    running = await start(definition, settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    access_channel = grpc.aio.insecure_channel(access_process)
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield Photo(
        running,
        built[0],
        photo_pb2_grpc.PhotoServiceStub(channel),
        identity,
        db,
        access_pb2_grpc.AccessServiceStub(access_channel),
    )
    await db.close()
    await channel.close()
    await access_channel.close()
    await running.stop()
