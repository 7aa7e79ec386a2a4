"""Routing against the real services, as real processes on the park: identity,
access, location, queue and routing.

- A reader device on the lodge's first floor reports more guests than the floor
  holds; routing hears location's occupancy stream and its crowd-aware route
  through that floor costs more than the plain one, and only there.
- Ops staff set an attraction DOWN through the queue; routing hears the queue's
  stream: the optimizer skips it as not operating and "nearest ride" leaves it out,
  while the other rides keep the queue's own forecasts and posted waits.
- "Nearest restroom" and "nearest cold drink" answer with everything up.

Every change is polled for with a deadline: the streams are asynchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from services.platform import service_secrets
from services.platform.clients import open_channel
from services.platform.clock import VenueClock
from services.platform.config import ROOT
from services.platform.validation import to_timestamp
from services.routing.crowding import CrowdBoard
from services.routing.follow import snapshot_occupancy, snapshot_queue
from services.routing.waits import QueueBook
from services.runner.suite import Suite, auto_ports
from services.venue_model import Venue, load_venue
from tests.support.people import device, staff
from tests.support.stubs import bearer
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.location.v1 import location_pb2 as lpb
from venue.location.v1 import location_pb2_grpc
from venue.queue.v1 import queue_pb2 as qpb
from venue.queue.v1 import queue_pb2_grpc
from venue.routing.v1 import routing_pb2 as pb
from venue.routing.v1 import routing_pb2_grpc

pytestmark = pytest.mark.e2e

PARK = ROOT / "venues" / "lantern-bay-park.yaml"
SERVICES = ["identity", "access", "location", "queue", "routing"]
# The lodge: every way from the lobby to the second floor crosses the first.
FLOOR_ONE = "hotel.lantern-bay-lodge.f1"
LOBBY = "n.lantern-bay-lodge.lobby"
FAR_HALL = "n.lantern-bay-lodge.f2.hall4"
HUB = "n.hub.ring.00"
# Three rides a few minutes' walk from the hub; the second one breaks down.
RIDES = ["rocket-coaster", "nebula-mountain", "royal-carousel"]
BROKEN = "nebula-mountain"
# Generous: the suite shares the machine with the rest of `make test`; a poll
# that succeeds returns at once.
DEADLINE_S = 60.0

T = TypeVar("T")


@functools.cache
def park() -> Venue:
    return load_venue(PARK)


def late_morning_in_the_park() -> VenueClock:
    """11:00 today in the park's time zone: every ride open, hours of day left."""
    zone = park().tzinfo
    today = datetime.now(zone).date()
    start = datetime(today.year, today.month, today.day, 11, 0, tzinfo=zone)
    return VenueClock(start, time.time())


async def until(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    explain: Callable[[], Awaitable[str]] | None = None,
) -> T:
    """The first truthy answer of `probe`, polled until a deadline; on timeout
    the failure carries what `explain` found."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() >= deadline:
            why = await explain() if explain is not None else ""
            pytest.fail(f"timed out waiting for {what}\n{why}")
        await asyncio.sleep(0.2)


async def _why_unread(live: Live, uids: list[str], ack: lpb.IngestPingsResponse | None) -> str:
    """Why location still rejects some rows: the reasons; whether identity holds
    each rejected band's band_linked event, where it lies against the event
    horizon (pg_snapshot_xmin: events at or above it are not served yet) and
    whether identity's stream serves it; and the cluster's transactions that
    hold the horizon back."""
    lines: list[str] = []
    if ack is None:
        return "no ack"
    rejected = {r.row_index: lpb.PingRejectReason.Name(r.reason) for r in ack.rejected}
    lines.append(
        f"last ack: accepted {ack.accepted_count}, rejected {dict(Counter(rejected.values()))}"
    )
    conn = await asyncpg.connect(live.database_url)
    try:
        horizon = await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        lines.append(f"event horizon (xmin) now: {horizon}")
        rows = await conn.fetch(
            "SELECT txid::text AS txid, seq, payload FROM identity.events "
            "WHERE kind = 'band_linked'"
        )
        by_uid = {}
        for row in rows:
            event = ipb.WatchIdentityEventsResponse.FromString(row["payload"])
            by_uid[event.band_linked.band_uid] = (row["txid"], row["seq"])
        lines.append(f"identity's band_linked events: {len(rows)}")
        for index, reason in sorted(rejected.items()):
            uid = uids[index]
            lines.append(
                f"row {index} {uid}: {reason}; band_linked event (txid, seq): {by_uid.get(uid)}"
            )
        old = await conn.fetch(
            "SELECT pid, datname, state, backend_xid::text AS xid, backend_xmin::text AS xmin, "
            "extract(epoch FROM now() - xact_start)::int AS xact_s, "
            "extract(epoch FROM now() - state_change)::int AS state_s, "
            "wait_event_type, wait_event, left(query, 160) AS query FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND (backend_xid IS NOT NULL "
            "OR xact_start < now() - interval '5 seconds') ORDER BY xact_start"
        )
    finally:
        await conn.close()
    lines.append(f"transactions holding an xid or older than 5 s: {len(old)}")
    lines.extend(f"  {dict(row)}" for row in old)
    served = await _served_bands(live)
    for index in sorted(rejected):
        lines.append(
            f"row {index}: identity's stream serves its band_linked: {uids[index] in served}"
        )
    return "\n".join(lines)


async def _served_bands(live: Live) -> set[str]:
    """The band UIDs identity's stream serves from its start, read until quiet."""
    served: set[str] = set()
    async with as_routing(live, "identity") as channel:
        stub: identity_pb2_grpc.IdentityServiceAsyncStub = identity_pb2_grpc.IdentityServiceStub(
            channel
        )
        call = stub.WatchIdentityEvents(ipb.WatchIdentityEventsRequest())
        with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
            while True:
                event = await asyncio.wait_for(call.read(), 3.0)
                if not isinstance(event, ipb.WatchIdentityEventsResponse):
                    break
                if event.WhichOneof("event") == "band_linked":
                    served.add(event.band_linked.band_uid)
        call.cancel()
    return served


@dataclass
class Live:
    suite: Suite
    clock: VenueClock
    identity: identity_pb2_grpc.IdentityServiceAsyncStub
    location: location_pb2_grpc.LocationServiceAsyncStub
    queue: queue_pb2_grpc.QueueServiceAsyncStub
    routing: routing_pb2_grpc.RoutingServiceAsyncStub
    admin: str
    # A guest's app: routing's ordinary caller.
    app: tuple[tuple[str, str], ...]
    # The suite's own database, for saying why a poll timed out.
    database_url: str


@pytest.fixture(scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> AsyncIterator[Live]:
    # A database of its own: the queue's statuses and location's counts start empty.
    name = f"e2e_routing_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    clock = late_morning_in_the_park()
    own_url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    suite = Suite(
        data_dir=tmp_path_factory.mktemp("routing-live") / "data",
        services=SERVICES,
        database_url=own_url,
        ports=auto_ports(SERVICES),
        venue_file=PARK,
        clock=clock,
    )
    await suite.start()
    channels = {n: grpc.aio.insecure_channel(suite.addresses[n]) for n in SERVICES}
    try:
        identity: identity_pb2_grpc.IdentityServiceAsyncStub = (
            identity_pb2_grpc.IdentityServiceStub(channels["identity"])
        )
        admin = await suite.admin_token()
        email = f"rita-{uuid.uuid4().hex[:8]}@example.com"
        await identity.CreateGuest(
            ipb.CreateGuestRequest(display_name="Rita", email=email, password="correct horse 42")
        )
        app = await identity.IssueToken(
            ipb.IssueTokenRequest(
                guest_password=ipb.GuestPassword(email=email, password="correct horse 42")
            )
        )
        yield Live(
            suite,
            clock,
            identity,
            location_pb2_grpc.LocationServiceStub(channels["location"]),
            queue_pb2_grpc.QueueServiceStub(channels["queue"]),
            routing_pb2_grpc.RoutingServiceStub(channels["routing"]),
            admin,
            bearer(app.access_token),
            own_url,
        )
    finally:
        for channel in channels.values():
            await channel.close()
        await suite.stop()


@contextlib.asynccontextmanager
async def as_routing(live: Live, service: str) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to `service` carrying routing's own service token."""
    secret = service_secrets.derive(live.suite.master, "routing")
    reply = await live.identity.IssueToken(
        ipb.IssueTokenRequest(service_secret=ipb.ServiceSecret(service="routing", secret=secret))
    )

    async def token() -> str:
        return str(reply.access_token)

    channel = open_channel(live.suite.addresses[service], token, traced=False)
    try:
        yield channel
    finally:
        await channel.close()


async def _crowd(live: Live, zone_id: str, guests: int) -> None:
    """`guests` banded guests, all read by a reader device of `zone_id` now."""
    venue = park()
    readers = [r.id for r in venue.readers if r.zone == zone_id]
    admin = bearer(live.admin)
    gate = asyncio.Semaphore(8)

    async def banded(i: int) -> str:
        uid = f"LIVE-{uuid.uuid4().hex[:12]}"
        async with gate:
            made = await live.identity.CreateGuest(
                ipb.CreateGuestRequest(display_name=f"Guest {i}"), metadata=admin
            )
            await live.identity.LinkBand(
                ipb.LinkBandRequest(guest_id=made.guest.guest_id, band_uid=uid), metadata=admin
            )
        return uid

    uids = list(await asyncio.gather(*(banded(i) for i in range(guests))))
    reader = await device(live.identity, live.admin, common_pb2.DEVICE_KIND_READER, zone_id)
    last: list[lpb.IngestPingsResponse] = []

    async def all_read() -> bool:
        """One batch of every band; location learns bands from identity's stream,
        so rows of bands it has not heard of yet are rejected: send again."""
        now_ms = int(live.clock.now().timestamp() * 1000)
        batch = lpb.PingBatch(
            batch_id=uuid.uuid4().hex,
            band_uids=uids,
            reader_ids=[readers[i % len(readers)] for i in range(len(uids))],
            observed_at_unix_ms=[now_ms] * len(uids),
            rssi_dbm=[-50] * len(uids),
        )

        async def one() -> AsyncIterator[lpb.IngestPingsRequest]:
            yield lpb.IngestPingsRequest(batch=batch)

        acks = [a async for a in live.location.IngestPings(one(), metadata=reader)]
        assert acks[0].outcome == lpb.PING_BATCH_OUTCOME_ACCEPTED, acks[0]
        last[:] = acks[:1]
        return acks[0].accepted_count == len(uids)

    await until(
        all_read,
        "location to know every band",
        lambda: _why_unread(live, uids, last[0] if last else None),
    )


async def test_a_floor_past_its_capacity_costs_more_in_crowd_aware_routes(live: Live) -> None:
    venue = park()
    capacity = venue.zone(FLOOR_ONE).capacity

    async def route(origin: str, destination: str, avoid_crowds: bool) -> pb.Route:
        reply = await live.routing.GetRoute(
            pb.GetRouteRequest(
                origin=pb.Endpoint(node_id=origin),
                destination=pb.Endpoint(node_id=destination),
                walking=pb.WalkingOptions(avoid_crowds=avoid_crowds),
            ),
            metadata=live.app,
        )
        return reply.route

    plain = await route(LOBBY, FAR_HALL, avoid_crowds=False)
    assert any(venue.node(n).zone == FLOOR_ONE for n in plain.node_ids)
    before = await route(LOBBY, FAR_HALL, avoid_crowds=True)
    assert before.crowd_delay.ToTimedelta() == timedelta(0)

    await _crowd(live, FLOOR_ONE, capacity + 1)

    async def counted() -> lpb.ZoneOccupancy | None:
        reply = await live.location.GetZoneOccupancy(
            lpb.GetZoneOccupancyRequest(zone_id=FLOOR_ONE), metadata=live.app
        )
        return reply.occupancy if reply.occupancy.count > capacity else None

    occupancy = await until(counted, "location to count the floor past its capacity")
    assert occupancy.density > 1.0

    async def crowded() -> pb.Route | None:
        found = await route(LOBBY, FAR_HALL, avoid_crowds=True)
        return found if found.crowd_delay.ToTimedelta() > timedelta(0) else None

    aware = await until(crowded, "routing to cost the crowded floor")
    # A routing process starting now would read the same from location's snapshot.
    board = CrowdBoard(venue)
    async with as_routing(live, "location") as channel:
        await snapshot_occupancy(location_pb2_grpc.LocationServiceStub(channel), board)
    assert (board.density(FLOOR_ONE) or 0.0) > 1.0
    # Only the walking time grows: the same walk, slower through the crowd.
    assert aware.walking_time.ToTimedelta() > plain.walking_time.ToTimedelta()
    assert aware.walking_time.ToTimedelta() - aware.crowd_delay.ToTimedelta() == (
        plain.walking_time.ToTimedelta()
    )
    assert any(venue.node(n).zone == FLOOR_ONE for n in aware.node_ids)
    # The delay is the crowded floor's: steps elsewhere keep their free pace.
    assert sum(s.distance_m for s in aware.steps) == pytest.approx(plain.distance_m)
    for step in aware.steps:
        ends = {venue.node(step.source_node_id).zone, venue.node(step.target_node_id).zone}
        if FLOOR_ONE not in ends:
            free = next(
                p
                for p in plain.steps
                if (p.source_node_id, p.target_node_id)
                == (step.source_node_id, step.target_node_id)
            )
            assert step.walking_time == free.walking_time, step
    # Plain routes ignore the crowd, and a walk far from the lodge is not slowed.
    assert (await route(LOBBY, FAR_HALL, avoid_crowds=False)).walking_time == plain.walking_time
    elsewhere = await route(HUB, venue.poi(RIDES[0]).node, avoid_crowds=True)
    assert elsewhere.crowd_delay.ToTimedelta() == timedelta(0)


async def _plan(live: Live) -> pb.PlanItineraryResponse:
    start = live.clock.now()
    return await live.routing.PlanItinerary(
        pb.PlanItineraryRequest(
            start=pb.Endpoint(node_id=HUB),
            start_at=to_timestamp(start),
            leave_at=to_timestamp(start + timedelta(hours=3)),
            items=[
                pb.PlanItem(
                    item_id=ride,
                    poi_id=ride,
                    kind=pb.PLAN_ITEM_KIND_ATTRACTION,
                    priority=pb.PLAN_ITEM_PRIORITY_MUST_DO,
                )
                for ride in RIDES
            ],
        ),
        metadata=live.app,
    )


async def _nearest_rides(live: Live) -> pb.FindNearestResponse:
    return await live.routing.FindNearest(
        pb.FindNearestRequest(
            origin=pb.Endpoint(node_id=HUB), kind=pb.POI_KIND_ATTRACTION, max_results=10
        ),
        metadata=live.app,
    )


async def test_a_ride_set_down_in_the_queue_leaves_the_plan_and_the_nearest_rides(
    live: Live,
) -> None:
    async def planned_from_forecasts() -> pb.PlanItineraryResponse | None:
        plan = await _plan(live)
        sources = {s.wait_source for s in plan.stops}
        return plan if sources == {pb.WAIT_SOURCE_FORECAST} else None

    # Routing has the queue's forecasts: every ride is planned with its forecast wait.
    plan = await until(planned_from_forecasts, "routing to plan with the queue's forecasts")
    assert sorted(s.poi_id for s in plan.stops) == sorted(RIDES) and not plan.skipped
    nearest = await _nearest_rides(live)
    assert BROKEN in [r.point_of_interest.poi_id for r in nearest.results]
    # Posted waits of the queue's tip board come with the rides.
    assert all(r.HasField("posted_wait") for r in nearest.results)

    ops = bearer(await staff(live.identity, live.admin, common_pb2.STAFF_ROLE_OPS, "Ops"))
    set_down = await live.queue.SetAttractionStatus(
        qpb.SetAttractionStatusRequest(
            attraction_id=BROKEN,
            status=qpb.ATTRACTION_STATUS_DOWN,
            reason=qpb.STATUS_REASON_TECHNICAL,
            # Back only after the plan's leave time.
            expected_reopen_at=to_timestamp(live.clock.now() + timedelta(hours=5)),
        ),
        metadata=ops,
    )
    assert set_down.state.status == qpb.ATTRACTION_STATUS_DOWN

    async def skipped() -> pb.PlanItineraryResponse | None:
        plan = await _plan(live)
        return plan if plan.skipped else None

    plan = await until(skipped, "routing to hear the ride is down")
    assert [(s.poi_id, s.reason) for s in plan.skipped] == [(BROKEN, pb.SKIP_REASON_NOT_OPERATING)]
    assert sorted(s.poi_id for s in plan.stops) == sorted(r for r in RIDES if r != BROKEN)
    assert {s.wait_source for s in plan.stops} == {pb.WAIT_SOURCE_FORECAST}
    nearest = await _nearest_rides(live)
    ids = [r.point_of_interest.poi_id for r in nearest.results]
    assert BROKEN not in ids and len(ids) == 10

    # A routing process starting now learns the breakdown from the queue's
    # snapshot (the tip board, then the ride's own state for its reopening time).
    book = QueueBook()
    async with as_routing(live, "queue") as channel:
        await snapshot_queue(queue_pb2_grpc.QueueServiceStub(channel), book)
    now = live.clock.now().timestamp()
    assert not book.operating_at(BROKEN, now)
    assert book.operating_at(BROKEN, now + 5 * 3600 + 60)
    assert all(book.operating_at(ride, now) for ride in RIDES if ride != BROKEN)

    # Back early: the ride is planned again.
    await live.queue.SetAttractionStatus(
        qpb.SetAttractionStatusRequest(attraction_id=BROKEN, status=qpb.ATTRACTION_STATUS_OPEN),
        metadata=ops,
    )

    async def replanned() -> pb.PlanItineraryResponse | None:
        plan = await _plan(live)
        return plan if not plan.skipped else None

    plan = await until(replanned, "routing to hear the ride is back")
    assert sorted(s.poi_id for s in plan.stops) == sorted(RIDES)


async def test_nearest_open_points_of_interest_with_the_services_up(live: Live) -> None:
    venue = park()
    restrooms = await live.routing.FindNearest(
        pb.FindNearestRequest(origin=pb.Endpoint(node_id=HUB), kind=pb.POI_KIND_RESTROOM),
        metadata=live.app,
    )
    assert restrooms.results[0].point_of_interest.poi_id == "hub-restrooms"
    times = [r.walking_time.ToTimedelta() for r in restrooms.results]
    assert times == sorted(times) and len(times) == 5

    drinks = await live.routing.FindNearest(
        pb.FindNearestRequest(origin=pb.Endpoint(node_id=HUB), tags=["cold_drink"], max_results=50),
        metadata=live.app,
    )
    assert drinks.results
    for near in drinks.results:
        assert "cold_drink" in near.point_of_interest.tags
        # Open now (venue time), by the venue definition's hours.
        now = live.clock.now().timestamp()
        assert any(
            p.start.seconds <= now < p.end.seconds for p in near.point_of_interest.open_periods
        )
    late = await live.routing.FindNearest(
        pb.FindNearestRequest(
            origin=pb.Endpoint(node_id=HUB),
            tags=["cold_drink"],
            max_results=50,
            # Long after closing: nothing open.
            open_at=to_timestamp(live.clock.now() + timedelta(hours=14)),
        ),
        metadata=live.app,
    )
    assert not late.results
    assert {p.id for p in venue.pois_with_tag("cold_drink")} >= {
        r.point_of_interest.poi_id for r in drinks.results
    }


async def test_routing_refuses_a_credential_identity_revoked(live: Live) -> None:
    made = await live.identity.CreateStaff(
        ipb.CreateStaffRequest(display_name="Temp", role=common_pb2.STAFF_ROLE_OPS),
        metadata=bearer(live.admin),
    )
    token = await live.identity.IssueToken(
        ipb.IssueTokenRequest(
            staff_secret=ipb.StaffSecret(staff_id=made.staff.staff_id, secret=made.secret)
        )
    )
    temp = bearer(token.access_token)
    await live.routing.GetVenue(pb.GetVenueRequest(), metadata=temp)
    await live.identity.RevokeStaff(
        ipb.RevokeStaffRequest(staff_id=made.staff.staff_id), metadata=bearer(live.admin)
    )

    async def refused() -> bool:
        try:
            await live.routing.GetVenue(pb.GetVenueRequest(), metadata=temp)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.details()
            return True
        return False

    # Routing follows identity's stream of revocations like every service.
    await until(refused, "routing to refuse the revoked token")
