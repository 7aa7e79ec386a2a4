"""Consent and erasure, end to end: a guest with tracking off is counted and
nothing else; turning it off removes what was kept, at once; turning it on
tracks them from their next read; erasure removes them from location."""

from __future__ import annotations

import asyncio

import grpc

from tests.service.location.conftest import (
    QUEUE_READER_A,
    QUEUE_READER_B,
    QUEUE_ZONE,
    BandedGuest,
    Location,
    now_ms,
)
from tests.support.stubs import bearer, expect_error
from venue.identity.v1 import identity_pb2 as ipb
from venue.location.v1 import location_pb2 as pb

LAND_READER = "rd.jungle-reach.plaza"
PURGE_WAIT = 15.0
NOTHING = {"tracks": 0, "visits": 0, "events": 0, "events_naming": 0}


async def kept(location: Location, guest: BandedGuest) -> dict[str, int]:
    """What the database holds that names the guest (or their tracks)."""
    counts = {}
    for name, sql in {
        "tracks": "SELECT count(*) FROM tracks WHERE guest_id = $1",
        "visits": "SELECT count(*) FROM visits WHERE guest_id = $1",
        "events": "SELECT count(*) FROM events WHERE key = $1::text",
        "events_naming": (
            "SELECT count(*) FROM events WHERE position($1::text::bytea in payload) > 0"
        ),
    }.items():
        counts[name] = int(await location.db.fetchval(sql, guest.guest_id))
    return counts


async def pings_of_tracks(location: Location, tracks: list[int]) -> int:
    return int(
        await location.db.fetchval(
            "SELECT count(*) FROM pings WHERE track_no = ANY($1::integer[])", tracks
        )
    )


async def tracks_of(location: Location, guest: BandedGuest) -> list[int]:
    rows = await location.rows("SELECT track_no FROM tracks WHERE guest_id = $1", guest.guest_id)
    return [r["track_no"] for r in rows]


async def placed(location: Location, guest: BandedGuest, reader: str = QUEUE_READER_A) -> None:
    ack = await location.ping_when_known([(guest.band_uid, reader, now_ms(), -45)])
    assert not ack.rejected, ack


async def test_tracking_off_counts_the_guest_and_keeps_nothing(location: Location) -> None:
    bob = await location.guest(tracking=False)
    ops_events, ops_task = location.watch()
    queue_events, queue_task = location.watch(await location.service_token("queue"))
    await asyncio.sleep(0.3)
    before = await location.count(QUEUE_ZONE)
    await placed(location, bob)
    await placed(location, bob, QUEUE_READER_B)

    async def counted() -> bool:
        return await location.count(QUEUE_ZONE) == before + 1

    await location.until(counted, what="bob counted")
    await asyncio.sleep(0.6)
    where = await location.where(bob.guest_id, trail=True)
    assert where.status == pb.LOCATION_STATUS_TRACKING_OFF
    assert not where.HasField("place") and not where.trail
    assert await kept(location, bob) == NOTHING
    for seen in (ops_events, queue_events):
        assert any(e.HasField("occupancy_changed") for e in seen)
        assert not any(e.guest_zone_changed.guest_id == bob.guest_id for e in seen)
    ops_task.cancel()
    queue_task.cancel()


async def test_turning_tracking_off_removes_what_was_kept_and_keeps_counting(
    location: Location,
) -> None:
    ann = await location.guest()
    await placed(location, ann)
    await location.placed_in(ann.guest_id, QUEUE_ZONE)
    tracks = await tracks_of(location, ann)
    assert tracks and await pings_of_tracks(location, tracks) >= 1
    assert (await kept(location, ann))["visits"] >= 1
    count = await location.count(QUEUE_ZONE)

    await location.set_tracking(ann, False)

    async def hidden() -> bool:
        return (await location.where(ann.guest_id)).status == pb.LOCATION_STATUS_TRACKING_OFF

    await location.until(hidden, what="tracking off")

    async def removed() -> bool:
        return await kept(location, ann) == NOTHING

    await location.until(removed, what="trail, tracks and moves deleted")
    assert await location.count(QUEUE_ZONE) == count

    async def purged() -> bool:
        return await pings_of_tracks(location, tracks) == 0

    await location.until(purged, PURGE_WAIT, "pings purged")
    # Reads while tracking is off: counted, never stored, never shown.
    events, task = location.watch()
    await placed(location, ann, LAND_READER)
    await asyncio.sleep(0.8)
    assert await kept(location, ann) == NOTHING
    assert not any(e.guest_zone_changed.guest_id == ann.guest_id for e in events)
    task.cancel()


async def test_turning_tracking_on_again_tracks_from_the_next_read(location: Location) -> None:
    cat = await location.guest()
    await placed(location, cat)
    await location.placed_in(cat.guest_id, QUEUE_ZONE)
    old = await tracks_of(location, cat)
    await location.set_tracking(cat, False)
    # Moved while tracking was off.
    await placed(location, cat, LAND_READER)
    await asyncio.sleep(0.3)
    await location.set_tracking(cat, True)

    async def back_on() -> bool:
        status = (await location.where(cat.guest_id)).status
        return status != pb.LOCATION_STATUS_TRACKING_OFF

    await location.until(back_on, what="tracking on")
    # Where they went while it was off is not revealed.
    assert (await location.where(cat.guest_id)).status == pb.LOCATION_STATUS_UNKNOWN
    events, task = location.watch()
    await placed(location, cat, QUEUE_READER_B)
    await location.placed_in(cat.guest_id, QUEUE_ZONE)
    new = await tracks_of(location, cat)
    assert new and not set(new) & set(old)

    async def moved() -> bool:
        return any(e.guest_zone_changed.guest_id == cat.guest_id for e in events)

    await location.until(moved, what="cat's move published")
    move = next(e.guest_zone_changed for e in events if e.guest_zone_changed.guest_id)
    assert (move.from_zone_id, move.to_zone_id) == ("", QUEUE_ZONE)
    task.cancel()


async def test_erasure_removes_the_guest_from_location(location: Location) -> None:
    dan = await location.guest()
    await placed(location, dan)
    await location.placed_in(dan.guest_id, QUEUE_ZONE)
    tracks = await tracks_of(location, dan)
    count = await location.count(QUEUE_ZONE)
    await location.identity.stub.EraseGuest(
        ipb.EraseGuestRequest(guest_id=dan.guest_id), metadata=bearer(dan.token)
    )

    async def forgotten() -> bool:
        try:
            await location.where(dan.guest_id)
        except grpc.aio.AioRpcError as err:
            return err.code() == grpc.StatusCode.NOT_FOUND
        return False

    await location.until(forgotten, what="erasure")

    async def removed() -> bool:
        return await kept(location, dan) == NOTHING

    await location.until(removed, what="trail, tracks and moves deleted")

    async def uncounted() -> bool:
        return await location.count(QUEUE_ZONE) == count - 1

    await location.until(uncounted, what="no longer counted")

    async def purged() -> bool:
        return await pings_of_tracks(location, tracks) == 0

    await location.until(purged, PURGE_WAIT, "pings purged")
    ack = await location.ping([(dan.band_uid, QUEUE_READER_A, now_ms(), -40)])
    assert [r.reason for r in ack.rejected] == [pb.PING_REJECT_REASON_BAND_DEACTIVATED]
    await expect_error(
        location.stub.GetGuestLocation(
            pb.GetGuestLocationRequest(guest_id=dan.guest_id), metadata=bearer(location.ops)
        ),
        grpc.StatusCode.NOT_FOUND,
    )
