"""Location's set-up: the venue's readers and zones, the directory rebuilt from
identity's stream, the places of consenting guests restored from the trail,
then the publishing tick, upkeep and the purger.

Tuning (venue time, environment):
| variable | default | meaning |
| --- | --- | --- |
| VENUE_LOCATION_LOST_AFTER_S | 600 | a guest unheard this long is counted nowhere |
| VENUE_LOCATION_EXIT_AFTER_S | 120 | the same, last heard in an entrance zone (gone) |
| VENUE_LOCATION_TICK_S | 0.25 | wall seconds between publishing ticks |
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import grpc
import numpy as np

from services.location import telemetry
from services.location.directory import Directory
from services.location.follower import IdentityFollower
from services.location.gate import WriteGate
from services.location.ingest import FUTURE_SKEW_WALL_S, Ingestor
from services.location.maintenance import Maintenance
from services.location.occupancy import Occupancy
from services.location.pinglog import PingLog
from services.location.placement import Placement
from services.location.policy import POLICY
from services.location.publisher import TICK_SECONDS, Publisher
from services.location.servicer import Domain, LocationServicer
from services.location.store import LocationStore
from services.location.topology import Topology, build
from services.platform.server import Runtime, ServiceDefinition
from services.venue_model import load_venue
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2, identity_pb2_grpc
from venue.location.v1 import location_pb2_grpc

log = logging.getLogger("venue.location")


def _setting(runtime: Runtime, name: str, default: float) -> float:
    raw = runtime.settings.extra.get(name, "")
    return float(raw) if raw else default


def _reader_at(topology: Topology, zone: int, node_id: str | None) -> int:
    """A reader to stand for a restored place: one at its node, else one in its zone."""
    in_zone = [r for r in topology.readers if r.zone_index == zone]
    for reader in in_zone:
        if reader.node_id == node_id:
            return reader.index
    return in_zone[0].index if in_zone else -1


async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
    settings = runtime.settings
    clock = settings.clock
    venue = load_venue(settings.venue_file)
    topology = build(venue)
    store = LocationStore(runtime.pool, settings.schema)
    known = await store.sync_readers([r.id for r in topology.readers])
    reader_no = np.array([known[r.id][0] for r in topology.readers], dtype=np.int16)

    retention = timedelta(hours=venue.rules.ping_retention_hours)
    trail_retention = timedelta(minutes=venue.rules.trail_retention_minutes)
    lost_after = _setting(runtime, "VENUE_LOCATION_LOST_AFTER_S", 600.0)
    exit_after = _setting(runtime, "VENUE_LOCATION_EXIT_AFTER_S", 120.0)
    placement = Placement(topology, int(lost_after * 1000), int(exit_after * 1000))
    directory = Directory(placement)
    occupancy = Occupancy(topology.capacity)
    gate = WriteGate()
    pinglog = PingLog(store, retention)
    await pinglog.load()
    await pinglog.maintain(clock.now())

    ingestor = Ingestor(topology, directory, placement, store, pinglog, gate, clock, reader_no)
    for reader in topology.readers:
        last = known[reader.id][1]
        if last is not None:
            ingestor.reader_last_ms[reader.index] = int(last.timestamp() * 1000)
    publisher = Publisher(
        topology,
        placement,
        directory,
        occupancy,
        store,
        gate,
        runtime.hub,
        clock,
        _setting(runtime, "VENUE_LOCATION_TICK_S", TICK_SECONDS),
    )

    identity = identity_pb2_grpc.IdentityServiceStub(runtime.clients.channel("identity"))

    def open_stream(cursor: str) -> AsyncIterator[identity_pb2.WatchIdentityEventsResponse]:
        request = identity_pb2.WatchIdentityEventsRequest(
            start=common_pb2.StreamCursor(cursor=cursor)
        )
        return identity.WatchIdentityEvents(request).__aiter__()

    skew = timedelta(seconds=max(FUTURE_SKEW_WALL_S * clock.speed, FUTURE_SKEW_WALL_S))
    follower = IdentityFollower(
        open_stream,
        directory,
        store,
        runtime.pool,
        gate,
        publisher,
        clock,
        (retention, skew),
    )
    await follower.load()
    runtime.spawn(follower.consumer().run(), "location-identity")
    if not await follower.caught_up():
        log.warning("identity's stream did not settle; serving with what arrived")
    log.info("directory ready", extra={"guests": len(directory), "events": follower.handled})

    await _restore(runtime, store, topology, directory, placement)

    maintenance = Maintenance(
        store, pinglog, clock, trail_retention, ingestor.reader_last_ms, reader_no
    )
    telemetry.observe_zones(topology, occupancy)
    runtime.spawn(publisher.run(), "location-publisher")
    # On shutdown, write what the last ticks produced and the readers' health.
    runtime.on_close(maintenance.save_readers)
    runtime.on_close(publisher.tick)
    runtime.spawn(maintenance.run(), "location-upkeep")
    runtime.spawn(maintenance.run_purger(), "location-purger")

    servicer = LocationServicer(
        Domain(
            topology=topology,
            directory=directory,
            placement=placement,
            occupancy=occupancy,
            ingestor=ingestor,
            publisher=publisher,
            store=store,
            hub=runtime.hub,
            clock=clock,
            revocations=runtime.verifier.revocations,
            trail_retention=trail_retention,
        )
    )

    def register(server: grpc.aio.Server) -> None:
        location_pb2_grpc.add_LocationServiceServicer_to_server(servicer, server)

    return register


async def _restore(
    runtime: Runtime,
    store: LocationStore,
    topology: Topology,
    directory: Directory,
    placement: Placement,
) -> None:
    """Tracks and places of consenting guests, as stored before the restart.
    Guests without consent were never stored: their next read counts them again."""
    g = placement.guests
    for guest_id, track in (await store.load_tracks()).items():
        ref = directory.guest(guest_id)
        if ref is not None and ref.consenting:
            g.track[ref.slot] = track
    now_ms = int(runtime.clock.now().timestamp() * 1000)
    restored = 0
    for place in await store.load_places():
        ref = directory.guest(place.guest_id)
        zone = topology.zone(place.zone_id) if place.zone_id else None
        if ref is None or not ref.consenting or zone is None:
            continue
        if not g.countable[ref.slot]:
            continue
        at_ms = int(place.entered_at.timestamp() * 1000)
        placement.restore(
            ref.slot, zone.index, _reader_at(topology, zone.index, place.node_id), at_ms, now_ms
        )
        restored += 1
    log.info("places restored", extra={"guests": restored})


DEFINITION = ServiceDefinition(
    name="location",
    proto_service="venue.location.v1.LocationService",
    policy=POLICY,
    setup=setup,
    migrations=Path(__file__).parent / "migrations",
)
