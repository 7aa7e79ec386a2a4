"""The party directory: identity's stream first, identity itself for the guests
the stream has not brought yet (a party registered just before it books)."""

from __future__ import annotations

from services.queue.parties import PartyDirectory
from venue.identity.v1 import identity_pb2 as ipb


class IdentityBook:
    """What identity knows, and who was asked about."""

    def __init__(self, parties: dict[str, str]) -> None:
        self.parties = parties
        self.asked: list[str] = []

    async def party_of(self, guest_id: str) -> str | None:
        self.asked.append(guest_id)
        return self.parties.get(guest_id)


def created(guest_id: str, party_id: str) -> ipb.WatchIdentityEventsResponse:
    return ipb.WatchIdentityEventsResponse(
        guest_created=ipb.GuestCreated(guest_id=guest_id, party_id=party_id)
    )


async def test_a_guest_the_stream_has_not_brought_is_looked_up_once() -> None:
    identity = IdentityBook({"g1": "p1", "g2": "p1"})
    directory = PartyDirectory(identity.party_of)
    directory.apply(created("g1", "p1"))
    assert await directory.resolve(["g1", "g2"]) == {"g1": "p1", "g2": "p1"}
    assert identity.asked == ["g2"]
    # Learned: the next booking asks nobody, and the party knows its member.
    assert await directory.resolve(["g2"]) == {"g2": "p1"}
    assert identity.asked == ["g2"]
    assert directory.members("p1") == {"g1", "g2"}


async def test_a_guest_identity_does_not_know_resolves_to_none() -> None:
    identity = IdentityBook({})
    directory = PartyDirectory(identity.party_of)
    assert await directory.resolve(["ghost"]) == {"ghost": None}
    assert directory.party_of("ghost") is None


async def test_the_stream_wins_over_a_lookup_that_raced_it() -> None:
    directory = PartyDirectory()

    async def late_lookup(guest_id: str) -> str | None:
        # The stream moves the guest to p2 while the lookup (answering p1) is out.
        directory.apply(created(guest_id, "p2"))
        return "p1"

    directory._lookup = late_lookup
    assert await directory.resolve(["g"]) == {"g": "p2"}
    assert directory.party_of("g") == "p2"


async def test_without_a_lookup_only_the_stream_answers() -> None:
    directory = PartyDirectory()
    assert await directory.resolve(["g"]) == {"g": None}
    directory.apply(created("g", "p"))
    directory.apply(ipb.WatchIdentityEventsResponse(guest_erased=ipb.GuestErased(guest_id="g")))
    assert await directory.resolve(["g"]) == {"g": None}
