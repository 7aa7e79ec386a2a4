"""Queue benchmark (issue 7's speed bar): a wait change reaches a `Watch`
subscriber within one second of the boarding tap that caused it (p99).

identity, access and queue run as real processes on the embedded PostgreSQL,
with auth, tracing (exported by OTLP to a sink) and logging on, as deployed,
on a venue clock at 11:00 on a park day (every ride open). Guests wear bands
and tap real ride scanners through access; the queue follows access's stream
and publishes on its own; a subscriber (as the routing service) watches the
probe ride's wait changes.

- probe: a line of 20 tapped-in guests at one ride. Each probe sends the
  boarding taps of the six guests at its head at once; the queue must
  publish a shorter line (it publishes when the line moves by three or a
  tenth). Latency counts from the moment the six taps were sent to the
  moment the subscriber reads the change, so it includes the taps' own
  round trips through access. The six then tap in again at the back, and
  that change is awaited before the next probe.
- background: all the while, an open loop of ride taps (standby and boarding)
  at other rides, at a park's rate, whose latency is the floor the change
  stands on: a wait change cannot reach anyone before its tap is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc

from bench import harness
from bench.procs import helper, otlp_env
from services.platform import embedded_pg, service_secrets
from services.platform.clock import VenueClock
from services.platform.config import DEFAULT_VENUE_FILE
from services.platform.validation import to_timestamp
from services.runner.suite import Suite, auto_ports
from services.venue_model import load_venue
from services.venue_model.venue import Venue
from venue.access.v1 import access_pb2 as apb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.queue.v1 import queue_pb2 as pb
from venue.queue.v1 import queue_pb2_grpc

# A change is published when the line moves by max(3, a tenth of it): a
# burst of 6 from a line of 20 is always published, whatever was last.
PROBE_LINE = 20
BURST = 6
BACKGROUND_GUESTS = 400
BACKGROUND_RIDES = 8
BACKGROUND_RATE = 50.0  # ride taps per second
MISS_AFTER = 5.0
Metadata = tuple[tuple[str, str], ...]


def _bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


class Scanners:
    """Ride scanners (standby and boarding) of the rides the bench uses."""

    def __init__(self) -> None:
        self.standby: dict[str, tuple[str, Metadata]] = {}
        self.boarding: dict[str, tuple[str, Metadata]] = {}

    async def add(
        self,
        identity: identity_pb2_grpc.IdentityServiceAsyncStub,
        admin: Metadata,
        venue: Venue,
        ride: str,
    ) -> None:
        queue = venue.queue_of(ride)
        for point, table in (
            (queue.standby_access_point, self.standby),
            (queue.boarding_access_point, self.boarding),
        ):
            device = await identity.RegisterDevice(
                ipb.RegisterDeviceRequest(
                    kind=common_pb2.DEVICE_KIND_RIDE_SCANNER, name=f"bench {point}", venue_ref=point
                ),
                metadata=admin,
            )
            token = await identity.IssueToken(
                ipb.IssueTokenRequest(
                    device_secret=ipb.DeviceSecret(
                        device_id=device.device.device_id, secret=device.secret
                    )
                )
            )
            table[ride] = (point, _bearer(token.access_token))


async def _bands(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub, admin: Metadata, count: int
) -> list[str]:
    run = uuid.uuid4().hex[:6]
    uids: list[str] = []
    for start in range(0, count, 50):
        batch = range(start, min(start + 50, count))
        guests = await asyncio.gather(
            *(
                identity.CreateGuest(
                    ipb.CreateGuestRequest(display_name=f"Bench {i}"), metadata=admin
                )
                for i in batch
            )
        )
        names = [f"QBENCH-{run}-{i:05d}" for i in batch]
        await asyncio.gather(
            *(
                identity.LinkBand(
                    ipb.LinkBandRequest(guest_id=g.guest.guest_id, band_uid=uid), metadata=admin
                )
                for g, uid in zip(guests, names, strict=True)
            )
        )
        uids += names
    return uids


class Tapper:
    def __init__(self, access: access_pb2_grpc.AccessServiceAsyncStub, clock: VenueClock) -> None:
        self.access = access
        self.clock = clock
        self.denied = 0

    async def tap(self, scanner: tuple[str, Metadata], uid: str) -> None:
        point, metadata = scanner
        reply = await self.access.Tap(
            apb.TapRequest(
                access_point_id=point,
                band_uid=uid,
                tapped_at=to_timestamp(self.clock.now()),
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=metadata,
        )
        if reply.decision != apb.TAP_DECISION_ALLOW:
            self.denied += 1


class Watcher:
    """The probe ride's wait changes as the subscriber reads them."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.changes: asyncio.Queue[tuple[float, pb.WaitChanged]] = asyncio.Queue()

    async def run(self) -> None:
        async for event in self.call:
            self.changes.put_nowait((time.perf_counter(), event.wait_changed))

    async def until(self, shorter: int | None, longer: int | None, timeout: float) -> float | None:
        """When a change showing the line below `shorter` or above `longer`
        arrived (None: never)."""
        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            try:
                at, change = await asyncio.wait_for(self.changes.get(), left)
            except TimeoutError:
                return None
            length = change.standby_line_length
            if shorter is not None and length < shorter:
                return at
            if longer is not None and length > longer:
                return at

    def drain(self) -> None:
        while not self.changes.empty():
            self.changes.get_nowait()


class Probe:
    """The probe ride's line and the bursts of boarding taps that shorten it."""

    def __init__(self, ride: str, uids: list[str], scanners: Scanners, tapper: Tapper) -> None:
        self.ride = ride
        self.line = deque(uids)
        self.scanners = scanners
        self.tapper = tapper
        self.latencies: list[float] = []
        self.after_reply: list[float] = []
        self.misses = 0

    async def fill(self, watcher: Watcher) -> None:
        for uid in self.line:  # oldest first
            await self.tapper.tap(self.scanners.standby[self.ride], uid)
        await watcher.until(None, len(self.line) - 3, 10.0)

    async def run(self, watcher: Watcher, stop_at: float) -> None:
        while time.perf_counter() < stop_at:
            before = len(self.line)
            boarding = [self.line.popleft() for _ in range(BURST)]
            watcher.drain()
            sent = time.perf_counter()
            await asyncio.gather(
                *(self.tapper.tap(self.scanners.boarding[self.ride], uid) for uid in boarding)
            )
            replied = time.perf_counter()
            # Nothing else taps at this ride: a shorter line is these boardings.
            arrived = await watcher.until(before, None, MISS_AFTER)
            if arrived is None:
                self.misses += 1
                self.latencies.append(MISS_AFTER)
            else:
                self.latencies.append(arrived - sent)
                # The queue's own part: from access's last reply (the taps
                # committed) to the subscriber; it may read the change first.
                self.after_reply.append(max(arrived - replied, 0.0))
            for uid in boarding:
                await self.tapper.tap(self.scanners.standby[self.ride], uid)
                self.line.append(uid)
            await watcher.until(None, before - BURST, MISS_AFTER)
            await asyncio.sleep(0.2)


class Background:
    """Ride taps at other rides, standby or boarding, by a crowd of guests."""

    def __init__(self, rides: list[str], uids: list[str], scanners: Scanners, tapper: Tapper):
        self.rides = rides
        self.crowd = deque(uids)
        self.scanners = scanners
        self.tapper = tapper
        self.rng = random.Random(7)

    async def __call__(self, _: int) -> None:
        uid = self.crowd[0]
        self.crowd.rotate(-1)
        ride = self.rng.choice(self.rides)
        table = self.scanners.standby if self.rng.random() < 0.5 else self.scanners.boarding
        await self.tapper.tap(table[ride], uid)


async def _service_token(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub, suite: Suite, name: str
) -> str:
    reply = await identity.IssueToken(
        ipb.IssueTokenRequest(
            service_secret=ipb.ServiceSecret(
                service=name, secret=service_secrets.derive(suite.master, name)
            )
        )
    )
    return str(reply.access_token)


def _open_clock(venue: Venue) -> VenueClock:
    """11:00 today at the venue, at 1x: every ride is open for the run."""
    zone = ZoneInfo(venue.timezone)
    today = datetime.now(UTC).astimezone(zone).date()
    eleven = datetime(today.year, today.month, today.day, 11, 0, tzinfo=zone)
    return VenueClock(eleven, time.time())


async def _exercise(
    suite: Suite, venue: Venue, clock: VenueClock, seconds: float
) -> tuple[Probe, harness.Latency, Tapper]:
    admin = _bearer(await suite.admin_token())
    async with (
        suite.channel("identity") as ichannel,
        suite.channel("access") as achannel,
        suite.channel("queue") as qchannel,
    ):
        identity: identity_pb2_grpc.IdentityServiceAsyncStub = (
            identity_pb2_grpc.IdentityServiceStub(ichannel)
        )
        access: access_pb2_grpc.AccessServiceAsyncStub = access_pb2_grpc.AccessServiceStub(achannel)
        queue: queue_pb2_grpc.QueueServiceAsyncStub = queue_pb2_grpc.QueueServiceStub(qchannel)
        rides = [
            a.id for a in venue.attractions() if a.queue is not None and not a.queue.min_height_cm
        ]
        probe_ride, others = rides[0], rides[1 : 1 + BACKGROUND_RIDES]
        scanners = Scanners()
        for ride in [probe_ride, *others]:
            await scanners.add(identity, admin, venue, ride)
        uids = await _bands(identity, admin, PROBE_LINE + BACKGROUND_GUESTS)
        tapper = Tapper(access, clock)
        probe = Probe(probe_ride, uids[:PROBE_LINE], scanners, tapper)
        routing = await _service_token(identity, suite, "routing")
        watcher = Watcher(
            queue.WatchQueueEvents(
                pb.WatchQueueEventsRequest(
                    start=common_pb2.StreamCursor(from_now=True),
                    kinds=[pb.QUEUE_EVENT_KIND_WAIT_CHANGED],
                    attraction_ids=[probe_ride],
                ),
                metadata=_bearer(routing),
            )
        )
        reading = asyncio.create_task(watcher.run())
        await probe.fill(watcher)
        probe_seconds = max(seconds * 4, 30.0)
        stop_at = time.perf_counter() + 1.0 + probe_seconds

        async def probing() -> None:
            await asyncio.sleep(1.0)  # the background loop's warm-up
            await probe.run(watcher, stop_at)

        task = asyncio.create_task(probing())
        background = Background(others, uids[PROBE_LINE:], scanners, tapper)
        taps = await harness.open_loop(background, BACKGROUND_RATE, probe_seconds)
        await task
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await reading
        return probe, taps, tapper


async def measure(work: Path, database_url: str, sink: int, seconds: float) -> dict[str, Any]:
    venue = await asyncio.to_thread(load_venue, DEFAULT_VENUE_FILE)
    clock = _open_clock(venue)
    services = ["identity", "access", "queue"]
    suite = Suite(
        data_dir=work,
        services=services,
        database_url=database_url,
        clock=clock,
        ports=auto_ports(services),
        env=otlp_env(sink),
    )
    await suite.start()
    try:
        probe, taps, tapper = await _exercise(suite, venue, clock, seconds)
    finally:
        await suite.stop()
    change = harness.summarize(probe.latencies, probe.misses)
    return {
        "probe_ride": probe.ride,
        "probe_line": PROBE_LINE,
        "burst": BURST,
        "wait_change_after_boarding": change.as_dict(),
        "wait_change_after_taps_replied": harness.summarize(probe.after_reply, 0).as_dict(),
        "background_taps": taps.as_dict(),
        "denied_taps": tapper.denied,
    }


async def run(work: Path, seconds: float) -> dict[str, Any]:
    database_url = await asyncio.to_thread(embedded_pg.ensure_running, work)
    try:
        with helper("bench.otlp_sink") as sink:
            figures = await measure(work, database_url, sink, seconds)
    finally:
        await asyncio.to_thread(embedded_pg.stop, work)
    change = figures["wait_change_after_boarding"]
    taps = figures["background_taps"]
    return {
        **figures,
        "checks": {
            "wait_change_p99_ms": change["p99_ms"],
            "wait_change_after_taps_replied_p99_ms": figures["wait_change_after_taps_replied"][
                "p99_ms"
            ],
            # The floor the change stands on: a ride tap's own round trip under
            # the same background load, in the same run.
            "background_tap_p99_ms": taps["p99_ms"],
            "bar_wait_change_p99_under_1_s": change["p99_ms"] < 1000.0,
            "every_probe_seen": change["errors"] == 0,
            "no_denied_taps": figures["denied_taps"] == 0,
            "no_tap_errors": taps["errors"] == 0,
        },
    }
