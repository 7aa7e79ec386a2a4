"""The ticket desk (and the online shop before it): parties buy their visit days
ahead, so the desk registers them from the moment the suite is up, long before
they arrive, as a desk clerk with a DESK staff token would.

For every party: the party is registered in one identity call (the first adult
founds it, the other adults and the children join it, every member's band is
linked; parties of one adult alone are registered in bulk); then one access call
sets up its visit: where the venue has gates, every member's ticket for today, a
hotel party's room key, the wallet's top-up and its PIN; and an app party's lead
adult receives a one-time link code that signs the app in. Every write carries
an idempotency key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
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
# Parties registered together before their visits are set up; the single adults
# among them are registered in one call.
BATCH = 100
# Wall seconds a batch's set-ups wait after its registrations, for access to hear
# of the new guests on identity's stream (or else it asks identity about each).
SETTLE_WALL_S = 0.5


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
        """Register every party in order of arrival; cancelled when the day is over.

        A batch of parties at a time: first every party of the batch is registered
        with identity (the parties of one adult alone in bulk, as identity allows:
        RegisterGuests, each founding a party of one; every other party with one
        RegisterParty), then, while the next batch is being registered, each party
        of this one has its visit set up with access. By then access has heard of
        the new guests on identity's stream and need not ask identity about them."""
        gate = asyncio.Semaphore(concurrency)
        setting_up: set[asyncio.Task[None]] = set()
        ordered = sorted(parties, key=lambda p: p.arrive_s)
        try:
            for first in range(0, len(ordered), BATCH):
                chunk = ordered[first : first + BATCH]
                singles = [p for p in chunk if p.size == 1]
                jobs: list[Awaitable[object]] = [
                    self._register_party(p, gate) for p in chunk if p.size > 1
                ]
                if singles:
                    jobs.append(self._singles(singles, first, gate))
                await asyncio.gather(*jobs)
                done = [p for p in chunk if p.party_id and not p.extra.get("desk_failed")]
                task = asyncio.ensure_future(self._set_up_all(done, gate))
                setting_up.add(task)
                task.add_done_callback(setting_up.discard)
            if setting_up:
                await asyncio.gather(*setting_up)
        finally:
            for task in list(setting_up):
                task.cancel()

    async def _set_up_all(self, parties: list[Party], gate: asyncio.Semaphore) -> None:
        await asyncio.sleep(SETTLE_WALL_S)
        await asyncio.gather(*(self._finish_one(p, gate) for p in parties))

    async def _singles(self, parties: list[Party], first: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            reply = await self.call(
                "identity.RegisterGuests",
                self.stubs.identity.RegisterGuests,
                ipb.RegisterGuestsRequest(
                    guests=[_single(p.payer) for p in parties],
                    idempotency_key=self._key(f"singles:{first}"),
                ),
                self.token,
            )
        if reply is None:
            for party in parties:
                self._failed(party)
            return
        for party, guest in zip(parties, reply.guests, strict=True):
            self._registered(party, [guest])

    async def _finish_one(self, party: Party, gate: asyncio.Semaphore) -> None:
        async with gate:
            await self._finish([party])

    async def _finish(self, parties: list[Party]) -> None:
        for party in parties:
            ok = False
            try:
                ok = await self.set_up(party)
            except asyncio.CancelledError:
                ok = True  # the day is over: not the desk's failure
                raise
            finally:
                if ok:
                    self.registered += party.registered
                else:
                    self._failed(party)

    def _failed(self, party: Party) -> None:
        self.failed += 1
        # The world sends them home instead of waiting for the desk.
        party.extra["desk_failed"] = True

    def _registered(self, party: Party, guests: list[ipb.Guest]) -> None:
        party.party_id = guests[0].party_id
        for member, guest in zip(party.members, guests, strict=True):
            member.guest_id = guest.guest_id
            self.guest_index[member.guest_id] = member.index

    async def register(self, party: Party) -> bool:
        """One party from start to finish (a walk-up at the desk)."""
        if not await self._register_party(party, asyncio.Semaphore(1)):
            return False
        return await self.set_up(party)

    async def _register_party(self, party: Party, gate: asyncio.Semaphore) -> bool:
        """The party, its members and their bands in one identity call (as a
        desk sells a family its bands)."""
        async with gate:
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
            self._failed(party)
            return False
        self._registered(party, list(reply.guests))
        return True

    async def set_up(self, party: Party) -> bool:
        """Tickets, room key, wallet top-up and PIN in one access call; the app's
        sign-in beside it. Tickets let the party in; without a wallet or an app
        they come anyway (the failed calls are in the report)."""
        calls = []
        if "access" in self.services:
            calls.append(self._access(party))
        if party.uses_app:
            calls.append(self._app(party))
        results = await asyncio.gather(*calls)
        party.registered = bool(results[0]) if "access" in self.services else True
        if not self.sells_tickets:
            party.registered = True
        return party.registered

    def _key(self, what: str) -> str:
        return f"desk:{self.run}:{what}"[:128]

    async def _access(self, party: Party) -> bool:
        day = self.frame.day
        request = apb.SetUpPartyRequest(
            party_id=party.party_id,
            top_up=common_pb2.Money(
                minor_units=wallet_budget_minor(self.venue, party), currency=self.venue.currency
            ),
            funding_source=apb.FUNDING_SOURCE_CARD,
            payment_reference=f"card-{self.run}-{party.index}",
            pin=party.pin,
            external_ref=f"order-{self.run}-{party.index}",
            idempotency_key=self._key(f"setup:{party.index}"),
        )
        if self.sells_tickets:
            request.ticket_guest_ids.extend(m.guest_id for m in party.members)
            request.park_ticket.CopyFrom(
                apb.ParkTicket(
                    valid_dates=[common_pb2.VenueDate(year=day.year, month=day.month, day=day.day)],
                    days_allowed=1,
                )
            )
        if party.hotel_room:
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
            request.room_key_guest_id = party.payer.guest_id
            request.hotel_room_key.CopyFrom(
                apb.HotelRoomKey(hotel_id=hotel, room_id=party.hotel_room, stay=stay)
            )
        reply = await self.call(
            "access.SetUpParty", self.stubs.access.SetUpParty, request, self.token
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


def _single(member: Member) -> ipb.GuestRegistration:
    return ipb.GuestRegistration(
        display_name=member.name,
        height_cm=member.height_cm,
        consent=_consent(member),
        band_uid=member.band_uid,
    )


def _consent(member: Member) -> ipb.Consent:
    c = member.consent
    return ipb.Consent(
        location_tracking=c.location, personalized_nudges=c.nudges, photo_linking=c.photos
    )
