"""Who belongs to which party, kept in memory from identity's event stream
(replayed from the start at every boot): bookings are made for members of one
party, and a guest may book only for their own.

The stream may lag the ticket desk: a party registered a moment ago can book
before its guests arrive here. A guest the directory does not know is looked up
in identity itself (`resolve`), so such a booking is answered at once and
correctly instead of NOT_FOUND or a wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from venue.identity.v1 import identity_pb2 as ipb

# Asks identity for a guest's party: None when identity has no such guest.
Lookup = Callable[[str], Awaitable[str | None]]


class PartyDirectory:
    def __init__(self, lookup: Lookup | None = None) -> None:
        self._party_of: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._lookup = lookup

    def party_of(self, guest_id: str) -> str | None:
        return self._party_of.get(guest_id)

    def members(self, party_id: str) -> set[str]:
        return set(self._members.get(party_id, ()))

    async def resolve(self, guest_ids: list[str]) -> dict[str, str | None]:
        """Each guest's party: from the stream, or from identity for the guests it
        has not brought yet (None: identity knows no such guest)."""
        found: dict[str, str | None] = {g: self._party_of.get(g) for g in guest_ids}
        missing = [g for g, party in found.items() if party is None]
        if missing and self._lookup is not None:
            answers = await asyncio.gather(*(self._lookup(g) for g in missing))
            for guest_id, party_id in zip(missing, answers, strict=True):
                # The stream wins: if it caught up meanwhile, its answer is newer.
                known = self._party_of.get(guest_id)
                if known is None and party_id is not None:
                    self._join(guest_id, party_id)
                found[guest_id] = known or party_id
        return found

    def _join(self, guest_id: str, party_id: str) -> None:
        previous = self._party_of.get(guest_id)
        if previous is not None and previous != party_id:
            self._members.get(previous, set()).discard(guest_id)
        self._party_of[guest_id] = party_id
        self._members.setdefault(party_id, set()).add(guest_id)

    def _leave(self, guest_id: str) -> None:
        party_id = self._party_of.pop(guest_id, None)
        if party_id is not None:
            self._members.get(party_id, set()).discard(guest_id)

    def apply(self, event: ipb.WatchIdentityEventsResponse) -> str | None:
        """Apply one identity event; returns the guest id if it erased a guest."""
        which = event.WhichOneof("event")
        if which == "guest_created":
            self._join(event.guest_created.guest_id, event.guest_created.party_id)
        elif which == "guest_updated":
            self._join(event.guest_updated.guest_id, event.guest_updated.party_id)
        elif which == "party_changed":
            change = event.party_changed
            for guest_id in change.removed_guest_ids:
                if self._party_of.get(guest_id) == change.party_id:
                    self._leave(guest_id)
            for guest_id in change.member_guest_ids:
                self._join(guest_id, change.party_id)
        elif which == "guest_erased":
            self._leave(event.guest_erased.guest_id)
            return event.guest_erased.guest_id
        return None
