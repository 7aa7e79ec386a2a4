"""Who wears which band, in which party, with which consent: an in-memory copy
of what identity's event stream says, so ingest resolves bands without a call.

Rebuilt from the start of identity's stream at every boot. Applying an event
twice is harmless: every handler sets state rather than adding to it.

Privacy: a guest without location consent keeps a slot (so they can be counted)
but the slot is only a number: it is never stored, never published, and the
guest's reads are never kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from google.protobuf.timestamp_pb2 import Timestamp

from services.location.placement import NEVER, Placement
from venue.identity.v1 import identity_pb2 as ipb

# slot_of_band values that are not slots.
DEACTIVATED = -2
UNKNOWN = -1


def millis(ts: Timestamp) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000


@dataclass(frozen=True, slots=True)
class GuestRef:
    slot: int
    guest_id: str
    party_id: str
    consenting: bool


class Directory:
    def __init__(self, placement: Placement) -> None:
        self._placement = placement
        self._g = placement.guests
        # band UID -> slot, or DEACTIVATED. The ingest hot path reads it directly.
        self.slot_of_band: dict[str, int] = {}
        self._slot_of_guest: dict[str, int] = {}
        self._guest_of_slot: list[str] = []
        self._party_of_slot: list[str] = []
        self._bands_of_slot: list[set[str]] = []
        self._members: dict[str, set[int]] = {}
        # Erased guests never come back, whatever a later event names them in.
        self._erased: set[str] = set()

    def __len__(self) -> int:
        return len(self._slot_of_guest)

    # --- queries -------------------------------------------------------------------

    def guest(self, guest_id: str) -> GuestRef | None:
        slot = self._slot_of_guest.get(guest_id)
        return None if slot is None else self._ref(slot)

    def guest_at(self, slot: int) -> GuestRef:
        return self._ref(slot)

    def party(self, party_id: str) -> list[GuestRef]:
        """Members of a party, ordered by guest id."""
        refs = [self._ref(slot) for slot in self._members.get(party_id, ())]
        return sorted(refs, key=lambda ref: ref.guest_id)

    def guest_id(self, slot: int) -> str:
        return self._guest_of_slot[slot]

    def party_id(self, slot: int) -> str:
        return self._party_of_slot[slot]

    def consenting(self, slot: int) -> bool:
        return bool(self._g.consent_since[slot] != NEVER)

    def _ref(self, slot: int) -> GuestRef:
        return GuestRef(
            slot, self._guest_of_slot[slot], self._party_of_slot[slot], self.consenting(slot)
        )

    # --- events ---------------------------------------------------------------------

    def apply(self, event: ipb.WatchIdentityEventsResponse) -> None:
        which = event.WhichOneof("event")
        handler = self._HANDLERS.get(which or "")
        if handler is not None:
            handler(self, event)

    def _guest_created(self, event: ipb.WatchIdentityEventsResponse) -> None:
        created = event.guest_created
        slot = self._slot(created.guest_id)
        if slot >= 0:
            self._set_party(slot, created.party_id)
            if created.consent.location_tracking and not self.consenting(slot):
                # Consent from the start: no earlier read is off limits.
                self._set_consent(slot, 0)

    def _guest_updated(self, event: ipb.WatchIdentityEventsResponse) -> None:
        slot = self._slot(event.guest_updated.guest_id)
        if slot >= 0:
            self._set_party(slot, event.guest_updated.party_id)

    def _band_linked(self, event: ipb.WatchIdentityEventsResponse) -> None:
        slot = self._slot(event.band_linked.guest_id)
        if slot >= 0:
            self._link(event.band_linked.band_uid, slot)

    def _band_deactivated(self, event: ipb.WatchIdentityEventsResponse) -> None:
        self._unlink(event.band_deactivated.band_uid)

    def _consent_changed(self, event: ipb.WatchIdentityEventsResponse) -> None:
        slot = self._slot(event.consent_changed.guest_id)
        if slot < 0:
            return
        wanted = event.consent_changed.consent.location_tracking
        if wanted and not self.consenting(slot):
            self._set_consent(slot, millis(event.occurred_at))
        elif not wanted and self.consenting(slot):
            self._set_consent(slot, NEVER)

    def _party_changed(self, event: ipb.WatchIdentityEventsResponse) -> None:
        changed = event.party_changed
        for guest_id in changed.member_guest_ids:
            slot = self._slot(guest_id)
            if slot >= 0:
                self._set_party(slot, changed.party_id)
        for guest_id in changed.removed_guest_ids:
            slot = self._slot_of_guest.get(guest_id, -1)
            if slot >= 0 and self._party_of_slot[slot] == changed.party_id:
                self._set_party(slot, "")

    def _guest_erased(self, event: ipb.WatchIdentityEventsResponse) -> None:
        self._erase(event.guest_erased.guest_id)

    _HANDLERS: ClassVar[dict[str, Callable[[Directory, ipb.WatchIdentityEventsResponse], None]]] = {
        "guest_created": _guest_created,
        "guest_updated": _guest_updated,
        "band_linked": _band_linked,
        "band_deactivated": _band_deactivated,
        "consent_changed": _consent_changed,
        "party_changed": _party_changed,
        "guest_erased": _guest_erased,
    }

    def _slot(self, guest_id: str) -> int:
        """The guest's slot, made on first mention; -1 for an erased guest."""
        slot = self._slot_of_guest.get(guest_id)
        if slot is None:
            if guest_id in self._erased or not guest_id:
                return -1
            slot = self._g.add()
            self._slot_of_guest[guest_id] = slot
            self._guest_of_slot.append(guest_id)
            self._party_of_slot.append("")
            self._bands_of_slot.append(set())
        return slot

    def _set_party(self, slot: int, party_id: str) -> None:
        old = self._party_of_slot[slot]
        if old == party_id:
            return
        if old:
            members = self._members.get(old)
            if members is not None:
                members.discard(slot)
                if not members:
                    del self._members[old]
        self._party_of_slot[slot] = party_id
        if party_id:
            self._members.setdefault(party_id, set()).add(slot)

    def _set_consent(self, slot: int, since_ms: int) -> None:
        g = self._g
        g.consent_since[slot] = since_ms
        g.epoch[slot] += 1
        # Reads kept under one consent are never joined with reads of another.
        g.track[slot] = 0
        if since_ms == NEVER:
            # Still counted, never shown: the guest silently drops off the map.
            g.shown_zone[slot] = -1

    def _link(self, uid: str, slot: int) -> None:
        previous = self.slot_of_band.get(uid, UNKNOWN)
        if previous >= 0 and previous != slot:
            self._drop_band(previous, uid)
        self.slot_of_band[uid] = slot
        self._bands_of_slot[slot].add(uid)
        self._g.countable[slot] = True

    def _unlink(self, uid: str) -> None:
        previous = self.slot_of_band.get(uid, UNKNOWN)
        self.slot_of_band[uid] = DEACTIVATED
        if previous >= 0:
            self._drop_band(previous, uid)

    def _drop_band(self, slot: int, uid: str) -> None:
        bands = self._bands_of_slot[slot]
        bands.discard(uid)
        if not bands:
            # No band left to hear: stop counting the guest now, not when they
            # would have gone unheard for long.
            self._g.countable[slot] = False
            self._placement.unplace(slot, silently=False)

    def _erase(self, guest_id: str) -> None:
        self._erased.add(guest_id)
        slot = self._slot_of_guest.pop(guest_id, None)
        if slot is None:
            return
        for uid in self._bands_of_slot[slot]:
            self.slot_of_band[uid] = DEACTIVATED
        self._bands_of_slot[slot] = set()
        self._set_party(slot, "")
        self._set_consent(slot, NEVER)
        self._g.countable[slot] = False
        self._placement.unplace(slot, silently=True)
        self._guest_of_slot[slot] = ""
