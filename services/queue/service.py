"""Queue's set-up: the venue's lines, the twin rebuilt from today's facts, the
feeds it follows (access, location, identity), the booking desk with its pass
keeper, and the clock that publishes what time changes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.platform.events import StreamConsumer
from services.platform.server import Runtime, ServiceDefinition
from services.queue.access_client import AccessClient
from services.queue.bookdesk import BookingDesk
from services.queue.feeds import (
    AccessHandler,
    Batch,
    LocationHandler,
    access_feed,
    access_handler,
    identity_feed,
    location_feed,
    location_handler,
)
from services.queue.identity_client import IdentityClient
from services.queue.live import LiveTwin
from services.queue.parties import PartyDirectory
from services.queue.passes import PassKeeper
from services.queue.policy import POLICY
from services.queue.schedule import VenueCalendar
from services.queue.servicer import QueueServicer
from services.queue.store import QueueStore
from services.queue.telemetry import observe_waits
from services.queue.twin import Twin
from services.queue.venue_lines import venue_lines
from services.venue_model import load_venue
from venue.access.v1 import access_pb2 as apb
from venue.identity.v1 import identity_pb2 as ipb
from venue.location.v1 import location_pb2 as lpb
from venue.queue.v1 import queue_pb2_grpc

log = logging.getLogger("venue.queue")

# Wall seconds between ticks of the twin's clock, and of the booking desk's.
TICK = 0.25
DESK_TICK = 1.0


async def run_clock(live: LiveTwin, desk: BookingDesk) -> None:
    """Time moves the waits (a show's next start comes closer), opens and closes
    attractions, calls virtual-queue groups and ends windows."""
    last_desk = 0.0
    while True:
        try:
            await live.tick()
            if time.monotonic() - last_desk >= DESK_TICK:
                last_desk = time.monotonic()
                await desk.tick()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("clock tick failed", exc_info=True)
        await asyncio.sleep(TICK)


@dataclass
class QueueApp:
    """The service's parts, as set-up wires them."""

    live: LiveTwin
    desk: BookingDesk
    store: QueueStore
    passes: PassKeeper
    parties: PartyDirectory
    handle_access: AccessHandler
    handle_location: LocationHandler
    access_feed: StreamConsumer[Batch[apb.WatchAccessEventsResponse]]
    location_feed: StreamConsumer[Batch[lpb.WatchLocationEventsResponse]]
    identity_feed: StreamConsumer[ipb.WatchIdentityEventsResponse]
    servicer: QueueServicer


async def build(runtime: Runtime) -> QueueApp:
    settings = runtime.settings
    venue = await asyncio.to_thread(load_venue, settings.venue_file)
    lines = venue_lines(venue)
    twin = Twin(lines.specs, lines.hours, VenueCalendar(lines.timezone))
    store = QueueStore(runtime.pool)
    live = LiveTwin(twin, lines, store, runtime.hub, settings.clock)
    access = AccessClient(runtime.clients.channel("access"))
    passes = PassKeeper(store, access)
    parties = PartyDirectory(IdentityClient(runtime.clients.channel("identity")).party_of)
    desk = BookingDesk(store, live, lines, parties, access, passes)
    observe_waits(live.posted_gauge, live.forecast_gauge)
    restored = await live.restore()
    log.info("twin restored", extra={"facts": restored, "attractions": len(lines.specs)})
    clock = settings.clock
    channels = runtime.clients
    handle_access = access_handler(live, desk)
    handle_location = location_handler(live)
    zones = sorted(lines.zones)
    return QueueApp(
        live,
        desk,
        store,
        passes,
        parties,
        handle_access,
        handle_location,
        access_feed(channels.channel("access"), runtime.pool, handle_access, clock),
        location_feed(channels.channel("location"), runtime.pool, zones, handle_location, clock),
        identity_feed(channels.channel("identity"), parties, desk, clock),
        QueueServicer(live, desk, store, runtime.hub),
    )


def start(runtime: Runtime, app: QueueApp) -> Callable[[grpc.aio.Server], None]:
    runtime.spawn(app.access_feed.run(), "feed-access")
    runtime.spawn(app.location_feed.run(), "feed-location")
    runtime.spawn(app.identity_feed.run(), "feed-identity")
    runtime.spawn(app.passes.run(), "passes")
    runtime.spawn(run_clock(app.live, app.desk), "clock")

    def register(server: grpc.aio.Server) -> None:
        queue_pb2_grpc.add_QueueServiceServicer_to_server(app.servicer, server)

    return register


async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
    return start(runtime, await build(runtime))


DEFINITION = ServiceDefinition(
    name="queue",
    proto_service="venue.queue.v1.QueueService",
    policy=POLICY,
    setup=setup,
    migrations=Path(__file__).parent / "migrations",
)
