"""Access's set-up: the venue's access points and tills, the store, the band map
fed by identity's stream, the in-memory state of access points, and the two hot
paths (taps and charges)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.access import consumers
from services.access.bands import BandDirectory
from services.access.identity_client import IdentityClient
from services.access.ledger import FUNDING_ACCOUNTS, merchant_account
from services.access.payments import Cashier
from services.access.policy import POLICY
from services.access.records import AccessPointState
from services.access.servicer import AccessServicer
from services.access.store import AccessStore
from services.access.taps import PointStates, TapDesk
from services.access.venue_index import SERVICE_MERCHANTS, VenueIndex
from services.platform.events import StoredEvent
from services.platform.server import Runtime, ServiceDefinition, own_service_secret
from services.venue_model import load_venue
from venue.access.v1 import access_pb2 as pb
from venue.access.v1 import access_pb2_grpc

MERCHANT, EXTERNAL = 2, 3


def pin_key(secret: str) -> bytes:
    """The key of PIN hashes: derived from the service's own secret, never stored."""
    return hmac.new(secret.encode(), b"venue.access.pin", hashlib.sha256).digest()


@dataclass(frozen=True)
class Parts:
    """The service's parts, for its set-up (and for tests that look inside)."""

    venue: VenueIndex
    store: AccessStore
    directory: BandDirectory
    states: PointStates
    servicer: AccessServicer


async def build(runtime: Runtime) -> Parts:
    settings = runtime.settings
    venue = VenueIndex(await asyncio.to_thread(load_venue, settings.venue_file))
    store = AccessStore(runtime.pool, settings.schema)
    merchants = sorted(venue.merchants | set(SERVICE_MERCHANTS.values()))
    await store.ensure_accounts(
        [(merchant_account(m), MERCHANT) for m in merchants]
        + [(account, EXTERNAL) for account in FUNDING_ACCOUNTS.values()],
        venue.currency,
    )

    identity = IdentityClient(runtime.clients.channel("identity"))
    directory = BandDirectory(identity.resolve_band, settings.clock.wall_at)
    runtime.spawn(consumers.band_map_feed(identity.stub, directory).run(), "access-band-map")
    runtime.spawn(
        consumers.identity_changes(
            identity.stub, store, runtime.pool, runtime.hub, settings.clock.now
        ).run(),
        "access-identity-changes",
    )

    states = PointStates(await store.point_states())

    def on_event(event: StoredEvent) -> None:
        # Another replica closed or opened an access point.
        if event.kind == "access_point_state_changed":
            point = pb.WatchAccessEventsResponse.FromString(event.payload)
            ap = point.access_point_state_changed.access_point
            states.put(
                AccessPointState(
                    ap.access_point_id,
                    ap.state != pb.ACCESS_POINT_STATE_CLOSED,
                    ap.closed_reason,
                    ap.state_changed_at.ToDatetime(tzinfo=settings.clock.start.tzinfo),
                )
            )

    runtime.hub.on_event(on_event)
    taps = TapDesk(store, directory, venue, states)
    cashier = Cashier(store, directory, venue, pin_key(own_service_secret(settings)))
    servicer = AccessServicer(
        store, venue, directory, states, taps, cashier, runtime.hub, settings.clock, identity
    )
    return Parts(venue, store, directory, states, servicer)


async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
    parts = await build(runtime)

    def register(server: grpc.aio.Server) -> None:
        access_pb2_grpc.add_AccessServiceServicer_to_server(parts.servicer, server)

    return register


DEFINITION = ServiceDefinition(
    name="access",
    proto_service="venue.access.v1.AccessService",
    policy=POLICY,
    setup=setup,
    migrations=Path(__file__).parent / "migrations",
)
