"""Photo's set-up: the venue's cameras and kiosks, the store, the link engine
(rebuilt from the store), its feeds from access and identity, the upkeep job,
and the servicer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.photo.bands import Bands
from services.photo.catalog import Catalog, PhotoConfig
from services.photo.consumers import access_consumer, identity_consumer
from services.photo.linker import Linker
from services.photo.linking import LinkEngine
from services.photo.payments import Payments
from services.photo.policy import POLICY
from services.photo.purchases import Purchases
from services.photo.servicer import PhotoServicer
from services.photo.store import PhotoStore
from services.photo.telemetry import PhotoMetrics
from services.photo.upkeep import run_upkeep
from services.platform.server import Runtime, ServiceDefinition
from services.venue_model import load_venue
from venue.photo.v1 import photo_pb2_grpc


@dataclass
class PhotoParts:
    """The running service's parts (tests drive the consumers' handlers with them)."""

    catalog: Catalog
    store: PhotoStore
    linker: Linker
    purchases: Purchases
    servicer: PhotoServicer

    def register(self, server: grpc.aio.Server) -> None:
        photo_pb2_grpc.add_PhotoServiceServicer_to_server(self.servicer, server)


async def build(runtime: Runtime) -> PhotoParts:
    settings = runtime.settings
    venue = load_venue(settings.venue_file)
    catalog = Catalog(venue, PhotoConfig.from_env(settings.extra))
    store = PhotoStore(runtime.pool, venue.timezone)
    telemetry = PhotoMetrics()
    linker = Linker(
        LinkEngine(catalog.ride_cameras, catalog.rules),
        store,
        settings.clock,
        runtime.hub,
        telemetry,
    )
    await linker.restore()
    payments = Payments(runtime.clients.channel("access"), catalog.config.merchant_id)
    purchases = Purchases(store, payments, catalog, settings.clock, runtime.hub)

    runtime.spawn(identity_consumer(runtime, store, linker).run(), "photo-identity")
    # Followed even by a venue without ride cameras (a mall): the suite's
    # consumers of access's stream behave alike, and its taps cost nothing here.
    runtime.spawn(access_consumer(runtime, store, linker, catalog).run(), "photo-access")
    if catalog.ride_cameras:
        runtime.spawn(linker.run(), "photo-linker")
    runtime.spawn(run_upkeep(store, purchases, catalog, settings.clock, telemetry), "photo-upkeep")

    servicer = PhotoServicer(
        store,
        catalog,
        linker,
        Bands(runtime.clients.channel("identity")),
        purchases,
        runtime.hub,
        settings.clock,
        telemetry,
    )
    return PhotoParts(catalog, store, linker, purchases, servicer)


async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
    return (await build(runtime)).register


DEFINITION = ServiceDefinition(
    name="photo",
    proto_service="venue.photo.v1.PhotoService",
    policy=POLICY,
    setup=setup,
    migrations=Path(__file__).parent / "migrations",
)
