"""Access benchmarks (issue 3: taps and charges), against the bare echo floor
measured in the same run.

identity and access run as real processes on the embedded PostgreSQL, with auth,
tracing (exported by OTLP to a sink) and logging on, exactly as deployed. A
thousand guests, each in a party of their own, wear bands, hold a ticket for
today and have money in their wallets.

- taps: a park's mix (three ride taps, at standby entrances and boarding points,
  for each gate tap; every guest alternates entry and exit, so each gate tap is
  allowed and changes the guest's presence): throughput at 32 in flight, and
  latency at an offered 300 taps/s (open loop);
- charges at the venue's tills (below the PIN threshold): throughput at 32 in
  flight, and latency at an offered 100 charges/s (open loop).

The platform's own echo (every interceptor, auth and tracing, no database) is
measured in the same run too, to show how much of the floor any service on the
platform can reach at all.

Every allowed tap and approved charge is committed (synchronous_commit on)
before its reply: after the run, each reply's tap or charge is looked up in the
database, and the checks say whether all were there.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bench import harness
from bench.foundation import floor, platform_echo
from bench.procs import helper, otlp_env, with_cpu
from services.platform import embedded_pg
from services.platform.config import DEFAULT_VENUE_FILE
from services.platform.validation import to_timestamp
from services.runner.suite import Suite, auto_ports
from services.venue_model import AccessPointKind, load_venue
from services.venue_model.venue import Venue
from venue.access.v1 import access_pb2 as pb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc

GUESTS = 1000
RIDE_POINTS = 20
Metadata = tuple[tuple[str, str], ...]


def _bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def _device(
    stub: identity_pb2_grpc.IdentityServiceAsyncStub, admin: Metadata, kind: int, ref: str
) -> Metadata:
    device = await stub.RegisterDevice(
        ipb.RegisterDeviceRequest(kind=kind, name=f"bench {ref}", venue_ref=ref),  # type: ignore[arg-type]
        metadata=admin,
    )
    token = await stub.IssueToken(
        ipb.IssueTokenRequest(
            device_secret=ipb.DeviceSecret(device_id=device.device.device_id, secret=device.secret)
        )
    )
    return _bearer(token.access_token)


class World:
    """Guests with bands, tickets and money, and the devices that tap and charge."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.uids: list[str] = []
        self.gates_in: list[tuple[str, Metadata]] = []
        self.gates_out: list[tuple[str, Metadata]] = []
        self.rides: list[tuple[str, Metadata]] = []
        self.tills: list[tuple[str, str, Metadata]] = []

    async def build(
        self,
        identity: identity_pb2_grpc.IdentityServiceAsyncStub,
        access: access_pb2_grpc.AccessServiceAsyncStub,
        admin: Metadata,
    ) -> None:
        desk_staff = await identity.CreateStaff(
            ipb.CreateStaffRequest(display_name="Bench desk", role=common_pb2.STAFF_ROLE_DESK),
            metadata=admin,
        )
        desk = _bearer(
            (
                await identity.IssueToken(
                    ipb.IssueTokenRequest(
                        staff_secret=ipb.StaffSecret(
                            staff_id=desk_staff.staff.staff_id, secret=desk_staff.secret
                        )
                    )
                )
            ).access_token
        )
        today = datetime.now(UTC).astimezone(ZoneInfo(self.venue.timezone)).date()
        dates = [
            common_pb2.VenueDate(year=d.year, month=d.month, day=d.day)
            for d in (today - timedelta(days=1), today, today + timedelta(days=1))
        ]
        for start in range(0, GUESTS, 50):
            guests = await asyncio.gather(
                *(
                    identity.CreateGuest(
                        ipb.CreateGuestRequest(display_name=f"Bench {i}"), metadata=admin
                    )
                    for i in range(start, start + 50)
                )
            )
            batch = [f"BENCH-{start + i:06d}" for i in range(50)]
            pairs = list(zip(guests, batch, strict=True))
            await asyncio.gather(
                *(
                    identity.LinkBand(
                        ipb.LinkBandRequest(guest_id=g.guest.guest_id, band_uid=uid),
                        metadata=admin,
                    )
                    for g, uid in pairs
                )
            )
            await asyncio.gather(
                *(
                    access.CreateEntitlement(
                        pb.CreateEntitlementRequest(
                            guest_id=g.guest.guest_id, park_ticket=pb.ParkTicket(valid_dates=dates)
                        ),
                        metadata=desk,
                    )
                    for g, _ in pairs
                )
            )
            await asyncio.gather(
                *(
                    access.TopUp(
                        pb.TopUpRequest(
                            party_id=g.guest.party_id,
                            amount=common_pb2.Money(minor_units=1_000_000, currency="USD"),
                            funding_source=pb.FUNDING_SOURCE_CARD,
                            idempotency_key=uuid.uuid4().hex,
                        ),
                        metadata=desk,
                    )
                    for g, _ in pairs
                )
            )
            self.uids += batch
        for ap in self.venue.access_points:
            if ap.kind is AccessPointKind.PARK_ENTRY:
                self.gates_in.append(
                    (ap.id, await _device(identity, admin, common_pb2.DEVICE_KIND_GATE, ap.id))
                )
            elif ap.kind is AccessPointKind.PARK_EXIT:
                self.gates_out.append(
                    (ap.id, await _device(identity, admin, common_pb2.DEVICE_KIND_GATE, ap.id))
                )
            elif (
                ap.kind in (AccessPointKind.RIDE_STANDBY, AccessPointKind.RIDE_BOARDING)
                and len(self.rides) < RIDE_POINTS
                and not self.venue.queue_of(ap.attraction or "").min_height_cm
            ):
                self.rides.append(
                    (
                        ap.id,
                        await _device(identity, admin, common_pb2.DEVICE_KIND_RIDE_SCANNER, ap.id),
                    )
                )
        for till in self.venue.tills[:20]:
            self.tills.append(
                (
                    till.id,
                    till.merchant,
                    await _device(identity, admin, common_pb2.DEVICE_KIND_POINT_OF_SALE, till.id),
                )
            )


class Taps:
    """A park's mix of taps; each gate tap alternates its guest between entry
    and exit, with no two taps of one guest at a gate in flight at once."""

    def __init__(self, world: World, access: access_pb2_grpc.AccessServiceAsyncStub) -> None:
        self.world = world
        self.access = access
        self.rng = random.Random(11)
        self.idle = collections.deque(world.uids)
        self.inside: set[str] = set()
        self.allowed: list[str] = []
        self.denied = 0

    async def __call__(self, i: int) -> None:
        world = self.world
        if i % 4 == 0 and self.idle:
            uid = self.idle.popleft()
            leaving = uid in self.inside
            point, metadata = self.rng.choice(world.gates_out if leaving else world.gates_in)
            try:
                reply = await self._tap(point, metadata, uid)
                if reply.decision == pb.TAP_DECISION_ALLOW:
                    (self.inside.discard if leaving else self.inside.add)(uid)
            finally:
                self.idle.append(uid)
        else:
            point, metadata = self.rng.choice(world.rides)
            reply = await self._tap(point, metadata, self.rng.choice(world.uids))
        if reply.decision == pb.TAP_DECISION_ALLOW:
            self.allowed.append(reply.tap_id)
        else:
            self.denied += 1

    async def _tap(self, point: str, metadata: Metadata, uid: str) -> pb.TapResponse:
        return await self.access.Tap(
            pb.TapRequest(
                access_point_id=point,
                band_uid=uid,
                tapped_at=to_timestamp(datetime.now(UTC)),
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=metadata,
        )


class Charges:
    def __init__(self, world: World, access: access_pb2_grpc.AccessServiceAsyncStub) -> None:
        self.world = world
        self.access = access
        self.rng = random.Random(13)
        self.approved: list[str] = []
        self.declined = 0

    async def __call__(self, i: int) -> None:
        _, merchant, metadata = self.rng.choice(self.world.tills)
        reply = await self.access.Charge(
            pb.ChargeRequest(
                merchant_id=merchant,
                band_uid=self.rng.choice(self.world.uids),
                items=[
                    pb.LineItem(
                        sku="bench",
                        description="Bench item",
                        quantity=1,
                        unit_price=common_pb2.Money(minor_units=450, currency="USD"),
                    )
                ],
                amount=common_pb2.Money(minor_units=450, currency="USD"),
                charged_at=to_timestamp(datetime.now(UTC)),
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=metadata,
        )
        if reply.result == pb.CHARGE_RESULT_APPROVED:
            self.approved.append(reply.charge_id)
        else:
            self.declined += 1


async def _committed(database_url: str, table: str, column: str, ids: list[str]) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM access.{table} WHERE {column} = ANY($1::uuid[])", ids
            )
        )
    finally:
        await conn.close()


async def _durability_settings(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            name: str(await conn.fetchval(f"SELECT current_setting('{name}')"))
            for name in ("synchronous_commit", "fsync")
        }
    finally:
        await conn.close()


async def _settled(database_url: str, timeout: float = 120.0) -> float:
    """Wait until access's stream consumers stop advancing: building the world
    leaves thousands of identity events for them to apply, and measuring taps
    while they catch up measures the catching up. Returns the seconds waited."""
    conn = await asyncpg.connect(database_url)
    started = time.monotonic()
    try:
        last = None
        while time.monotonic() - started < timeout:
            now = await conn.fetch("SELECT consumer, cursor FROM access.stream_cursors ORDER BY 1")
            if now == last:
                break
            last = now
            await asyncio.sleep(1.0)
        return round(time.monotonic() - started, 1)
    finally:
        await conn.close()


async def _postgres_pids(database_url: str) -> list[int]:
    """The database's server processes (backends of the services' pools and
    its background writers), for the CPU a call costs the database."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
        return [int(r["pid"]) for r in rows]
    finally:
        await conn.close()


async def measure(work: Path, database_url: str, sink: int, seconds: float) -> dict[str, Any]:
    venue = await asyncio.to_thread(load_venue, DEFAULT_VENUE_FILE)
    services = ["identity", "access"]
    suite = Suite(
        data_dir=work,
        services=services,
        database_url=database_url,
        ports=auto_ports(services),
        env=otlp_env(sink),
    )
    await suite.start()
    try:
        admin = _bearer(await suite.admin_token())
        async with (
            suite.channel("identity") as ichannel,
            suite.channel("access") as achannel,
        ):
            identity: identity_pb2_grpc.IdentityServiceAsyncStub = (
                identity_pb2_grpc.IdentityServiceStub(ichannel)
            )
            access: access_pb2_grpc.AccessServiceAsyncStub = access_pb2_grpc.AccessServiceStub(
                achannel
            )
            world = World(venue)
            await world.build(identity, access, admin)
            # Let the band map and the consumers catch up before measuring.
            await asyncio.sleep(1.0)
            settled_after = await _settled(database_url)
            groups = {
                "access": [suite.processes["access"].process.pid],
                "identity": [suite.processes["identity"].process.pid],
                "database": await _postgres_pids(database_url),
            }

            async def cpu(measurement: Any) -> dict[str, Any]:
                figures, per_call = await with_cpu(groups, measurement, harness.calls_of)
                return {**figures.as_dict(), **per_call}

            taps = Taps(world, access)
            tap_closed = await cpu(harness.closed_loop(taps, 32, seconds))
            tap_open = await cpu(harness.open_loop(taps, 300, max(seconds, 10)))
            charges = Charges(world, access)
            charge_closed = await cpu(harness.closed_loop(charges, 32, seconds))
            charge_open = await cpu(harness.open_loop(charges, 100, max(seconds, 10)))
        committed_taps = await _committed(database_url, "taps", "tap_id", taps.allowed)
        committed_charges = await _committed(database_url, "charges", "charge_id", charges.approved)
        return {
            "guests": GUESTS,
            "consumers_settled_after_s": settled_after,
            "taps": {
                "closed_32": tap_closed,
                "open_300": tap_open,
                "allowed": len(taps.allowed),
                "denied": taps.denied,
                "allowed_found_committed": committed_taps,
            },
            "charges": {
                "closed_32": charge_closed,
                "open_100": charge_open,
                "approved": len(charges.approved),
                "declined": charges.declined,
                "approved_found_committed": committed_charges,
            },
            "database": await _durability_settings(database_url),
        }
    finally:
        await suite.stop()


async def run(work: Path, seconds: float) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    database_url = await asyncio.to_thread(embedded_pg.ensure_running, work)
    try:
        with helper("bench.otlp_sink") as sink:
            floor_figures = await floor(seconds)
            platform = await platform_echo(work, database_url, sink, seconds)
            figures = await measure(work, database_url, sink, seconds)
    finally:
        await asyncio.to_thread(embedded_pg.stop, work)
    f32 = floor_figures["closed_32"]["per_second"]
    p32 = platform["closed_32"]["per_second"]
    taps, charges = figures["taps"], figures["charges"]
    t32 = taps["closed_32"]["per_second"]
    c32 = charges["closed_32"]["per_second"]
    durable = figures["database"] == {"synchronous_commit": "on", "fsync": "on"}
    return {
        "floor_bare_echo": floor_figures,
        "platform_echo": platform,
        **figures,
        "checks": {
            # For context: the platform's own echo (interceptors, auth, tracing,
            # no database) against the same floor, in the same run.
            "platform_echo_32_vs_floor_32": round(p32 / f32, 3),
            "taps_32_vs_platform_echo_32": round(t32 / p32, 3),
            "charges_32_vs_platform_echo_32": round(c32 / p32, 3),
            "taps_32_vs_floor_32": round(t32 / f32, 3),
            "bar_taps_at_least_0.4_of_floor": t32 / f32 >= 0.4,
            "taps_p99_ms_at_300_per_s": taps["open_300"]["p99_ms"],
            "bar_taps_p99_under_10_ms": taps["open_300"]["p99_ms"] < 10.0,
            "charges_32_vs_floor_32": round(c32 / f32, 3),
            "bar_charges_at_least_0.3_of_floor": c32 / f32 >= 0.3,
            "charges_p99_ms_at_100_per_s": charges["open_100"]["p99_ms"],
            "bar_charges_p99_under_20_ms": charges["open_100"]["p99_ms"] < 20.0,
            "no_errors": not any(
                f["errors"]
                for f in (
                    taps["closed_32"],
                    taps["open_300"],
                    charges["closed_32"],
                    charges["open_100"],
                )
            ),
            "every_allowed_tap_committed": taps["allowed_found_committed"] == taps["allowed"],
            "every_approved_charge_committed": charges["approved_found_committed"]
            == charges["approved"],
            "commits_durable": durable,
            # CPU per call (access service, database) at 32 in flight: less
            # sensitive to the machine's load than calls per second.
            "floor_cpu_us_per_call_32": floor_figures["closed_32"]["server_cpu_us_per_call"],
            "tap_cpu_us_per_call_32_access_database": [
                taps["closed_32"]["access_cpu_us_per_call"],
                taps["closed_32"]["database_cpu_us_per_call"],
            ],
            "charge_cpu_us_per_call_32_access_database": [
                charges["closed_32"]["access_cpu_us_per_call"],
                charges["closed_32"]["database_cpu_us_per_call"],
            ],
            "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
    }
