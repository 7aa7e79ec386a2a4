"""Places through the service: overlapping readers and late reads, the trail,
"where is my family", the events other services follow, and who may see what."""

from __future__ import annotations

import asyncio

import grpc

from tests.service.location.conftest import (
    QUEUE_READER_A,
    QUEUE_ZONE,
    Location,
    now_ms,
)
from tests.support.stubs import bearer, expect_error
from venue.location.v1 import location_pb2 as pb

LAND_ZONE = "land.jungle-reach"
LAND_READER = "rd.jungle-reach.plaza"
OTHER_ZONE = "queue.buccaneer-bay-voyage"
OTHER_READER = "rd.buccaneer-bay-voyage.q2"


async def test_the_strongest_recent_read_places_the_guest_whatever_the_arrival_order(
    location: Location,
) -> None:
    ann = await location.guest()
    await location.ping_when_known([(ann.band_uid, LAND_READER, now_ms() - 60_000, -90)])
    events, task = location.watch(zone_ids=[QUEUE_ZONE, OTHER_ZONE])
    await asyncio.sleep(0.3)
    t = now_ms()
    # Heard by two overlapping readers at once: the stronger one wins.
    await location.ping(
        [(ann.band_uid, OTHER_READER, t, -75), (ann.band_uid, QUEUE_READER_A, t, -52)]
    )
    await location.placed_in(ann.guest_id, QUEUE_ZONE)
    # A read from before, arriving late, does not move her back.
    await location.ping([(ann.band_uid, OTHER_READER, t - 4000, -60)])
    await asyncio.sleep(0.6)
    assert (await location.where(ann.guest_id)).place.zone_id == QUEUE_ZONE
    # A newer read does.
    await location.ping([(ann.band_uid, OTHER_READER, t + 3000, -58)])
    await location.placed_in(ann.guest_id, OTHER_ZONE)
    where = await location.where(ann.guest_id, trail=True)
    assert where.place.node_id == "n.buccaneer-bay-voyage.q2"
    assert where.observed_at.ToMilliseconds() == t + 3000
    assert [v.zone_id for v in where.trail][:2] == [OTHER_ZONE, QUEUE_ZONE]
    assert not where.trail[0].HasField("left_at")
    assert where.trail[1].left_at == where.trail[0].entered_at

    async def both_moves() -> bool:
        moves = [e.guest_zone_changed for e in events if e.guest_zone_changed.guest_id]
        return len(moves) >= 2

    await location.until(both_moves, what="two moves published")
    moves = [e.guest_zone_changed for e in events if e.guest_zone_changed.guest_id]
    assert [(m.from_zone_id, m.to_zone_id) for m in moves[-2:]] == [
        (LAND_ZONE, QUEUE_ZONE),
        (QUEUE_ZONE, OTHER_ZONE),
    ]
    assert moves[-1].party_id == ann.party_id
    assert moves[-1].to_node_id == "n.buccaneer-bay-voyage.q2"
    counts = [e.occupancy_changed for e in events if e.HasField("occupancy_changed")]
    assert {c.zone_id for c in counts} <= {QUEUE_ZONE, OTHER_ZONE}
    assert all(c.capacity > 0 and c.density == c.count / c.capacity for c in counts)
    task.cancel()


async def test_where_is_my_family_shows_only_those_who_share_their_place(
    location: Location,
) -> None:
    parent = await location.guest()
    kid = await location.child(parent)
    shy = await location.child(parent, tracking=False)
    t = now_ms()
    await location.ping_when_known(
        [
            (parent.band_uid, QUEUE_READER_A, t, -50),
            (kid.band_uid, LAND_READER, t, -50),
            (shy.band_uid, LAND_READER, t, -50),
        ]
    )
    await location.placed_in(kid.guest_id, LAND_ZONE)
    reply = await location.stub.GetPartyLocations(
        pb.GetPartyLocationsRequest(party_id=parent.party_id, include_trail=True),
        metadata=bearer(parent.token),
    )
    by_guest = {loc.guest_id: loc for loc in reply.locations}
    assert set(by_guest) == {parent.guest_id, kid.guest_id, shy.guest_id}
    assert by_guest[parent.guest_id].place.zone_id == QUEUE_ZONE
    assert by_guest[kid.guest_id].place.zone_id == LAND_ZONE
    assert by_guest[kid.guest_id].trail[0].zone_id == LAND_ZONE
    hidden = by_guest[shy.guest_id]
    assert hidden.status == pb.LOCATION_STATUS_TRACKING_OFF
    assert not hidden.HasField("place") and not hidden.trail
    # The party's own guest may ask about a member; another party's may not.
    mine = await location.where(kid.guest_id, token=parent.token)
    assert mine.status == pb.LOCATION_STATUS_KNOWN
    stranger = await location.guest()
    await expect_error(
        location.stub.GetPartyLocations(
            pb.GetPartyLocationsRequest(party_id=parent.party_id), metadata=bearer(stranger.token)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        location.stub.GetGuestLocation(
            pb.GetGuestLocationRequest(guest_id=kid.guest_id), metadata=bearer(stranger.token)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_a_guest_never_heard_is_not_in_the_venue(location: Location) -> None:
    new = await location.guest()
    await asyncio.sleep(0.3)
    where = await location.where(new.guest_id, token=new.token)
    assert where.status == pb.LOCATION_STATUS_NOT_IN_VENUE
    assert where.guest_id == new.guest_id and where.party_id == new.party_id


async def test_guest_and_party_lookups_check_their_input_and_their_caller(
    location: Location,
) -> None:
    ann = await location.guest()
    itinerary = await location.service_token("itinerary")
    queue = await location.service_token("queue")
    _, reader = await location.reader_device(QUEUE_READER_A)
    get = location.stub.GetGuestLocation
    party = location.stub.GetPartyLocations
    for token, field in ((location.ops, "guest_id"),):
        await expect_error(
            get(pb.GetGuestLocationRequest(), metadata=bearer(token)),
            grpc.StatusCode.INVALID_ARGUMENT,
            field,
        )
        await expect_error(
            get(pb.GetGuestLocationRequest(guest_id="not-an-id"), metadata=bearer(token)),
            grpc.StatusCode.INVALID_ARGUMENT,
            field,
        )
    await expect_error(
        get(
            pb.GetGuestLocationRequest(guest_id="00000000-0000-4000-8000-000000000000"),
            metadata=bearer(location.ops),
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        party(pb.GetPartyLocationsRequest(party_id="x"), metadata=bearer(location.ops)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "party_id",
    )
    await expect_error(
        party(
            pb.GetPartyLocationsRequest(party_id="00000000-0000-4000-8000-000000000000"),
            metadata=bearer(location.ops),
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    # Guest help and the itinerary may look; other services and devices may not.
    await location.until(
        lambda: _status(location, ann.guest_id, itinerary), what="ann known to location"
    )
    request = pb.GetGuestLocationRequest(guest_id=ann.guest_id)
    assert (await get(request, metadata=bearer(itinerary))).location.guest_id == ann.guest_id
    for token in (queue, reader):
        await expect_error(get(request, metadata=bearer(token)), grpc.StatusCode.PERMISSION_DENIED)
    await expect_error(get(request), grpc.StatusCode.UNAUTHENTICATED)


async def _status(location: Location, guest_id: str, token: str) -> bool:
    try:
        await location.where(guest_id, token=token)
    except grpc.aio.AioRpcError:
        return False
    return True
