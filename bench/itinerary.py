"""Itinerary benchmark (issue 8): a nudge reaches a subscribed app within one
second of the event that triggered it (p99).

identity and itinerary run as real processes on the embedded PostgreSQL, with
auth, tracing (exported by OTLP to a sink) and logging on, as deployed. The
queue service's stream is served from this process (the constructed stream of
the service tests: the queue service is not merged yet), so the time each
trigger is pushed is known exactly.

GUESTS guests, each the adult of a party of their own, half of the parties with
a day plan, each with one app session subscribed to its nudge feed. Virtual-
queue groups are called at an offered rate (open loop; a steady 5 a second,
then a burst of 20 a second): a booking is created,
then called; for a party with a plan the booking joins the plan and the engine
sends the boarding call; for one without, the call goes out directly. The
figure is the time from the call's event on the queue's stream to the nudge's
arrival at the app, over every call. Checks: every call delivered exactly once
to its guest, none to anybody else.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import harness
from bench.foundation import floor
from bench.procs import helper, otlp_env
from services.platform import embedded_pg
from services.platform.clock import VenueClock
from services.platform.validation import to_timestamp
from services.runner.suite import Suite, auto_ports, free_port
from tests.service.itinerary.producers import Producers
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.itinerary.v1 import itinerary_pb2 as pb
from venue.itinerary.v1 import itinerary_pb2_grpc
from venue.queue.v1 import queue_pb2 as qpb

GUESTS = 200
# Calls per second: a steady day (the bar is held against it) and a burst (a
# whole boarding group called at once, a few parties a second for several
# seconds), reported for what it shows.
STEADY = 5.0
BURST = 20.0
ATTRACTIONS = ("rocket-coaster", "nebula-mountain", "plunge-tower", "star-voyager")
Metadata = tuple[tuple[str, str], ...]


def _bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


class App:
    """One guest's phone: its open subscription, and when each nudge arrived."""

    def __init__(self, stub: itinerary_pb2_grpc.ItineraryServiceAsyncStub, guest: Any) -> None:
        self.guest_id: str = guest[0]
        self.party_id: str = guest[1]
        self.token: Metadata = _bearer(guest[2])
        self.arrived: dict[str, float] = {}
        self.foreign = 0
        self.repeats = 0
        self._call = stub.SubscribeNudges(
            pb.SubscribeNudgesRequest(
                start=common_pb2.StreamCursor(from_now=True), app_session_id="bench"
            ),
            metadata=self.token,
        )
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self._call:
            if event.WhichOneof("event") != "nudge":
                continue
            nudge = event.nudge
            if nudge.guest_id != self.guest_id:
                self.foreign += 1
            if nudge.nudge_id in self.arrived:
                self.repeats += 1
            self.arrived[nudge.nudge_id] = time.perf_counter()

    def close(self) -> None:
        self._call.cancel()


def _booking(app: App, attraction: str, clock: VenueClock) -> tuple[qpb.Booking, qpb.Booking]:
    now = clock.now()
    booking = qpb.Booking(
        booking_id=str(uuid.uuid4()),
        kind=qpb.BOOKING_KIND_VIRTUAL_QUEUE,
        status=qpb.BOOKING_STATUS_WAITING,
        attraction_id=attraction,
        party_id=app.party_id,
        guest_ids=[app.guest_id],
        boarding_group=7,
    )
    called = qpb.Booking()
    called.CopyFrom(booking)
    called.status = qpb.BOOKING_STATUS_CALLED
    called.window.start.CopyFrom(to_timestamp(now))
    called.window.end.CopyFrom(to_timestamp(now + timedelta(minutes=60)))
    called.called_at.CopyFrom(to_timestamp(now))
    return booking, called


async def measure(work: Path, database_url: str, sink: int, seconds: float) -> dict[str, Any]:
    producers = Producers()
    await producers.start()
    clock = VenueClock.real_time()
    services = ["identity", "itinerary"]
    env = {
        **otlp_env(sink),
        "VENUE_QUEUE_ADDR": producers.address,
        "VENUE_LOCATION_ADDR": producers.address,
        "VENUE_ACCESS_ADDR": producers.address,
        # Routing is not part of this path: plans stay unoptimized.
        "VENUE_ROUTING_ADDR": f"127.0.0.1:{free_port()}",
    }
    suite = Suite(
        data_dir=work,
        services=services,
        database_url=database_url,
        ports=auto_ports(services),
        env=env,
        clock=clock,
    )
    await suite.start()
    apps: list[App] = []
    try:
        async with (
            suite.channel("identity") as ichannel,
            suite.channel("itinerary") as channel,
        ):
            identity: identity_pb2_grpc.IdentityServiceAsyncStub = (
                identity_pb2_grpc.IdentityServiceStub(ichannel)
            )
            stub: itinerary_pb2_grpc.ItineraryServiceAsyncStub = (
                itinerary_pb2_grpc.ItineraryServiceStub(channel)
            )
            await producers.queue.wait_watched(1, timeout=60)
            guests, planned = await _families(identity, stub)
            apps = [App(stub, g) for g in guests]
            await asyncio.sleep(2.0)  # identity's stream and the subscriptions settle
            # (call index, seconds from the call's event to the app), measured
            # from the push itself: the open loop's own latency counts from the
            # scheduled start.
            steady = await _deliveries(apps, producers, clock, STEADY, seconds)
            burst = await _deliveries(apps, producers, clock, BURST, seconds)
            await asyncio.sleep(1.0)
            delivered = sum(len(a.arrived) for a in apps)
            return {
                "guests": GUESTS,
                "parties_with_a_plan": planned,
                "delivery_steady": steady[0].as_dict(),
                "delivery_burst": burst[0].as_dict(),
                "calls": steady[1] + burst[1],
                "delivered": delivered,
                "foreign": sum(a.foreign for a in apps),
                "repeats": sum(a.repeats for a in apps),
            }
    finally:
        for app in apps:
            app.close()
        await suite.stop()
        await producers.stop()


async def _deliveries(
    apps: list[App], producers: Producers, clock: VenueClock, rate: float, seconds: float
) -> tuple[harness.Latency, int]:
    """Groups called at `rate` a second (open loop) for `seconds` after a
    second's warm-up: the time from each call's event on the queue's stream to
    its nudge at the app (measured from the push itself: the open loop's own
    latency counts from the scheduled start), and how many calls were made."""
    pushed: list[tuple[int, float]] = []
    busy: set[str] = set()

    async def call(i: int) -> None:
        # One call in flight per guest, so the next nudge to arrive is its own.
        app = apps[i % len(apps)]
        if app.guest_id in busy:
            raise RuntimeError("guest busy")
        busy.add(app.guest_id)
        booking, called = _booking(app, ATTRACTIONS[i % len(ATTRACTIONS)], clock)
        before = len(app.arrived)
        now = clock.now()
        await producers.queue.push(
            qpb.WatchQueueEventsResponse(booking_created=qpb.BookingCreated(booking=booking)), now
        )
        sent = time.perf_counter()
        await producers.queue.push(
            qpb.WatchQueueEventsResponse(booking_called=qpb.BookingCalled(booking=called)), now
        )
        try:
            async with asyncio.timeout(10):
                while len(app.arrived) == before:
                    await asyncio.sleep(0.002)
        finally:
            busy.discard(app.guest_id)
        pushed.append((i, max(app.arrived.values()) - sent))

    driven = await harness.open_loop(call, rate, max(seconds, 10), warmup=1.0)
    warm = int(rate)
    latency = harness.summarize(
        [d for i, d in pushed if i >= warm],
        driven.errors,
        offered_per_second=rate,
        achieved_per_second=driven.achieved_per_second,
    )
    return latency, len(pushed) + driven.errors


async def _families(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub,
    stub: itinerary_pb2_grpc.ItineraryServiceAsyncStub,
) -> tuple[list[Any], int]:
    """GUESTS guests in parties of their own; every other party makes a plan."""
    guests = []
    for start in range(0, GUESTS, 50):
        guests += await asyncio.gather(
            *(_guest(identity, i) for i in range(start, min(GUESTS, start + 50)))
        )
    planned = 0
    for i, guest in enumerate(guests):
        if i % 2 == 0:
            await stub.CreatePlan(
                pb.CreatePlanRequest(
                    party_id=guest[1],
                    wish_list=[
                        pb.WishItem(poi_id="royal-carousel", priority=pb.WISH_PRIORITY_MUST_DO)
                    ],
                ),
                metadata=_bearer(guest[2]),
            )
            planned += 1
    return guests, planned


async def _guest(identity: identity_pb2_grpc.IdentityServiceAsyncStub, i: int) -> Any:
    email = f"bench-{i}-{uuid.uuid4().hex[:6]}@example.com"
    password = "correct horse battery"
    reply = await identity.CreateGuest(
        ipb.CreateGuestRequest(
            display_name=f"Bench {i}",
            email=email,
            password=password,
            consent=ipb.Consent(personalized_nudges=True),
        )
    )
    token = await identity.IssueToken(
        ipb.IssueTokenRequest(guest_password=ipb.GuestPassword(email=email, password=password))
    )
    return reply.guest.guest_id, reply.guest.party_id, token.access_token


async def run(work: Path, seconds: float) -> dict[str, Any]:
    database_url = await asyncio.to_thread(embedded_pg.ensure_running, work)
    try:
        with helper("bench.otlp_sink") as sink:
            floor_figures = await floor(seconds)
            figures = await measure(work, database_url, sink, seconds)
    finally:
        await asyncio.to_thread(embedded_pg.stop, work)
    delivery = figures["delivery_steady"]
    return {
        "floor_bare_echo": floor_figures,
        **figures,
        "checks": {
            "delivery_p99_ms_steady": delivery["p99_ms"],
            "bar_delivery_p99_under_1_s": delivery["p99_ms"] < 1000.0,
            "delivery_p99_ms_burst": figures["delivery_burst"]["p99_ms"],
            "every_call_delivered_once": figures["delivered"] == figures["calls"]
            and delivery["errors"] == 0
            and figures["delivery_burst"]["errors"] == 0,
            "nothing_shown_twice": figures["repeats"] == 0,
            "nothing_to_the_wrong_guest": figures["foreign"] == 0,
        },
    }
