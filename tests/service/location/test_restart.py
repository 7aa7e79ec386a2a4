"""Across a restart: acked batches stay acked, consenting guests keep their place
and trail; and guests who go unheard stop being counted."""

from __future__ import annotations

import asyncio

from tests.service.location.conftest import (
    QUEUE_READER_A,
    QUEUE_ZONE,
    LocationFactory,
    make_batch,
    now_ms,
)
from venue.location.v1 import location_pb2 as pb


async def test_a_restart_keeps_acks_places_and_trails(location_factory: LocationFactory) -> None:
    first = await location_factory()
    ann = await first.guest()
    bob = await first.guest(tracking=False)
    rows = [
        (ann.band_uid, QUEUE_READER_A, now_ms(), -45),
        (bob.band_uid, QUEUE_READER_A, now_ms(), -45),
    ]
    await first.ping_when_known(rows)
    batch = make_batch("before-restart", rows)
    (ack,) = await first.send([batch])
    assert ack.outcome == pb.PING_BATCH_OUTCOME_ACCEPTED
    await first.placed_in(ann.guest_id, QUEUE_ZONE)
    await asyncio.sleep(0.5)
    database = str(first.running.runtime.dsn)
    await first.running.stop()

    second = await location_factory(database=database)
    second.gateway, second.gateway_id = first.gateway, first.gateway_id
    (again,) = await second.send([batch])
    assert again.outcome == pb.PING_BATCH_OUTCOME_DUPLICATE
    assert again.accepted_count == ack.accepted_count
    where = await second.where(ann.guest_id, trail=True)
    assert where.status == pb.LOCATION_STATUS_KNOWN
    assert where.place.zone_id == QUEUE_ZONE
    assert where.place.node_id == "n.river-expedition-cruise.q1"
    assert [v.zone_id for v in where.trail][:1] == [QUEUE_ZONE]
    # Bob was never stored: his next read counts him again.
    assert (await second.where(bob.guest_id)).status == pb.LOCATION_STATUS_TRACKING_OFF


async def test_guests_unheard_for_long_are_counted_nowhere(
    location_factory: LocationFactory,
) -> None:
    location = await location_factory(
        {"VENUE_LOCATION_LOST_AFTER_S": "1.5", "VENUE_LOCATION_EXIT_AFTER_S": "1"}
    )
    ann = await location.guest()
    events, task = location.watch(zone_ids=[QUEUE_ZONE])
    await asyncio.sleep(0.3)
    await location.ping_when_known([(ann.band_uid, QUEUE_READER_A, now_ms(), -45)])
    await location.placed_in(ann.guest_id, QUEUE_ZONE)
    assert await location.count(QUEUE_ZONE) == 1

    async def lost() -> bool:
        return (await location.where(ann.guest_id)).status == pb.LOCATION_STATUS_UNKNOWN

    await location.until(lost, what="ann lost")
    assert await location.count(QUEUE_ZONE) == 0
    await asyncio.sleep(0.5)
    moves = [e.guest_zone_changed for e in events if e.guest_zone_changed.guest_id]
    assert [(m.from_zone_id, m.to_zone_id) for m in moves] == [("", QUEUE_ZONE), (QUEUE_ZONE, "")]
    counts = [e.occupancy_changed.count for e in events if e.HasField("occupancy_changed")]
    assert counts[-2:] == [1, 0]
    task.cancel()
