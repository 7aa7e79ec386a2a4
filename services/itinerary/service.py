"""Itinerary's set-up: the venue's facts, the store, the identity directory, the
live venue, the routing client, the plan book, the nudger, the feeds, and the
streams it follows.

One replica runs the consumers and the nudger (they keep per-guest budgets in
memory); the plan cache and the feeds are per process, backed by the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc

from services.itinerary import facts as facts_module
from services.itinerary.consumers import Consumers
from services.itinerary.directory import Directory
from services.itinerary.feed import Feeds
from services.itinerary.live import LiveVenue
from services.itinerary.nudger import Nudger
from services.itinerary.plans import PlanBook
from services.itinerary.policy import POLICY
from services.itinerary.router import Router
from services.itinerary.servicer import ItineraryServicer
from services.itinerary.store import ItineraryStore
from services.platform.server import Runtime, ServiceDefinition
from services.venue_model import load_venue
from venue.itinerary.v1 import itinerary_pb2_grpc


async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
    venue = await asyncio.to_thread(load_venue, runtime.settings.venue_file)
    facts = facts_module.from_venue(venue)
    del venue
    clock = runtime.settings.clock
    store = ItineraryStore(runtime.pool)
    directory = Directory()
    live = LiveVenue()
    router = Router(lambda: runtime.clients.channel("routing"), facts)
    plans = PlanBook(store, facts, router, directory, clock, runtime.hub)
    nudger = Nudger(store, plans, facts, directory, live, router, clock, runtime.hub)
    feeds = Feeds(runtime.hub, runtime.pool)
    consumers = Consumers(
        runtime.clients, runtime.pool, store, facts, directory, live, plans, nudger, clock
    )

    await plans.load_day(plans.today())
    await nudger.load()
    for consumer in consumers.all():
        runtime.spawn(consumer.run(), consumer.name)
    runtime.spawn(consumers.snapshot(), "itinerary-snapshot")
    runtime.spawn(consumers.keep_cursors(), "itinerary-cursors")
    runtime.spawn(plans.run_replans(), "itinerary-replans")
    runtime.spawn(nudger.run(), "itinerary-nudger")
    runtime.on_close(consumers.flush)

    servicer = ItineraryServicer(
        store,
        plans,
        nudger,
        feeds,
        facts,
        directory,
        router,
        runtime.clients,
        clock,
        runtime.hub,
    )

    def register(server: grpc.aio.Server) -> None:
        itinerary_pb2_grpc.add_ItineraryServiceServicer_to_server(servicer, server)

    return register


DEFINITION = ServiceDefinition(
    name="itinerary",
    proto_service="venue.itinerary.v1.ItineraryService",
    policy=POLICY,
    setup=setup,
    migrations=Path(__file__).parent / "migrations",
)
