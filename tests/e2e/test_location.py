"""Location as real processes: a gateway streams pings, a follower of the event
stream sees the guest move and the zone fill; location is killed and comes
back with its acks, places and stream intact."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from services.platform import service_secrets
from services.runner.suite import Suite, auto_ports
from tests.support.stubs import bearer
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.location.v1 import location_pb2 as pb
from venue.location.v1 import location_pb2_grpc

pytestmark = pytest.mark.e2e

QUEUE_ZONE = "queue.river-expedition-cruise"
QUEUE_READER = "rd.river-expedition-cruise.q1"
LAND_ZONE = "land.jungle-reach"
LAND_READER = "rd.jungle-reach.plaza"


def batch(batch_id: str, uid: str, reader: str, rssi: int = -50) -> pb.IngestPingsRequest:
    return pb.IngestPingsRequest(
        batch=pb.PingBatch(
            batch_id=batch_id,
            band_uids=[uid],
            reader_ids=[reader],
            observed_at_unix_ms=[int(time.time() * 1000)],
            rssi_dbm=[rssi],
        )
    )


async def send(
    stub: location_pb2_grpc.LocationServiceAsyncStub, token: str, *requests: pb.IngestPingsRequest
) -> list[pb.IngestPingsResponse]:
    async def stream() -> AsyncIterator[pb.IngestPingsRequest]:
        for request in requests:
            yield request

    return [ack async for ack in stub.IngestPings(stream(), metadata=bearer(token))]


async def test_pings_to_moves_and_counts_across_a_crash(tmp_path: Path, database_url: str) -> None:
    # A database of its own on the session's server (no second initdb).
    name = f"e2e_loc_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    suite = Suite(
        data_dir=tmp_path / "data",
        database_url=urlunsplit(urlsplit(database_url)._replace(path=f"/{name}")),
        services=["identity", "location"],
        ports=auto_ports(["identity", "location"]),
        log_dir=tmp_path / "logs",
    )
    await suite.start()
    try:
        admin = bearer(await suite.admin_token())
        async with grpc.aio.insecure_channel(suite.addresses["identity"]) as ichannel:
            identity = identity_pb2_grpc.IdentityServiceStub(ichannel)
            guest = (
                await identity.CreateGuest(
                    ipb.CreateGuestRequest(
                        display_name="Ann", consent=ipb.Consent(location_tracking=True)
                    ),
                    metadata=admin,
                )
            ).guest
            uid = f"E2E-{uuid.uuid4().hex[:10]}"
            await identity.LinkBand(
                ipb.LinkBandRequest(guest_id=guest.guest_id, band_uid=uid), metadata=admin
            )
            device = await identity.RegisterDevice(
                ipb.RegisterDeviceRequest(
                    kind=common_pb2.DEVICE_KIND_READER,
                    name="Gateway",
                    venue_ref="lantern-bay-park",
                ),
                metadata=admin,
            )
            gateway = (
                await identity.IssueToken(
                    ipb.IssueTokenRequest(
                        device_secret=ipb.DeviceSecret(
                            device_id=device.device.device_id, secret=device.secret
                        )
                    )
                )
            ).access_token
            staff = await identity.CreateStaff(
                ipb.CreateStaffRequest(display_name="Ops", role=common_pb2.STAFF_ROLE_OPS),
                metadata=admin,
            )
            ops = (
                await identity.IssueToken(
                    ipb.IssueTokenRequest(
                        staff_secret=ipb.StaffSecret(
                            staff_id=staff.staff.staff_id, secret=staff.secret
                        )
                    )
                )
            ).access_token
            master = service_secrets.load_or_create_master(suite.data_dir)
            queue = (
                await identity.IssueToken(
                    ipb.IssueTokenRequest(
                        service_secret=ipb.ServiceSecret(
                            service="queue", secret=service_secrets.derive(master, "queue")
                        )
                    )
                )
            ).access_token

        channel = grpc.aio.insecure_channel(suite.addresses["location"])
        stub = location_pb2_grpc.LocationServiceStub(channel)
        seen: list[pb.WatchLocationEventsResponse] = []

        async def follow() -> None:
            """A consumer like the queue twin: resumes from its last cursor."""
            while True:
                cursor = seen[-1].cursor if seen else ""
                start = common_pb2.StreamCursor(cursor=cursor, from_now=not cursor)
                try:
                    async for event in stub.WatchLocationEvents(
                        pb.WatchLocationEventsRequest(
                            start=start, zone_ids=[QUEUE_ZONE, LAND_ZONE]
                        ),
                        metadata=bearer(queue),
                    ):
                        seen.append(event)
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.5)

        async def until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
            deadline = time.monotonic() + timeout
            while not check():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                await asyncio.sleep(0.05)

        def moved_to(zone: str) -> bool:
            return any(e.guest_zone_changed.to_zone_id == zone for e in seen)

        deadline = time.monotonic() + 20
        while True:
            (ack,) = await send(stub, gateway, batch(f"e2e-{time.monotonic()}", uid, QUEUE_READER))
            if not ack.rejected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert ack.outcome == pb.PING_BATCH_OUTCOME_ACCEPTED and not ack.rejected
        first = batch("e2e-first", uid, QUEUE_READER, -45)
        (ack,) = await send(stub, gateway, first)
        await until(lambda: moved_to(QUEUE_ZONE), "the move into the queue")
        move = next(e.guest_zone_changed for e in seen if e.guest_zone_changed.guest_id)
        assert (move.guest_id, move.party_id) == (guest.guest_id, guest.party_id)
        # The event names the publishing tick's trace, for consumers to link to.
        carrier = next(e for e in seen if e.guest_zone_changed.guest_id)
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", carrier.traceparent)
        await until(lambda: _count(seen, QUEUE_ZONE) == 1, "the queue's count")

        await suite.restart("location", kill=True)
        (again,) = await send(stub, gateway, first)
        assert again.outcome == pb.PING_BATCH_OUTCOME_DUPLICATE
        where = await stub.GetGuestLocation(
            pb.GetGuestLocationRequest(guest_id=guest.guest_id), metadata=bearer(ops)
        )
        assert where.location.status == pb.LOCATION_STATUS_KNOWN
        assert where.location.place.zone_id == QUEUE_ZONE
        (ack,) = await send(stub, gateway, batch("e2e-after", uid, LAND_READER, -40))
        assert ack.outcome == pb.PING_BATCH_OUTCOME_ACCEPTED
        await until(lambda: moved_to(LAND_ZONE), "the move after the crash")
        moves = [e.guest_zone_changed for e in seen if e.guest_zone_changed.guest_id]
        # Restored after the crash: the move starts from the queue, not from nowhere.
        assert [(m.from_zone_id, m.to_zone_id) for m in moves] == [
            ("", QUEUE_ZONE),
            (QUEUE_ZONE, LAND_ZONE),
        ]
        cursors = [e.cursor for e in seen]
        assert len(cursors) == len(set(cursors))
        follower.cancel()
        await channel.close()
    finally:
        await suite.stop()


def _count(seen: list[pb.WatchLocationEventsResponse], zone: str) -> int:
    counts = [e.occupancy_changed.count for e in seen if e.occupancy_changed.zone_id == zone]
    return counts[-1] if counts else -1
