"""Who is in which party, who is an adult, and what each guest consented to:
kept in memory from identity's stream (replayed from its start at every boot),
so that deciding a nudge never waits on identity.

Until a guest's consent is known, it is treated as not given: nothing but the
service messages they asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from venue.identity.v1 import identity_pb2 as ipb

ADULT = ipb.PARTY_ROLE_ADULT


@dataclass(slots=True)
class Member:
    guest_id: str
    party_id: str
    role: int = ADULT
    nudges: bool = False
    location: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """What an identity event changed, for the itinerary to act on."""

    guest_id: str = ""
    party_id: str = ""
    nudges_off: bool = False
    location_off: bool = False
    erased: bool = False


class Directory:
    def __init__(self) -> None:
        self._guests: dict[str, Member] = {}
        self._parties: dict[str, set[str]] = {}
        self.erased: set[str] = set()

    def __len__(self) -> int:
        return len(self._guests)

    def member(self, guest_id: str) -> Member | None:
        return self._guests.get(guest_id)

    def party_of(self, guest_id: str) -> str:
        member = self._guests.get(guest_id)
        return member.party_id if member else ""

    def members(self, party_id: str) -> list[str]:
        return sorted(self._parties.get(party_id, ()))

    def adults(self, party_id: str) -> list[str]:
        return [g for g in self.members(party_id) if self._guests[g].role == ADULT]

    def is_adult(self, guest_id: str) -> bool:
        member = self._guests.get(guest_id)
        return member is not None and member.role == ADULT

    def nudges_allowed(self, guest_id: str) -> bool:
        member = self._guests.get(guest_id)
        return member is not None and member.nudges

    def location_allowed(self, guest_id: str) -> bool:
        member = self._guests.get(guest_id)
        return member is not None and member.location

    def recipients(self, party_id: str, guest_ids: tuple[str, ...] = ()) -> list[str]:
        """The adults a party message goes to: those among `guest_ids` (the
        members it concerns) when there are any, else all the party's adults."""
        adults = self.adults(party_id)
        if guest_ids:
            chosen = [g for g in adults if g in guest_ids]
            if chosen:
                return chosen
        return adults

    def learn(self, guest_id: str, party_id: str, role: int, nudges: bool, location: bool) -> None:
        """A guest seen outside the stream (a GetGuest answer while catching up)."""
        if guest_id in self.erased:
            return
        self._put(Member(guest_id, party_id, role or ADULT, nudges, location))

    def _put(self, member: Member) -> None:
        old = self._guests.get(member.guest_id)
        if old is not None and old.party_id != member.party_id:
            self._parties.get(old.party_id, set()).discard(member.guest_id)
        self._guests[member.guest_id] = member
        self._parties.setdefault(member.party_id, set()).add(member.guest_id)

    def apply(self, event: ipb.WatchIdentityEventsResponse) -> Change:
        which = event.WhichOneof("event")
        handler = getattr(self, f"_on_{which}", None) if which else None
        if handler is None or which is None:
            return Change()
        change: Change = handler(getattr(event, which))
        return change

    def _on_guest_created(self, e: ipb.GuestCreated) -> Change:
        if e.guest_id in self.erased:
            return Change()
        self._put(
            Member(
                e.guest_id,
                e.party_id,
                e.role or ADULT,
                e.consent.personalized_nudges,
                e.consent.location_tracking,
            )
        )
        return Change(e.guest_id, e.party_id)

    def _on_guest_updated(self, u: ipb.GuestUpdated) -> Change:
        member = self._guests.get(u.guest_id)
        if member is None:
            return Change()
        member.role = u.role or member.role
        if u.party_id and u.party_id != member.party_id:
            self._put(Member(u.guest_id, u.party_id, member.role, member.nudges, member.location))
        return Change(u.guest_id, u.party_id)

    def _on_consent_changed(self, c: ipb.ConsentChanged) -> Change:
        member = self._guests.get(c.guest_id)
        if member is None:
            return Change()
        nudges_off = member.nudges and not c.consent.personalized_nudges
        location_off = member.location and not c.consent.location_tracking
        member.nudges = c.consent.personalized_nudges
        member.location = c.consent.location_tracking
        return Change(c.guest_id, member.party_id, nudges_off, location_off)

    def _on_party_changed(self, p: ipb.PartyChanged) -> Change:
        for guest_id in p.removed_guest_ids:
            self._parties.get(p.party_id, set()).discard(guest_id)
        for guest_id in p.member_guest_ids:
            member = self._guests.get(guest_id)
            if member is not None and member.party_id != p.party_id:
                self._put(Member(guest_id, p.party_id, member.role, member.nudges, member.location))
        return Change(party_id=p.party_id)

    def _on_guest_erased(self, g: ipb.GuestErased) -> Change:
        member = self._guests.pop(g.guest_id, None)
        if member is not None:
            self._parties.get(member.party_id, set()).discard(g.guest_id)
        self.erased.add(g.guest_id)
        return Change(g.guest_id, g.party_id, True, True, True)
