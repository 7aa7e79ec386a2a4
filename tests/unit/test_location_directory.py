"""The directory built from identity's events: bands to guests, parties,
consent, erasure; applying the stream twice changes nothing."""

from __future__ import annotations

from functools import cache

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- properties: identity's stream interleaved with reads -------------------------------

GUESTS = [f"g{i:07d}" for i in range(3)]
BANDS = [f"BAND-P{i}" for i in range(4)]
# Where every history starts: guests in the park, one of them not tracked.
START = [
    created(GUESTS[0], "p0"),
    linked(GUESTS[0], BANDS[0]),
    created(GUESTS[1], "p0", tracking=False),
    linked(GUESTS[1], BANDS[1]),
    created(GUESTS[2], "p1"),
    linked(GUESTS[2], BANDS[2]),
]


def _event(draw: st.DrawFn, ms: int) -> E:
    guest = draw(st.sampled_from(GUESTS))
    kinds = ["created", "linked", "deactivated", "consent", "consent", "party", "erased"]
    kind = draw(st.sampled_from(kinds))
    if kind == "created":
        return created(guest, draw(st.sampled_from(["p0", "p1"])), draw(st.booleans()))
    if kind == "linked":
        return linked(guest, draw(st.sampled_from(BANDS)))
    if kind == "deactivated":
        return deactivated(guest, draw(st.sampled_from(BANDS)))
    if kind == "consent":
        return consent(guest, draw(st.booleans()), ms)
    if kind == "party":
        return E(party_changed=ipb.PartyChanged(party_id="p1", member_guest_ids=[guest]))
    return E(guest_erased=ipb.GuestErased(guest_id=guest))


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_through_any_identity_history_guests_are_counted_once_and_shown_only_with_consent(
    data: st.DataObject,
) -> None:
    """Identity's events (each delivered once or twice) interleaved with reads
    and ticks: every countable guest is in one zone or none; an erased guest or
    one without consent is never in a move, nor shown; an erased guest is never
    counted again; and a second delivery of any event changes nothing."""
    t = topology()
    directory, placement = fresh()
    twice, placement2 = fresh()
    apply(directory, START)
    apply(twice, START)
    g = placement.guests
    now = T0
    erased: set[str] = set()
    for _ in range(data.draw(st.integers(1, 20), label="steps")):
        step = data.draw(st.sampled_from(["event", "reads", "reads", "time"]))
        if step == "event":
            event = data.draw(st.composite(_event)(now))
            directory.apply(event)
            twice.apply(event)
            twice.apply(event)
            if event.HasField("guest_erased"):
                erased.add(event.guest_erased.guest_id)
        elif step == "reads":
            rows = data.draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(BANDS),
                        st.integers(0, t.reader_count - 1),
                        st.integers(now - 20_000, now),
                        st.integers(-100, -30),
                    ),
                    min_size=1,
                    max_size=12,
                )
            )
            for d, p in ((directory, placement), (twice, placement2)):
                # As ingest does: only bands that resolve to a slot are read.
                good = [(d.slot_of_band.get(b, -1), r, a, s) for b, r, a, s in rows]
                good = [row for row in good if row[0] >= 0]
                if good:
                    cols = list(zip(*good, strict=True))
                    p.observe(
                        np.array(cols[0], dtype=np.int64),
                        np.array(cols[1], dtype=np.int32),
                        np.array(cols[2], dtype=np.int64),
                        np.array(cols[3], dtype=np.int32),
                    )
        else:
            now += data.draw(st.integers(0, 700_000))
        result, result2 = placement.tick(now), placement2.tick(now)
        n = g.size
        zone = g.zone[:n]
        placed = zone >= 0
        assert not (placed & ~g.countable[:n]).any()
        assert np.array_equal(
            result.counts, np.bincount(zone[placed], minlength=t.zone_count) @ t.rollup
        )
        for move in result.moves:
            assert directory.consenting(move.slot)
            assert directory.guest_id(move.slot) not in erased
        hidden = g.consent_since[:n] == NEVER
        assert (g.shown_zone[:n][hidden] == NOWHERE).all()
        for guest_id in erased:
            assert directory.guest(guest_id) is None
        # A second delivery of every event: the very same state and output.
        assert directory.slot_of_band == twice.slot_of_band
        assert np.array_equal(zone, placement2.guests.zone[:n])
        assert np.array_equal(g.consent_since[:n], placement2.guests.consent_since[:n])
        assert np.array_equal(result.counts, result2.counts)
        assert [(m.slot, m.to_zone) for m in result.moves] == [
            (m.slot, m.to_zone) for m in result2.moves
        ]
        for party in ("p0", "p1"):
            assert directory.party(party) == twice.party(party)
