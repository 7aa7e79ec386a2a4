"""The identity service started in the test process, on a real socket and the
session's real database, with helpers that make guests, devices and staff."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest

from services.identity.service import DEFINITION
from services.platform import service_secrets
from services.platform.config import Settings
from services.platform.server import RunningService, start
from tests.support.stubs import bearer
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as pb
from venue.identity.v1 import identity_pb2_grpc

# Service tests drive a service in this process with one token per role,
# faster than any app or device may: the limiter reads the process
# environment. Per-caller limits are proven in tests/hardening/test_limits.py,
# whose services are subprocesses (Suite does not pass VENUE_* down).
os.environ["VENUE_RATE_LIMITS"] = "off"


@dataclass
class Guest:
    guest_id: str
    party_id: str
    email: str
    password: str
    token: str


@dataclass
class Identity:
    running: RunningService
    stub: identity_pb2_grpc.IdentityServiceAsyncStub
    db: asyncpg.Pool
    admin: str
    data_dir: Path
    address: str

    async def token(self, request: pb.IssueTokenRequest) -> str:
        return (await self.stub.IssueToken(request)).access_token

    async def guest(self, name: str = "Ann", **consent: bool) -> Guest:
        email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        password = "correct horse battery"
        reply = await self.stub.CreateGuest(
            pb.CreateGuestRequest(
                display_name=name, email=email, password=password, consent=pb.Consent(**consent)
            )
        )
        token = await self.token(
            pb.IssueTokenRequest(guest_password=pb.GuestPassword(email=email, password=password))
        )
        return Guest(reply.guest.guest_id, reply.guest.party_id, email, password, token)

    async def device(self, kind: int, venue_ref: str = "") -> tuple[str, str]:
        """(device_id, token) of a newly registered device."""
        reply = await self.stub.RegisterDevice(
            pb.RegisterDeviceRequest(kind=kind, name=f"test-{kind}", venue_ref=venue_ref),  # type: ignore[arg-type]
            metadata=bearer(self.admin),
        )
        token = await self.token(
            pb.IssueTokenRequest(
                device_secret=pb.DeviceSecret(device_id=reply.device.device_id, secret=reply.secret)
            )
        )
        return reply.device.device_id, token

    async def staff(self, role: int) -> tuple[str, str]:
        reply = await self.stub.CreateStaff(
            pb.CreateStaffRequest(display_name="Sam", role=role),  # type: ignore[arg-type]
            metadata=bearer(self.admin),
        )
        token = await self.token(
            pb.IssueTokenRequest(
                staff_secret=pb.StaffSecret(staff_id=reply.staff.staff_id, secret=reply.secret)
            )
        )
        return reply.staff.staff_id, token

    async def count(self, table: str) -> int:
        return int(await self.db.fetchval(f"SELECT count(*) FROM identity.{table}"))


@pytest.fixture(scope="session")
async def identity(data_dir: Path, database_url: str) -> AsyncIterator[Identity]:
    settings = Settings.from_env(
        "identity",
        env={
            "VENUE_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "VENUE_IDENTITY_ADDR": "127.0.0.1:0",
            "VENUE_SHUTDOWN_GRACE": "1",
        },
    )
    running = await start(DEFINITION, settings)
    address = f"127.0.0.1:{running.port}"
    channel = grpc.aio.insecure_channel(address)
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    master = service_secrets.load_or_create_master(data_dir)
    admin = (
        await stub.IssueToken(
            pb.IssueTokenRequest(
                staff_secret=pb.StaffSecret(
                    staff_id=service_secrets.BOOTSTRAP_ADMIN_ID,
                    secret=service_secrets.derive(master, service_secrets.BOOTSTRAP_ADMIN),
                )
            )
        )
    ).access_token
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield Identity(running, stub, db, admin, data_dir, address)
    await db.close()
    await channel.close()
    await running.stop()


GATE = common_pb2.DEVICE_KIND_GATE
READER = common_pb2.DEVICE_KIND_READER
OPS = common_pb2.STAFF_ROLE_OPS
DESK = common_pb2.STAFF_ROLE_DESK
ADMIN = common_pb2.STAFF_ROLE_ADMIN
