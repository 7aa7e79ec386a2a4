"""The directory built from identity's events: bands to guests, parties,
consent, erasure; applying the stream twice changes nothing."""

from __future__ import annotations

from functools import cache

import numpy as np

from services.location.directory import DEACTIVATED, Directory
from services.location.placement import NEVER, NOWHERE, Placement
from services.location.topology import Topology, build
from services.platform.config import DEFAULT_VENUE_FILE
from services.venue_model import load_venue
from venue.identity.v1 import identity_pb2 as ipb

E = ipb.WatchIdentityEventsResponse
ANN, BOB, KID = "a" * 8, "b" * 8, "c" * 8
T0 = 1_780_000_000_000


@cache
def topology() -> Topology:
    return build(load_venue(DEFAULT_VENUE_FILE))


def at(event: E, ms: int) -> E:
    event.occurred_at.FromMilliseconds(ms)
    return event


def created(guest: str, party: str, tracking: bool = True) -> E:
    return E(
        guest_created=ipb.GuestCreated(
            guest_id=guest, party_id=party, consent=ipb.Consent(location_tracking=tracking)
        )
    )


def linked(guest: str, uid: str) -> E:
    return E(band_linked=ipb.BandLinked(band_uid=uid, guest_id=guest))


def deactivated(guest: str, uid: str) -> E:
    return E(band_deactivated=ipb.BandDeactivated(band_uid=uid, guest_id=guest))


def consent(guest: str, tracking: bool, ms: int) -> E:
    return at(
        E(
            consent_changed=ipb.ConsentChanged(
                guest_id=guest, consent=ipb.Consent(location_tracking=tracking)
            )
        ),
        ms,
    )


def fresh() -> tuple[Directory, Placement]:
    placement = Placement(topology(), 600_000, 120_000)
    return Directory(placement), placement


def apply(directory: Directory, events: list[E]) -> None:
    for event in events:
        directory.apply(event)


HISTORY = [
    created(ANN, "p1"),
    created(BOB, "p2", tracking=False),
    linked(ANN, "BAND-A"),
    linked(BOB, "BAND-B"),
    E(party_changed=ipb.PartyChanged(party_id="p1", member_guest_ids=[ANN, BOB])),
    created(KID, "p1"),
    linked(KID, "BAND-K"),
]


def test_bands_resolve_to_slots_and_parties_list_their_members() -> None:
    directory, placement = fresh()
    apply(directory, HISTORY)
    ann, bob = directory.guest(ANN), directory.guest(BOB)
    assert ann is not None and bob is not None
    assert directory.slot_of_band["BAND-A"] == ann.slot
    assert directory.slot_of_band["BAND-B"] == bob.slot
    assert [m.guest_id for m in directory.party("p1")] == [ANN, BOB, KID]
    assert directory.party("p2") == []
    assert ann.consenting and not bob.consenting
    assert placement.guests.countable[bob.slot]


def test_replaying_the_stream_changes_nothing() -> None:
    once, p1 = fresh()
    apply(once, HISTORY)
    twice, p2 = fresh()
    apply(twice, HISTORY)
    apply(twice, HISTORY)
    assert once.slot_of_band == twice.slot_of_band
    assert [m.guest_id for m in once.party("p1")] == [m.guest_id for m in twice.party("p1")]
    n = p1.guests.size
    assert p2.guests.size == n
    assert np.array_equal(p1.guests.consent_since[:n], p2.guests.consent_since[:n])


def test_a_deactivated_last_band_stops_counting_the_guest() -> None:
    directory, placement = fresh()
    apply(directory, HISTORY)
    slot = directory.slot_of_band["BAND-A"]
    placement.guests.zone[slot] = 3
    directory.apply(deactivated(ANN, "BAND-A"))
    assert directory.slot_of_band["BAND-A"] == DEACTIVATED
    assert not placement.guests.countable[slot]
    assert placement.guests.zone[slot] == NOWHERE
    # A replacement band counts them again.
    directory.apply(linked(ANN, "BAND-A2"))
    assert placement.guests.countable[slot]


def test_withdrawn_consent_hides_the_guest_at_once_and_keeps_counting_them() -> None:
    directory, placement = fresh()
    apply(directory, HISTORY)
    slot = directory.slot_of_band["BAND-A"]
    g = placement.guests
    g.zone[slot] = g.shown_zone[slot] = 3
    g.track[slot] = 42
    directory.apply(consent(ANN, False, T0))
    assert g.consent_since[slot] == NEVER
    assert g.shown_zone[slot] == NOWHERE
    assert g.zone[slot] == 3
    assert g.track[slot] == 0
    # Given again: shown only from reads after the moment it was given.
    directory.apply(consent(ANN, True, T0 + 5000))
    assert g.consent_since[slot] == T0 + 5000


def test_an_erased_guest_is_gone_and_stays_gone() -> None:
    directory, placement = fresh()
    apply(directory, HISTORY)
    slot = directory.slot_of_band["BAND-A"]
    placement.guests.zone[slot] = 3
    directory.apply(E(guest_erased=ipb.GuestErased(guest_id=ANN, party_id="p1")))
    assert directory.guest(ANN) is None
    assert directory.slot_of_band["BAND-A"] == DEACTIVATED
    assert placement.guests.zone[slot] == NOWHERE
    assert not placement.guests.countable[slot]
    assert [m.guest_id for m in directory.party("p1")] == [BOB, KID]
    # Events that still name the guest bring nothing back.
    apply(directory, [linked(ANN, "BAND-A3"), consent(ANN, True, T0)])
    assert directory.guest(ANN) is None
    assert "BAND-A3" not in directory.slot_of_band


def test_leaving_a_party_moves_the_guest() -> None:
    directory, _ = fresh()
    apply(directory, HISTORY)
    directory.apply(
        E(
            party_changed=ipb.PartyChanged(
                party_id="p1", member_guest_ids=[ANN, KID], removed_guest_ids=[BOB]
            )
        )
    )
    directory.apply(E(party_changed=ipb.PartyChanged(party_id="p9", member_guest_ids=[BOB])))
    assert [m.guest_id for m in directory.party("p1")] == [ANN, KID]
    bob = directory.guest(BOB)
    assert bob is not None and bob.party_id == "p9"
