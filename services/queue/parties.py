"""Who belongs to which party, kept in memory from identity's event stream
(replayed from the start at every boot): bookings are made for members of one
party, and a guest may book only for their own."""

from __future__ import annotations

import asyncio

from venue.identity.v1 import identity_pb2 as ipb


class PartyDirectory:
    def __init__(self) -> None:
        self._party_of: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._changed = asyncio.Event()

    def party_of(self, guest_id: str) -> str | None:
        return self._party_of.get(guest_id)

    def members(self, party_id: str) -> set[str]:
        return set(self._members.get(party_id, ()))

    async def wait_for(self, guest_ids: list[str], timeout: float) -> None:
        """Give the stream a moment to catch up with guests created just now."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(g not in self._party_of for g in guest_ids):
            left = deadline - loop.time()
            if left <= 0:
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return

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
            self._changed.set()
            return event.guest_erased.guest_id
        else:
            return None
        self._changed.set()
        return None
