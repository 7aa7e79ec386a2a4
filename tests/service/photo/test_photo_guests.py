"""The guest's RPCs through the running service: their party's photos only,
"is this you?", unlinking, consent, erasure, retention; the operators' stats
and stream; bad input and callers of the wrong kind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc

from services.photo.upkeep import upkeep_once
from services.platform.validation import to_timestamp
from tests.service.photo.conftest import (
    CAMERA,
    RIDE,
    RIDE_CAMERA,
    RIDE_DELAY,
    Member,
    Photo,
    capture,
    slot,
)
from tests.support.stubs import bearer, expect_error
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2
from venue.photo.v1 import photo_pb2 as pb

MATCHED, AMBIGUOUS = 2, 3


async def ride_photo(photo: Photo, *riders: tuple[Member, float]) -> str:
    """A ride photo of a vehicle whose riders tapped at these offsets; its id
    once the linker decided."""
    t0 = slot()
    for member, offset in riders:
        await photo.tap(member, t0 + timedelta(seconds=offset))
    last = max(offset for _, offset in riders)
    reply = await photo.ingest(capture(RIDE_CAMERA, t0 + timedelta(seconds=last + RIDE_DELAY)))
    photo_id = reply.acks[0].photo_id
    await photo.decided(photo_id)
    return photo_id


async def unclear_photo(photo: Photo, *riders: tuple[Member, float]) -> str:
    """A ride photo of one row of a vehicle (the ride sent one per row): which
    riders sat in which row the taps cannot tell, so it is held. Its id."""
    t0 = slot()
    for member, offset in riders:
        await photo.tap(member, t0 + timedelta(seconds=offset))
    at = t0 + timedelta(seconds=max(offset for _, offset in riders) + RIDE_DELAY)
    rows = [capture(RIDE_CAMERA, at, row=1), capture(RIDE_CAMERA, at, row=2)]
    reply = await photo.ingest(*rows)
    photo_id = reply.acks[0].photo_id
    await photo.decided(photo_id)
    return photo_id


# --- consent -------------------------------------------------------------------


async def test_a_guest_with_photo_linking_off_gets_no_automatic_link(photo: Photo) -> None:
    ann = await photo.member()
    shy = await photo.member(consent=False)
    shy_kid = await photo.member(party_of=shy, consent=False)
    photo_id = await ride_photo(photo, (ann, 0), (shy, 1), (shy_kid, 1.5))
    assert await photo.state(photo_id) == MATCHED
    [linked] = await photo.photos_of(ann)
    assert list(linked.guest_ids) == [ann.guest_id]
    assert await photo.photos_of(shy) == []
    suggestions = await photo.stub.ListSuggestions(
        pb.ListSuggestionsRequest(party_id=shy.party_id), metadata=shy.auth
    )
    assert list(suggestions.suggestions) == []


async def test_consent_turned_off_later_stops_the_next_links(photo: Photo) -> None:
    ann = await photo.member()
    await photo.identity.stub.SetConsent(
        identity_pb2.SetConsentRequest(guest_id=ann.guest_id, photo_linking=False),
        metadata=ann.auth,
    )
    await photo.known(ann.guest_id, consent=False)
    await ride_photo(photo, (ann, 0))
    assert await photo.photos_of(ann) == []


# --- a guest sees only their own party ------------------------------------------


async def test_a_guest_sees_only_their_partys_photos_and_members(photo: Photo) -> None:
    ann = await photo.member()
    bob = await photo.member()
    photo_id = await ride_photo(photo, (ann, 0), (bob, 2))
    [seen] = await photo.photos_of(ann)
    assert list(seen.guest_ids) == [ann.guest_id]  # not bob: another party
    got = await photo.stub.GetPhoto(pb.GetPhotoRequest(photo_id=photo_id), metadata=ann.auth)
    assert list(got.photo.guest_ids) == [ann.guest_id]
    eve = await photo.member()
    await expect_error(
        photo.stub.ListPhotos(pb.ListPhotosRequest(party_id=ann.party_id), metadata=eve.auth),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        photo.stub.GetPhoto(pb.GetPhotoRequest(photo_id=photo_id), metadata=eve.auth),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # Operators see every party's links.
    ops = await photo.stub.GetPhoto(
        pb.GetPhotoRequest(photo_id=photo_id), metadata=await photo.ops()
    )
    assert sorted(ops.photo.guest_ids) == sorted([ann.guest_id, bob.guest_id])


async def test_list_and_get_bad_input(photo: Photo) -> None:
    ann = await photo.member()
    await expect_error(
        photo.stub.ListPhotos(pb.ListPhotosRequest(), metadata=ann.auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        "party_id",
    )
    now = datetime.now(UTC)
    backwards = common_pb2.TimeRange(start=to_timestamp(now), end=to_timestamp(now - timedelta(1)))
    await expect_error(
        photo.stub.ListPhotos(
            pb.ListPhotosRequest(party_id=ann.party_id, period=backwards), metadata=ann.auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "period.end",
    )
    await expect_error(
        photo.stub.ListPhotos(
            pb.ListPhotosRequest(
                party_id=ann.party_id, page=common_pb2.PageRequest(page_token="garbage")
            ),
            metadata=ann.auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page.page_token",
    )
    await expect_error(
        photo.stub.GetPhoto(pb.GetPhotoRequest(), metadata=ann.auth),
        grpc.StatusCode.INVALID_ARGUMENT,
        "photo_id",
    )
    await expect_error(
        photo.stub.GetPhoto(
            pb.GetPhotoRequest(photo_id=str(uuid.uuid4())), metadata=await photo.ops()
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        photo.stub.ListPhotos(pb.ListPhotosRequest(party_id=ann.party_id)),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_the_party_list_pages_newest_first(photo: Photo) -> None:
    ann = await photo.member()
    ids = [await ride_photo(photo, (ann, 0)) for _ in range(3)]
    # slot() goes back in time: the first photo is the newest.
    first = await photo.stub.ListPhotos(
        pb.ListPhotosRequest(party_id=ann.party_id, page=common_pb2.PageRequest(page_size=2)),
        metadata=ann.auth,
    )
    rest = await photo.stub.ListPhotos(
        pb.ListPhotosRequest(
            party_id=ann.party_id,
            page=common_pb2.PageRequest(page_size=2, page_token=first.next_page_token),
        ),
        metadata=ann.auth,
    )
    assert [p.photo_id for p in [*first.photos, *rest.photos]] == ids
    assert not rest.next_page_token


# --- "is this you?" ---------------------------------------------------------------


async def test_an_unclear_photo_is_offered_to_each_party_and_linked_on_yes(photo: Photo) -> None:
    ann = await photo.member()
    kid = await photo.member(party_of=ann)
    bob = await photo.member()
    photo_id = await unclear_photo(photo, (ann, 0), (kid, 0.5), (bob, 1.5))
    assert await photo.state(photo_id) == AMBIGUOUS
    assert await photo.photos_of(ann) == []

    async def offered(member: Member) -> list[pb.PhotoSuggestion]:
        reply = await photo.stub.ListSuggestions(
            pb.ListSuggestionsRequest(party_id=member.party_id), metadata=member.auth
        )
        return [s for s in reply.suggestions if s.photo.photo_id == photo_id]

    [for_ann] = await offered(ann)
    [for_bob] = await offered(bob)
    assert list(for_ann.photo.guest_ids) == []  # the photo without anyone's links
    assert "Summit Yeti Express" in for_ann.reason
    # Another party cannot answer for Ann's.
    await expect_error(
        photo.stub.RespondToSuggestion(
            pb.RespondToSuggestionRequest(
                suggestion_id=for_ann.suggestion_id, answer=pb.SUGGESTION_ANSWER_IS_US
            ),
            metadata=bob.auth,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    yes = await photo.stub.RespondToSuggestion(
        pb.RespondToSuggestionRequest(
            suggestion_id=for_ann.suggestion_id, answer=pb.SUGGESTION_ANSWER_IS_US
        ),
        metadata=ann.auth,
    )
    assert sorted(yes.photo.guest_ids) == sorted([ann.guest_id, kid.guest_id])
    assert yes.photo.link_source == pb.LINK_SOURCE_SUGGESTION_CONFIRMED
    await photo.stub.RespondToSuggestion(
        pb.RespondToSuggestionRequest(
            suggestion_id=for_bob.suggestion_id, answer=pb.SUGGESTION_ANSWER_NOT_US
        ),
        metadata=bob.auth,
    )
    assert await offered(bob) == []
    assert await photo.photos_of(bob) == []
    assert [p.photo_id for p in await photo.photos_of(ann)] == [photo_id]


async def test_suggestion_rpcs_bad_input_and_callers(photo: Photo) -> None:
    ann = await photo.member()
    bob = await photo.member()
    await unclear_photo(photo, (ann, 0), (bob, 1))
    reply = await photo.stub.ListSuggestions(
        pb.ListSuggestionsRequest(party_id=ann.party_id), metadata=ann.auth
    )
    suggestion_id = reply.suggestions[0].suggestion_id
    await expect_error(
        photo.stub.ListSuggestions(
            pb.ListSuggestionsRequest(party_id=ann.party_id), metadata=bob.auth
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        photo.stub.ListSuggestions(
            pb.ListSuggestionsRequest(party_id=ann.party_id), metadata=await photo.ops()
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    cases = [
        (pb.RespondToSuggestionRequest(answer=pb.SUGGESTION_ANSWER_IS_US), "suggestion_id"),
        (pb.RespondToSuggestionRequest(suggestion_id=suggestion_id), "answer"),
        (
            pb.RespondToSuggestionRequest(
                suggestion_id=suggestion_id,
                answer=pb.SUGGESTION_ANSWER_NOT_US,
                guest_ids=[ann.guest_id],
            ),
            "guest_ids",
        ),
        (
            pb.RespondToSuggestionRequest(
                suggestion_id=suggestion_id,
                answer=pb.SUGGESTION_ANSWER_IS_US,
                guest_ids=[bob.guest_id],
            ),
            "guest_ids",
        ),
    ]
    for request, field in cases:
        await expect_error(
            photo.stub.RespondToSuggestion(request, metadata=ann.auth),
            grpc.StatusCode.INVALID_ARGUMENT,
            field,
        )
    # Nothing was answered: the suggestion is still offered.
    again = await photo.stub.ListSuggestions(
        pb.ListSuggestionsRequest(party_id=ann.party_id), metadata=ann.auth
    )
    assert suggestion_id in [s.suggestion_id for s in again.suggestions]
    await expect_error(
        photo.stub.RespondToSuggestion(
            pb.RespondToSuggestionRequest(
                suggestion_id=str(uuid.uuid4()), answer=pb.SUGGESTION_ANSWER_IS_US
            ),
            metadata=ann.auth,
        ),
        grpc.StatusCode.NOT_FOUND,
    )


# --- unlinking -------------------------------------------------------------------


async def test_a_wrong_photo_unlinked_stays_unlinked(photo: Photo) -> None:
    ann = await photo.member()
    kid = await photo.member(party_of=ann)
    t0 = slot()
    await photo.tap(ann, t0)
    reply = await photo.ingest(capture(RIDE_CAMERA, t0 + timedelta(seconds=RIDE_DELAY)))
    photo_id = reply.acks[0].photo_id
    assert await photo.decided(photo_id) == MATCHED
    eve = await photo.member()
    request = pb.UnlinkPhotoRequest(
        photo_id=photo_id, party_id=ann.party_id, reason=pb.UNLINK_REASON_NOT_US
    )
    await expect_error(
        photo.stub.UnlinkPhoto(request, metadata=eve.auth), grpc.StatusCode.PERMISSION_DENIED
    )
    for bad, field in (
        (pb.UnlinkPhotoRequest(party_id=ann.party_id, reason=pb.UNLINK_REASON_NOT_US), "photo_id"),
        (pb.UnlinkPhotoRequest(photo_id=photo_id, reason=pb.UNLINK_REASON_NOT_US), "party_id"),
        (pb.UnlinkPhotoRequest(photo_id=photo_id, party_id=ann.party_id), "reason"),
        (
            pb.UnlinkPhotoRequest(
                photo_id=photo_id, party_id=ann.party_id, reason=pb.UNLINK_REASON_SUPERSEDED
            ),
            "reason",
        ),
    ):
        await expect_error(
            photo.stub.UnlinkPhoto(bad, metadata=ann.auth), grpc.StatusCode.INVALID_ARGUMENT, field
        )
    assert len(await photo.photos_of(ann)) == 1
    unlinked = await photo.stub.UnlinkPhoto(request, metadata=ann.auth)
    assert list(unlinked.photo.guest_ids) == []
    assert await photo.photos_of(ann) == []
    # A late boarding tap of the party re-decides the photo: it does not come back.
    await photo.tap(kid, t0 + timedelta(seconds=1))
    await photo.parts.linker.step()
    assert await photo.photos_of(ann) == []


# --- erasure and retention ---------------------------------------------------------


async def test_an_erased_guest_leaves_no_link(photo: Photo) -> None:
    ann = await photo.member()
    kid = await photo.member(party_of=ann)
    photo_id = await ride_photo(photo, (ann, 0), (kid, 1))
    [before] = await photo.photos_of(ann)
    assert len(before.guest_ids) == 2
    await photo.identity.stub.EraseGuest(
        identity_pb2.EraseGuestRequest(guest_id=kid.guest_id, idempotency_key=uuid.uuid4().hex),
        metadata=bearer(photo.identity.admin),
    )

    async def erased() -> bool:
        rows = await photo.db.fetch(
            "SELECT guest_id FROM photo.photo_link_guests WHERE guest_id = $1", kid.guest_id
        )
        return not rows

    await photo.until(erased)
    [after] = await photo.photos_of(ann)
    assert (after.photo_id, list(after.guest_ids)) == (photo_id, [ann.guest_id])


async def test_photos_nobody_has_are_deleted_after_the_retention(photo: Photo) -> None:
    ann = await photo.member()
    kept = await ride_photo(photo, (ann, 0))
    unclaimed = (await photo.ingest(capture(RIDE_CAMERA, slot()))).acks[0].photo_id
    recent = (await photo.ingest(capture(RIDE_CAMERA, slot()))).acks[0].photo_id
    # Age two of them past the venue's 30 days, as if the days had passed.
    await photo.db.execute(
        "UPDATE photo.photos SET captured_at = captured_at - interval '31 days' "
        "WHERE photo_id = ANY($1::uuid[])",
        [kept, unclaimed],
    )
    parts = photo.parts
    await upkeep_once(
        parts.store, parts.purchases, parts.catalog, photo.running.runtime.settings.clock
    )

    async def exists(photo_id: str) -> bool:
        found = await photo.db.fetchval(
            "SELECT count(*) FROM photo.photos WHERE photo_id = $1", photo_id
        )
        return bool(found)

    assert not await exists(unclaimed)
    assert await exists(kept)  # in Ann's account
    assert await exists(recent)


# --- operators -------------------------------------------------------------------


async def test_stats_count_the_days_photos_for_operators_only(photo: Photo) -> None:
    ann = await photo.member()
    await ride_photo(photo, (ann, 0))
    now = datetime.now(UTC)
    period = common_pb2.TimeRange(
        start=to_timestamp(now - timedelta(days=1)), end=to_timestamp(now)
    )
    stats = await photo.stub.GetPhotoStats(
        pb.GetPhotoStatsRequest(period=period), metadata=await photo.ops()
    )
    ride = next(s for s in stats.by_attraction if s.attraction_id == RIDE)
    assert ride.captures >= 1 and ride.linked_by_boarding >= 1
    assert stats.total.captures >= ride.captures
    await expect_error(
        photo.stub.GetPhotoStats(pb.GetPhotoStatsRequest(period=period), metadata=ann.auth),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    half = common_pb2.TimeRange(start=to_timestamp(now))
    await expect_error(
        photo.stub.GetPhotoStats(pb.GetPhotoStatsRequest(period=half), metadata=await photo.ops()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "period",
    )


async def test_the_stream_carries_links_and_refuses_guests(photo: Photo) -> None:
    ann = await photo.member()
    photo_id = await ride_photo(photo, (ann, 0))
    stream = photo.stub.WatchPhotoEvents(
        pb.WatchPhotoEventsRequest(kinds=[pb.PHOTO_EVENT_KIND_PHOTO_LINKED]),
        metadata=await photo.ops(),
    )
    found = None
    async for event in stream:
        assert event.WhichOneof("event") == "photo_linked"
        if event.photo_linked.photo_id == photo_id:
            found = event
            break
    stream.cancel()
    assert found is not None
    assert found.photo_linked.party_id == ann.party_id
    assert list(found.photo_linked.guest_ids) == [ann.guest_id]
    denied = photo.stub.WatchPhotoEvents(pb.WatchPhotoEventsRequest(), metadata=ann.auth)
    await expect_error(denied.read(), grpc.StatusCode.PERMISSION_DENIED)
    bad = photo.stub.WatchPhotoEvents(
        pb.WatchPhotoEventsRequest(kinds=[99]),  # type: ignore[list-item]
        metadata=await photo.ops(),
    )
    await expect_error(bad.read(), grpc.StatusCode.INVALID_ARGUMENT, "kinds")


async def test_prices_for_guests_staff_and_kiosks(photo: Photo) -> None:
    ann = await photo.member()
    prices = await photo.stub.GetPhotoPrices(pb.GetPhotoPricesRequest(), metadata=ann.auth)
    assert prices.photo_price.currency == "USD"
    assert 0 < prices.photo_price.minor_units < prices.package_price.minor_units
    camera = await photo.device(CAMERA, RIDE_CAMERA)
    await expect_error(
        photo.stub.GetPhotoPrices(pb.GetPhotoPricesRequest(), metadata=camera),
        grpc.StatusCode.PERMISSION_DENIED,
    )
