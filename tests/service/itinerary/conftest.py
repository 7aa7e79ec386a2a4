"""The itinerary service in the test process on a real socket and the session's
real PostgreSQL, beside the real identity service and constructed streams of
queue, location and access events (those services are not merged yet).
Routing is not running: plans are kept unoptimized, as in an outage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest

from services.itinerary.service import DEFINITION
from services.platform.config import Settings
from services.platform.server import RunningService, start
from services.platform.validation import to_timestamp
from services.runner.suite import free_port
from tests.service.conftest import OPS, Guest, Identity
from tests.service.itinerary.producers import Producers
from tests.support.stubs import bearer
from venue.identity.v1 import identity_pb2 as ipb
from venue.itinerary.v1 import itinerary_pb2 as pb
from venue.itinerary.v1 import itinerary_pb2_grpc
from venue.queue.v1 import queue_pb2 as qpb

# Venue time in the tests: a park day, mid-morning, running at wall speed.
VENUE_START = "2026-07-04T10:00:00-04:00"


@dataclass
class Itinerary:
    running: RunningService
    stub: itinerary_pb2_grpc.ItineraryServiceAsyncStub
    producers: Producers
    identity: Identity
    ops_token: str

    @property
    def clock_now(self) -> datetime:
        return self.running.runtime.settings.clock.now()

    async def family(self, *, nudges: bool = True, location: bool = True) -> Guest:
        """A guest (an adult founding their party) with the given consent."""
        return await self.identity.guest(
            f"G{uuid.uuid4().hex[:6]}", personalized_nudges=nudges, location_tracking=location
        )

    async def add_adult(self, founder: Guest, *, nudges: bool = True) -> Guest:
        """A second adult who joins the founder's party by invitation."""
        other = await self.family(nudges=nudges)
        invite = await self.identity.stub.CreatePartyInvite(
            ipb.CreatePartyInviteRequest(party_id=founder.party_id), metadata=bearer(founder.token)
        )
        await self.identity.stub.JoinParty(
            ipb.JoinPartyRequest(invite_code=invite.invite_code), metadata=bearer(other.token)
        )
        token = await self.identity.token(
            ipb.IssueTokenRequest(
                guest_password=ipb.GuestPassword(email=other.email, password=other.password)
            )
        )
        return Guest(other.guest_id, founder.party_id, other.email, other.password, token)

    async def count(self, table: str) -> int:
        return int(await self.identity.db.fetchval(f"SELECT count(*) FROM itinerary.{table}"))

    async def create_plan(self, guest: Guest, *pois: str) -> pb.Plan:
        reply = await self.stub.CreatePlan(
            pb.CreatePlanRequest(
                party_id=guest.party_id,
                wish_list=[pb.WishItem(poi_id=p, priority=pb.WISH_PRIORITY_MUST_DO) for p in pois],
            ),
            metadata=bearer(guest.token),
        )
        return reply.plan


@pytest.fixture(scope="session")
async def itinerary(
    identity: Identity, data_dir: Path, database_url: str
) -> AsyncIterator[Itinerary]:
    producers = Producers()
    await producers.start()
    settings = Settings.from_env(
        "itinerary",
        env={
            "VENUE_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "VENUE_ITINERARY_ADDR": "127.0.0.1:0",
            "VENUE_IDENTITY_ADDR": identity.address,
            "VENUE_QUEUE_ADDR": producers.address,
            "VENUE_LOCATION_ADDR": producers.address,
            "VENUE_ACCESS_ADDR": producers.address,
            # Nothing listens there: routing is "down".
            "VENUE_ROUTING_ADDR": f"127.0.0.1:{free_port()}",
            "VENUE_CLOCK_START": VENUE_START,
            "VENUE_SHUTDOWN_GRACE": "1",
        },
    )
    running = await start(DEFINITION, settings)
    # The consumers start from now: wait until they listen before any test pushes.
    await producers.queue.wait_watched(2)
    await producers.location.wait_watched(1)
    await producers.access.wait_watched(1)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stub = itinerary_pb2_grpc.ItineraryServiceStub(channel)
    _, ops = await identity.staff(OPS)
    yield Itinerary(running, stub, producers, identity, ops)
    await channel.close()
    await running.stop()
    await producers.stop()


def queue_booking(
    guest: Guest,
    attraction: str,
    start: datetime | None,
    *,
    booking_id: str = "",
    status: int = qpb.BOOKING_STATUS_WAITING,
    minutes: int = 60,
    guests: tuple[str, ...] = (),
) -> qpb.Booking:
    """A virtual-queue booking as the queue service describes it."""
    booking = qpb.Booking(
        booking_id=booking_id or str(uuid.uuid4()),
        kind=qpb.BOOKING_KIND_VIRTUAL_QUEUE,
        status=status,  # type: ignore[arg-type]
        attraction_id=attraction,
        party_id=guest.party_id,
        guest_ids=list(guests or (guest.guest_id,)),
        boarding_group=7,
    )
    if start is not None:
        booking.window.start.CopyFrom(to_timestamp(start))
        booking.window.end.CopyFrom(to_timestamp(start + timedelta(minutes=minutes)))
        booking.called_at.CopyFrom(to_timestamp(start))
    return booking


async def call_group(itinerary: Itinerary, booking: qpb.Booking) -> None:
    """The queue service creates the booking, then calls its group now."""
    now = itinerary.clock_now
    await itinerary.producers.queue.push(
        qpb.WatchQueueEventsResponse(booking_created=qpb.BookingCreated(booking=booking)), now
    )
    called = qpb.Booking()
    called.CopyFrom(booking)
    called.status = qpb.BOOKING_STATUS_CALLED
    called.window.start.CopyFrom(to_timestamp(now))
    called.window.end.CopyFrom(to_timestamp(now + timedelta(minutes=60)))
    called.called_at.CopyFrom(to_timestamp(now))
    await itinerary.producers.queue.push(
        qpb.WatchQueueEventsResponse(booking_called=qpb.BookingCalled(booking=called)), now
    )


async def next_event(
    stream: AsyncIterator[pb.SubscribeNudgesResponse], timeout: float = 10.0
) -> pb.SubscribeNudgesResponse:
    async with asyncio.timeout(timeout):
        return await anext(stream)


async def next_nudge(
    stream: AsyncIterator[pb.SubscribeNudgesResponse], timeout: float = 10.0
) -> pb.SubscribeNudgesResponse:
    """The next nudge of a feed, skipping plan updates."""
    async with asyncio.timeout(timeout):
        while True:
            event = await anext(stream)
            if event.WhichOneof("event") == "nudge":
                return event
