"""The band map on its own: fed by identity's events, trusted only once its
replay has caught up, and falling back to identity for what it does not know."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from services.access.bands import QUIET_SECONDS, BandDirectory
from services.access.decisions import Wearer
from venue.identity.v1 import identity_pb2 as ipb

WALL0 = 1_000_000.0


class Clocks:
    def __init__(self) -> None:
        self.mono = 0.0
        self.wall = WALL0


def directory(clocks: Clocks, remote: Mapping[str, Wearer | None]) -> BandDirectory:
    async def resolve(uid: str) -> Wearer | None:
        return remote.get(uid)

    return BandDirectory(
        resolve,
        wall_of=lambda venue_time: venue_time.timestamp(),
        monotonic=lambda: clocks.mono,
        wall=lambda: clocks.wall,
    )


def event(which: str, at: float = WALL0 - 100, **fields: object) -> ipb.WatchIdentityEventsResponse:
    message = ipb.WatchIdentityEventsResponse()
    message.occurred_at.FromDatetime(datetime.fromtimestamp(at, UTC))
    getattr(message, which).CopyFrom(getattr(ipb, _MESSAGES[which])(**fields))
    return message


_MESSAGES = {
    "guest_created": "GuestCreated",
    "guest_updated": "GuestUpdated",
    "band_linked": "BandLinked",
    "band_deactivated": "BandDeactivated",
    "party_changed": "PartyChanged",
    "guest_erased": "GuestErased",
}


def seed(d: BandDirectory) -> None:
    d.apply(event("guest_created", guest_id="g1", party_id="p1", role=1, height_cm=150))
    d.apply(event("band_linked", band_id="b1", band_uid="UID-1", guest_id="g1", party_id="p1"))


async def test_not_trusted_until_the_replay_is_over() -> None:
    clocks = Clocks()
    remote = {"UID-1": Wearer("b1", "g1", "p1", False, 1, 150)}
    d = directory(clocks, remote)
    d.stream_opened()
    seed(d)
    # Replaying: identity's answer wins (here, a deactivation not yet replayed).
    assert not d.live
    assert (await d.wearer("UID-1")) == remote["UID-1"]
    clocks.mono += QUIET_SECONDS
    assert d.live
    found = await d.wearer("UID-1")
    assert found is not None and found.active and found.height_cm == 150
    d.stream_closed()
    assert not d.live


async def test_a_replay_that_has_not_begun_is_not_over() -> None:
    clocks = Clocks()
    d = directory(clocks, {})
    d.stream_opened()
    clocks.mono += 10 * QUIET_SECONDS
    assert not d.live
    seed(d)
    clocks.mono += QUIET_SECONDS
    assert d.live
    # Resuming after a drop, the map already holds history: quiet is enough.
    d.stream_closed()
    d.stream_opened(resuming=True)
    clocks.mono += QUIET_SECONDS
    assert d.live


async def test_an_event_written_after_the_stream_opened_ends_the_replay() -> None:
    clocks = Clocks()
    d = directory(clocks, {})
    d.stream_opened()
    seed(d)
    assert not d.live
    d.apply(event("guest_created", at=WALL0 + 1, guest_id="g9", party_id="p9", role=1))
    assert d.live


async def test_deactivation_and_erasure() -> None:
    clocks = Clocks()
    d = directory(clocks, {})
    seed(d)
    d.apply(event("band_deactivated", band_id="b1", band_uid="UID-1", guest_id="g1", reason=1))
    cached = d.cached("UID-1")
    assert cached is not None and not cached.active
    assert d.party_bands("p1") == [] and d.active_band_of("g1") is None
    d.apply(event("band_linked", band_id="b2", band_uid="UID-2", guest_id="g1", party_id="p1"))
    assert d.active_band_of("g1") == "b2"
    d.apply(event("guest_erased", guest_id="g1", party_id="p1"))
    assert d.cached("UID-2") is None and d.guest("g1") is None and not d.has_party("p1")


async def test_unknown_bands_ask_identity_and_are_not_cached() -> None:
    clocks = Clocks()
    remote = {"UID-7": Wearer("b7", "g7", "p7", True, 1, 0)}
    d = directory(clocks, remote)
    d.stream_opened()
    clocks.mono += QUIET_SECONDS
    assert (await d.wearer("UID-7")) == remote["UID-7"]
    assert d.cached("UID-7") is None and d.misses == 1
    assert (await d.wearer("NOPE")) is None


async def test_party_moves_and_guest_updates() -> None:
    clocks = Clocks()
    d = directory(clocks, {})
    seed(d)
    d.apply(event("guest_created", guest_id="g2", party_id="p2", role=1))
    d.apply(event("party_changed", party_id="p2", member_guest_ids=["g2", "g1"]))
    d.apply(event("party_changed", party_id="p1", member_guest_ids=[], removed_guest_ids=["g1"]))
    moved = d.cached("UID-1")
    assert moved is not None and moved.party_id == "p2"
    assert [w.band_id for w in d.party_bands("p2")] == ["b1"] and not d.has_party("p1")
    d.apply(event("guest_updated", guest_id="g1", party_id="p2", role=1, height_cm=101))
    updated = d.cached("UID-1")
    assert updated is not None and updated.height_cm == 101
