"""The suite as real processes on a database of its own (on the session's
PostgreSQL server), with a token for every kind of caller.

Two guests in two parties (the matrix's "this party" and "another party"), each
with a band and money in the wallet; a device of every kind placed where such a
device stands in the venue; each staff role; each service's own token. The
fuzzing draws ids from a separate set of people and devices, so that a fuzzed
admin call that erases or revokes cannot take away the matrix's callers.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.platform import service_secrets
from services.platform.config import DEFAULT_VENUE_FILE
from services.runner.suite import Suite, auto_ports, implemented_services
from services.venue_model import AccessPointKind, Venue, load_venue
from tests.hardening.callers import PRIVILEGE_ORDER, CallerKind, caller_kinds
from tests.hardening.rpcs import Rpc
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2 as apb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc

# Codes that say the caller was refused before any service code ran.
REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


@dataclass
class Person:
    guest_id: str
    party_id: str
    band_id: str
    band_uid: str
    token: str


@dataclass
class Outcome:
    code: grpc.StatusCode
    reply: bytes = b""
    details: str = ""
    error: grpc.aio.AioRpcError | None = None
    # Fields a google.rpc.BadRequest names, for a stream that ended in error.
    fields: list[str] = field(default_factory=list)


def bad_request_fields(trailers: Any) -> list[str]:
    """The fields named by the BadRequest in a call's trailing metadata."""
    found: list[str] = []
    for key, value in trailers or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                found += [v.field for v in bad.field_violations]
    return found


@dataclass
class Hardened:
    suite: Suite
    db: asyncpg.Pool
    admin: str
    tokens: dict[str, str]  # caller name -> token ("" for anonymous)
    device_ids: dict[str, str]  # caller name -> device id, for devices
    me: Person  # the guest whose party is "this party"
    other: Person  # a guest of another party
    fuzz_ids: list[str]  # ids that exist, for fuzzed requests to find
    refs: dict[str, str] = field(default_factory=dict)  # device caller -> venue ref
    merchant: str = ""  # the merchant of the point-of-sale device's till
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    rate_waits: int = 0
    # Figures for the closing note, written to <basetemp>/hardening.json (and to
    # $VENUE_HARDENING_RESULTS when set, as `make fuzz` does).
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def services(self) -> list[str]:
        return list(self.suite.processes)

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self.channels:
            self.channels[service] = grpc.aio.insecure_channel(
                self.suite.addresses[service],
                options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
            )
        return self.channels[service]

    def identity(self) -> identity_pb2_grpc.IdentityServiceAsyncStub:
        return identity_pb2_grpc.IdentityServiceStub(self.channel("identity"))

    def access(self) -> access_pb2_grpc.AccessServiceAsyncStub:
        return access_pb2_grpc.AccessServiceStub(self.channel("access"))

    def caller_for(self, rpc: Rpc) -> str:
        """The most privileged caller the RPC's policy admits."""
        kinds = {c.name: c for c in caller_kinds()}
        for name in PRIVILEGE_ORDER:
            if name in self.tokens and rpc.rule.admits(kinds[name].principal):
                return name
        return "anonymous"

    def metadata(self, caller: str) -> tuple[tuple[str, str], ...]:
        token = self.tokens[caller]
        return bearer(token) if token else ()

    async def unary(
        self,
        rpc: Rpc,
        request: bytes,
        caller: str,
        timeout: float = 15.0,
        wait_for_quota: bool = True,
    ) -> Outcome:
        """One unary call with raw request bytes. A rate-limited call waits as long
        as the RetryInfo says and goes again, as a well-behaved client does."""
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self.channel(
            rpc.service
        ).unary_unary(rpc.path)
        for _ in range(50):
            try:
                reply = await call(request, metadata=self.metadata(caller), timeout=timeout)
            except grpc.aio.AioRpcError as err:
                delay = retry_delay(err)
                if wait_for_quota and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and delay:
                    self.rate_waits += 1
                    await asyncio.sleep(delay)
                    continue
                return Outcome(err.code(), details=err.details() or "", error=err)
            return Outcome(grpc.StatusCode.OK, reply)
        raise AssertionError(f"{rpc.key}: still rate limited after 50 waits")

    async def row_counts(self, schema: str) -> dict[str, int]:
        tables = await self.db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema
        )
        if not tables:
            return {}
        parts = ", ".join(
            f'(SELECT count(*) FROM "{schema}"."{t["tablename"]}") AS "{t["tablename"]}"'
            for t in tables
        )
        row = await self.db.fetchrow(f"SELECT {parts}")
        return dict(row) if row is not None else {}

    def alive(self, service: str) -> bool:
        return self.suite.processes[service].running


def retry_delay(err: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delay: duration_pb2.Duration = info.retry_delay
            return float(delay.ToNanoseconds()) / 1e9
    return None


async def _database(server_url: str) -> str:
    name = f"venue_hardening_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def device_refs(venue: Venue) -> dict[str, str]:
    """Where a device of each kind stands in the venue (by caller name)."""

    def point(kind: AccessPointKind) -> str:
        return next((p.id for p in venue.access_points if p.kind is kind), "")

    return {
        "device:gate": point(AccessPointKind.PARK_ENTRY),
        "device:ride_scanner": point(AccessPointKind.RIDE_STANDBY),
        "device:reader": venue.readers[0].id if venue.readers else "",
        "device:camera": venue.cameras[0].id if venue.cameras else "",
        "device:point_of_sale": venue.tills[0].id if venue.tills else "",
        "device:door_lock": point(AccessPointKind.HOTEL_DOOR),
        "device:kiosk": point(AccessPointKind.PHOTO_KIOSK),
    }


def venue_ids(venue: Venue, per_kind: int = 6) -> list[str]:
    """A few ids of every kind of thing in the venue, for fuzzed requests."""
    groups: Sequence[Sequence[str]] = [
        [p.id for p in venue.pois],
        [p.id for p in venue.pois if p.is_attraction],
        [a.id for a in venue.access_points],
        [t.id for t in venue.tills],
        [t.merchant for t in venue.tills],
        [r.id for r in venue.readers],
        [c.id for c in venue.cameras],
        [n.id for n in venue.nodes],
        [z.id for z in venue.zones],
        [venue.currency, venue.timezone],
    ]
    return [i for group in groups for i in list(group)[:per_kind]]


async def make_person(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub,
    access: access_pb2_grpc.AccessServiceAsyncStub | None,
    admin: str,
    desk: str,
    currency: str,
) -> Person:
    email = f"h-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery"
    made = await identity.CreateGuest(
        ipb.CreateGuestRequest(
            display_name="Hardy",
            email=email,
            password=password,
            consent=ipb.Consent(
                location_tracking=True, personalized_nudges=True, photo_linking=True
            ),
        )
    )
    token = await identity.IssueToken(
        ipb.IssueTokenRequest(guest_password=ipb.GuestPassword(email=email, password=password))
    )
    uid = f"HB-{uuid.uuid4().hex[:12]}"
    band = await identity.LinkBand(
        ipb.LinkBandRequest(guest_id=made.guest.guest_id, band_uid=uid), metadata=bearer(admin)
    )
    if access is not None:
        await access.TopUp(
            apb.TopUpRequest(
                party_id=made.guest.party_id,
                amount=common_pb2.Money(minor_units=50_000, currency=currency),
                funding_source=apb.FUNDING_SOURCE_CASH,
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=bearer(desk),
        )
    return Person(
        made.guest.guest_id, made.guest.party_id, band.band.band_id, uid, token.access_token
    )


async def make_device(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub, admin: str, kind: int, ref: str
) -> tuple[str, str]:
    made = await identity.RegisterDevice(
        ipb.RegisterDeviceRequest(kind=kind, name=f"hardening-{kind}", venue_ref=ref),  # type: ignore[arg-type]
        metadata=bearer(admin),
    )
    token = await identity.IssueToken(
        ipb.IssueTokenRequest(
            device_secret=ipb.DeviceSecret(device_id=made.device.device_id, secret=made.secret)
        )
    )
    return made.device.device_id, token.access_token


async def make_staff(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub, admin: str, role: int
) -> tuple[str, str]:
    made = await identity.CreateStaff(
        ipb.CreateStaffRequest(display_name="Hardy", role=role),  # type: ignore[arg-type]
        metadata=bearer(admin),
    )
    token = await identity.IssueToken(
        ipb.IssueTokenRequest(
            staff_secret=ipb.StaffSecret(staff_id=made.staff.staff_id, secret=made.secret)
        )
    )
    return made.staff.staff_id, token.access_token


async def callers_for(
    suite: Suite,
    identity: identity_pb2_grpc.IdentityServiceAsyncStub,
    admin: str,
    refs: dict[str, str],
) -> tuple[dict[str, str], dict[str, str]]:
    tokens: dict[str, str] = {"staff:admin": admin}
    device_ids: dict[str, str] = {}
    for caller in caller_kinds():
        principal = caller.principal
        if caller.name == "anonymous":
            tokens[caller.name] = ""
        elif caller.name.startswith("device:"):
            device_id, tokens[caller.name] = await make_device(
                identity, admin, principal.device_kind, refs.get(caller.name, "")
            )
            device_ids[caller.name] = device_id
        elif caller.name.startswith("staff:") and caller.name != "staff:admin":
            _, tokens[caller.name] = await make_staff(identity, admin, principal.staff_role)
        elif caller.name.startswith("service:"):
            name = principal.subject
            reply = await identity.IssueToken(
                ipb.IssueTokenRequest(
                    service_secret=ipb.ServiceSecret(
                        service=name, secret=service_secrets.derive(suite.master, name)
                    )
                )
            )
            tokens[caller.name] = reply.access_token
    return tokens, device_ids


@pytest.fixture(scope="session")
async def hardened(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Hardened]:
    data_dir = tmp_path_factory.mktemp("hardening")
    services = implemented_services()
    suite = Suite(
        data_dir=data_dir,
        services=services,
        ports=auto_ports(services),
        database_url=await _database(database_url),
        venue_file=DEFAULT_VENUE_FILE,
        env={"VENUE_LOG_LEVEL": "WARNING", "VENUE_SHUTDOWN_GRACE": "2"},
    )
    await suite.start(timeout=120)
    assert suite.database_url is not None
    pool = await asyncpg.create_pool(suite.database_url, min_size=1, max_size=3)
    hardened: Hardened | None = None
    try:
        admin = await suite.admin_token()
        nobody = Person("", "", "", "", "")
        hardened = Hardened(suite, pool, admin, {}, {}, nobody, nobody, [])
        identity = hardened.identity()
        access = hardened.access() if "access" in services else None
        venue = load_venue(DEFAULT_VENUE_FILE)
        hardened.refs = device_refs(venue)
        till = hardened.refs["device:point_of_sale"]
        hardened.merchant = next(t.merchant for t in venue.tills if t.id == till)
        tokens, device_ids = await callers_for(suite, identity, admin, hardened.refs)
        hardened.tokens, hardened.device_ids = tokens, device_ids
        currency = venue.currency
        desk = tokens["staff:desk"]
        hardened.me = await make_person(identity, access, admin, desk, currency)
        hardened.other = await make_person(identity, access, admin, desk, currency)
        tokens["guest"] = hardened.me.token
        # The fuzz's own people and devices: ids that exist, free to be broken.
        target = await make_person(identity, access, admin, desk, currency)
        fuzz_device, _ = await make_device(
            identity, admin, common_pb2.DEVICE_KIND_GATE, "fuzz-gate"
        )
        hardened.fuzz_ids = [
            target.guest_id,
            target.party_id,
            target.band_id,
            target.band_uid,
            fuzz_device,
            *venue_ids(venue),
        ]
        yield hardened
    finally:
        if hardened is not None:
            text = json.dumps(hardened.figures, indent=2, sort_keys=True) + "\n"
            targets = [tmp_path_factory.getbasetemp() / "hardening.json"]
            if os.environ.get("VENUE_HARDENING_RESULTS"):
                targets.append(Path(os.environ["VENUE_HARDENING_RESULTS"]))
            for path in targets:
                await asyncio.to_thread(path.write_text, text)
            for channel in hardened.channels.values():
                await channel.close()
        await pool.close()
        await suite.stop()


def callers_named(names: Sequence[str]) -> list[CallerKind]:
    wanted = set(names)
    return [c for c in caller_kinds() if c.name in wanted]
