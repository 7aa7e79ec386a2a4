"""The ticket desk's calls, against recording stand-ins for identity and access: each
party is registered before its visit is set up, single adults are registered in
bulk, and one SetUpParty carries every member's ticket, the room key, the top-up
and the PIN."""

from __future__ import annotations

import asyncio
import itertools
from datetime import date
from types import SimpleNamespace
from typing import Any, cast

from services.platform.config import ROOT
from services.venue_model import load_venue
from sim.config import WorldConfig
from sim.day import make_population
from sim.frame import DayFrame
from sim.suite import desk as desk_module
from sim.suite.calls import Caller
from sim.suite.channels import Stubs
from sim.suite.desk import Desk
from sim.suite.stats import CallStats
from venue.access.v1 import access_pb2 as apb
from venue.identity.v1 import identity_pb2 as ipb

VENUE = load_venue(ROOT / "venues" / "lantern-bay-park.yaml")
DAY = date(2026, 7, 4)


class Recorder:
    """identity and access as far as the desk uses them, recording each call."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self._ids = itertools.count(1)
        # party_id -> where in the log the party was registered.
        self.registered_at: dict[str, int] = {}

    def _guest(self, party_id: str) -> ipb.Guest:
        self.registered_at.setdefault(party_id, len(self.log) - 1)
        return ipb.Guest(guest_id=f"g{next(self._ids)}", party_id=party_id)

    async def RegisterParty(self, request: ipb.RegisterPartyRequest, **_: Any) -> Any:
        self.log.append(("RegisterParty", request))
        party = f"p{next(self._ids)}"
        return ipb.RegisterPartyResponse(guests=[self._guest(party) for _ in request.members])

    async def RegisterGuests(self, request: ipb.RegisterGuestsRequest, **_: Any) -> Any:
        self.log.append(("RegisterGuests", request))
        return ipb.RegisterGuestsResponse(
            guests=[self._guest(f"p{next(self._ids)}") for _ in request.guests]
        )

    async def CreateAppLink(self, request: ipb.CreateAppLinkRequest, **_: Any) -> Any:
        self.log.append(("CreateAppLink", request))
        return ipb.CreateAppLinkResponse(link_code="code")

    async def IssueToken(self, request: ipb.IssueTokenRequest, **_: Any) -> Any:
        return ipb.IssueTokenResponse(access_token="app-token")

    async def SetUpParty(self, request: apb.SetUpPartyRequest, **_: Any) -> Any:
        self.log.append(("SetUpParty", request))
        return apb.SetUpPartyResponse()


def run_desk(guests: int) -> tuple[Recorder, Desk, list[Any]]:
    config = WorldConfig(guests=guests, seed=5)
    frame = DayFrame.of(DAY, VENUE.timezone)
    parties, *_ = make_population(VENUE, config, frame, "t")
    fake = Recorder()
    stubs = cast(Stubs, SimpleNamespace(identity=fake, access=fake))
    services = {"identity", "access"}

    async def go() -> Desk:
        desk = Desk(stubs, Caller(CallStats(), 8), VENUE, frame, "desk", "t", services)
        await desk.run_day(parties)
        return desk

    desk_module.SETTLE_WALL_S = 0.0
    return fake, asyncio.run(go()), parties


def test_every_party_is_registered_then_set_up_in_one_call() -> None:
    fake, desk, parties = run_desk(300)
    assert desk.failed == 0 and all(p.registered for p in parties)
    assert desk.registered == len(parties)
    setups = [r for kind, r in fake.log if kind == "SetUpParty"]
    assert len(setups) == len(parties)
    by_party = {r.party_id: r for r in setups}
    for party in parties:
        request = by_party[party.party_id]
        assert list(request.ticket_guest_ids) == [m.guest_id for m in party.members]
        assert request.park_ticket.valid_dates[0].day == DAY.day
        assert request.pin == party.pin and request.top_up.minor_units > 0
        assert request.idempotency_key
        if party.hotel_room:
            assert request.hotel_room_key.room_id == party.hotel_room
            assert request.room_key_guest_id == party.payer.guest_id
        else:
            assert not request.HasField("hotel_room_key")
    # Each party's registration came before its set-up.
    for i, (kind, request) in enumerate(fake.log):
        if kind == "SetUpParty":
            assert fake.registered_at[request.party_id] < i


def test_single_adults_are_registered_in_bulk() -> None:
    fake, _, parties = run_desk(800)
    singles = [p for p in parties if p.size == 1]
    assert singles, "the park's party sizes include single adults"
    bulk = [r for kind, r in fake.log if kind == "RegisterGuests"]
    assert sum(len(r.guests) for r in bulk) == len(singles)
    assert len(bulk) < len(singles)
    one_by_one = [r for kind, r in fake.log if kind == "RegisterParty"]
    assert all(len(r.members) > 1 for r in one_by_one)
    assert len({r.idempotency_key for r in bulk}) == len(bulk)
