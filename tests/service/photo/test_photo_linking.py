"""Ride photos linked by boarding taps, through the running service."""

from __future__ import annotations

from datetime import timedelta

from tests.service.photo.conftest import RIDE_CAMERA, RIDE_DELAY, Photo, capture, slot
from venue.photo.v1 import photo_pb2 as pb


async def test_a_vehicle_of_two_parties_is_linked_to_both(photo: Photo) -> None:
    t0 = slot()
    ann = await photo.member()
    kid = await photo.member(party_of=ann)
    bob = await photo.member()
    await photo.tap(ann, t0)
    await photo.tap(kid, t0 + timedelta(seconds=1))
    await photo.tap(bob, t0 + timedelta(seconds=2.5))
    shot = capture(RIDE_CAMERA, t0 + timedelta(seconds=2.5 + RIDE_DELAY))
    reply = await photo.ingest(shot)
    assert reply.acks[0].outcome == pb.CAPTURE_OUTCOME_ACCEPTED
    photo_id = reply.acks[0].photo_id
    assert await photo.decided(photo_id) == 2
    ann_photos = await photo.photos_of(ann)
    assert [p.photo_id for p in ann_photos] == [photo_id]
    assert sorted(ann_photos[0].guest_ids) == sorted([ann.guest_id, kid.guest_id])
    assert ann_photos[0].link_source == pb.LINK_SOURCE_BOARDING_MATCH
    bob_photos = await photo.photos_of(bob)
    assert [list(p.guest_ids) for p in bob_photos] == [[bob.guest_id]]
