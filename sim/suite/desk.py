"""The ticket desk (and the online shop before it): each party is registered a
little before it arrives, as a desk clerk with a DESK staff token would do it.

For every party: the party is registered in one call (the first adult founds it,
the other adults and the children join it, every member's band is linked) and,
where the venue has gates, every member gets a ticket for today; the party's
wallet is topped up and its PIN set; a hotel party gets its room key; and an app
party's lead adult receives a one-time link code that signs the app in. Every
write carries an idempotency key.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from services.venue_model import AccessPointKind, Venue
from sim.frame import DayFrame
from sim.population import Member, Party
from sim.suite.calls import Caller
from sim.suite.channels import Stubs
from venue.access.v1 import access_pb2 as apb
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb

# Parties buy their tickets online days ahead: from the moment the suite is up the
# desk (the online shop) works through them in order of arrival as fast as the
# suite lets it, this many parties at a time. Identity's and access's writes are
# the bottleneck; more in flight only queues at their connection pools.
CONCURRENCY = 32


def wallet_budget_minor(venue: Venue, party: Party) -> int:
    """What the party loads onto its wallet: about three times its expected spend."""
    per_guest = sum(s.mean_minor_per_guest for s in venue.demand.spend)
    return max(10_000, 3 * per_guest * party.size)


class Desk:
    def __init__(
        self,
        stubs: Stubs,
        call: Caller,
        venue: Venue,
        frame: DayFrame,
        desk_token: str,
        run_tag: str,
        services: set[str],
    ) -> None:
        self.stubs = stubs
        self.call = call
        self.venue = venue
        self.frame = frame
        self.token = desk_token
        self.run = run_tag
        self.services = services
        self.sells_tickets = bool(venue.access_points_of_kind(AccessPointKind.PARK_ENTRY))
        self.registered = 0
        self.failed = 0
        # guest_id -> the guest's number in the day, for reading the twin's answers.
        self.guest_index: dict[str, int] = {}

    async def run_day(self, parties: list[Party], concurrency: int = CONCURRENCY) -> None:
        """Register every party in order of arrival; cancelled when the day is over."""
        gate = asyncio.Semaphore(concurrency)
        pending: set[asyncio.Task[None]] = set()
        try:
            for party in sorted(parties, key=lambda p: p.arrive_s):
                await gate.acquire()
                task = asyncio.ensure_future(self._one(party, gate))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.gather(*pending)
        finally:
            for task in list(pending):
                task.cancel()

    async def _one(self, party: Party, gate: asyncio.Semaphore) -> None:
        ok = False
        try:
            ok = await self.register(party)
        except asyncio.CancelledError:
            ok = True  # the day is over: not the desk's failure
            raise
        finally:
            gate.release()
            if ok:
                self.registered += party.registered
            else:
                self.failed += 1
                # The world sends them home instead of waiting for the desk.
                party.extra["desk_failed"] = True

    async def register(self, party: Party) -> bool:
        """The party, its members and their bands in one identity call (as a
        desk sells a family its bands), then tickets, wallet, room and app."""
        reply = await self.call(
            "identity.RegisterParty",
            self.stubs.identity.RegisterParty,
            ipb.RegisterPartyRequest(
                members=[_registration(m) for m in party.members],
                idempotency_key=self._key(f"party:{party.index}"),
            ),
            self.token,
        )
        if reply is None:
            return False
        party.party_id = reply.guests[0].party_id
        for member, guest in zip(party.members, reply.guests, strict=True):
            member.guest_id = guest.guest_id
            self.guest_index[member.guest_id] = member.index
        # Tickets let the party in; without a wallet or an app they come anyway
        # (the failed calls are in the report).
        needed = (
            [self._ticket(m) for m in party.members]
            if self.sells_tickets and "access" in self.services
            else []
        )
        extras = []
        if "access" in self.services:
            extras.append(self._wallet(party))
        if party.hotel_room and "access" in self.services:
            extras.append(self._room(party))
        if party.uses_app:
            extras.append(self._app(party))
        results = await asyncio.gather(*needed, *extras)
        party.registered = all(results[: len(needed)])
        return party.registered

    def _key(self, what: str) -> str:
        return f"desk:{self.run}:{what}"[:128]

    async def _ticket(self, member: Member) -> bool:
        day = self.frame.day
        reply = await self.call(
            "access.CreateEntitlement",
            self.stubs.access.CreateEntitlement,
            apb.CreateEntitlementRequest(
                guest_id=member.guest_id,
                park_ticket=apb.ParkTicket(
                    valid_dates=[common_pb2.VenueDate(year=day.year, month=day.month, day=day.day)],
                    days_allowed=1,
                ),
                external_ref=f"order-{self.run}-{member.party}",
                idempotency_key=self._key(f"ticket:{member.index}"),
            ),
            self.token,
        )
        return reply is not None

    async def _wallet(self, party: Party) -> bool:
        amount = common_pb2.Money(
            minor_units=wallet_budget_minor(self.venue, party), currency=self.venue.currency
        )
        topped = await self.call(
            "access.TopUp",
            self.stubs.access.TopUp,
            apb.TopUpRequest(
                party_id=party.party_id,
                amount=amount,
                funding_source=apb.FUNDING_SOURCE_CARD,
                payment_reference=f"card-{self.run}-{party.index}",
                idempotency_key=self._key(f"topup:{party.index}"),
            ),
            self.token,
        )
        pinned = await self.call(
            "access.SetPin",
            self.stubs.access.SetPin,
            apb.SetPinRequest(party_id=party.party_id, pin=party.pin),
            self.token,
        )
        return topped is not None and pinned is not None

    async def _room(self, party: Party) -> bool:
        assert party.hotel_room is not None
        hotel = next(
            h.id
            for h in self.venue.hotels()
            if h.hotel and any(r.id == party.hotel_room for r in h.hotel.rooms)
        )
        check_in = self.frame.instant(15 * 3600) - timedelta(days=1)
        check_out = self.frame.instant(11 * 3600) + timedelta(days=1)
        stay = common_pb2.TimeRange()
        stay.start.FromDatetime(check_in)
        stay.end.FromDatetime(check_out)
        reply = await self.call(
            "access.CreateEntitlement",
            self.stubs.access.CreateEntitlement,
            apb.CreateEntitlementRequest(
                guest_id=party.payer.guest_id,
                hotel_room_key=apb.HotelRoomKey(
                    hotel_id=hotel, room_id=party.hotel_room, stay=stay
                ),
                external_ref=f"stay-{self.run}-{party.index}",
                idempotency_key=self._key(f"room:{party.index}"),
            ),
            self.token,
        )
        return reply is not None

    async def _app(self, party: Party) -> bool:
        """The lead adult scans the desk's QR code: the app signs in with the code."""
        link = await self.call(
            "identity.CreateAppLink",
            self.stubs.identity.CreateAppLink,
            ipb.CreateAppLinkRequest(guest_id=party.payer.guest_id),
            self.token,
            # Safe to repeat: each call makes a fresh one-time code and only the
            # one that comes back is used (the others expire unused).
            retry=True,
        )
        if link is None:
            return False
        reply = await self.call(
            "identity.IssueToken",
            self.stubs.identity.IssueToken,
            ipb.IssueTokenRequest(app_link_code=ipb.AppLinkCode(link_code=link.link_code)),
        )
        if reply is None:
            return False
        party.app_token = reply.access_token
        return True


def _registration(member: Member) -> ipb.PartyMemberRegistration:
    return ipb.PartyMemberRegistration(
        display_name=member.name,
        height_cm=member.height_cm,
        consent=_consent(member),
        role=ipb.PARTY_ROLE_ADULT if member.adult else ipb.PARTY_ROLE_CHILD,
        band_uid=member.band_uid,
    )


def _consent(member: Member) -> ipb.Consent:
    c = member.consent
    return ipb.Consent(
        location_tracking=c.location, personalized_nudges=c.nudges, photo_linking=c.photos
    )
