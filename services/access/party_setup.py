"""A party's visit set up in one request (SetUpParty): what the desk asks for,
checked field by field before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.access import entitlements, ledger
from services.access.venue_index import VenueIndex
from services.platform import validation
from services.platform.errors import InvalidArgument
from venue.access.v1 import access_pb2 as pb

# A party bigger than this is a group booking, sold another way.
MAX_TICKETS = 50


@dataclass(frozen=True)
class SetUpDraft:
    party_id: str
    ticket_guest_ids: tuple[str, ...]
    # Entitlement columns of the park ticket each member gets (None: no tickets).
    ticket: dict[str, Any] | None
    room_key_guest_id: str
    room_key: dict[str, Any] | None
    top_up_minor: int | None
    funding_source: int
    payment_reference: str
    pin: str | None
    external_ref: str

    @property
    def guest_ids(self) -> set[str]:
        """Every guest the request names (each must be of the party)."""
        named = set(self.ticket_guest_ids)
        if self.room_key_guest_id:
            named.add(self.room_key_guest_id)
        return named


def parse(request: pb.SetUpPartyRequest, venue: VenueIndex) -> SetUpDraft:
    party_id = validation.ident(request.party_id, "party_id")
    if len(request.ticket_guest_ids) > MAX_TICKETS:
        raise InvalidArgument("ticket_guest_ids", f"at most {MAX_TICKETS} guests")
    guests: list[str] = []
    for i, given in enumerate(request.ticket_guest_ids):
        field = f"ticket_guest_ids[{i}]"
        guest_id = validation.ident(given, field)
        if guest_id in guests:
            raise InvalidArgument(field, "named twice")
        guests.append(guest_id)
    ticket: dict[str, Any] | None = None
    if request.HasField("park_ticket"):
        if not guests:
            raise InvalidArgument("ticket_guest_ids", "required with park_ticket")
        ticket = entitlements.draft_from_request("park_ticket", request, venue)  # type: ignore[arg-type]
    elif guests:
        raise InvalidArgument("park_ticket", "required with ticket_guest_ids")
    room_guest = ""
    room: dict[str, Any] | None = None
    if request.HasField("hotel_room_key"):
        room_guest = validation.ident(request.room_key_guest_id, "room_key_guest_id")
        room = entitlements.draft_from_request("hotel_room_key", request, venue)  # type: ignore[arg-type]
    elif request.room_key_guest_id:
        raise InvalidArgument("hotel_room_key", "required with room_key_guest_id")
    top_up = ledger.money(
        request.top_up,
        "top_up",
        venue.currency,
        maximum=ledger.MAX_TOP_UP_MINOR,
        required=False,
    )
    source = 0
    reference = ""
    if top_up is not None:
        source = validation.enum_value(request.funding_source, pb.FundingSource, "funding_source")
        reference = validation.text(
            request.payment_reference, "payment_reference", max_len=100, required=False
        )
    pin = ledger.pin(request.pin) if request.pin else None
    if ticket is None and room is None and top_up is None and pin is None:
        raise InvalidArgument("park_ticket", "nothing to set up: no ticket, room, top-up or PIN")
    external_ref = validation.text(
        request.external_ref, "external_ref", max_len=100, required=False
    )
    return SetUpDraft(
        party_id=party_id,
        ticket_guest_ids=tuple(guests),
        ticket=ticket,
        room_key_guest_id=room_guest,
        room_key=room,
        top_up_minor=top_up,
        funding_source=source,
        payment_reference=reference,
        pin=pin,
        external_ref=external_ref,
    )
