"""Who wears a band, answered from memory on the hot path.

Design (the fast path of every tap and charge):

- **The map.** `BandDirectory` holds every band (UID -> band id, guest, active)
  and every guest (party, role, height) in memory, fed by identity's event
  stream (`band_linked`, `band_deactivated`, `guest_created`, `guest_updated`,
  `party_changed`, `guest_erased`). It is rebuilt at every boot by replaying
  the stream from the start (`MemoryCursor`), so it never outlives a restart.
  A tap or charge costs no call to identity.
- **Misses.** A UID not in the map (a band linked a moment ago, whose event is
  still on its way) is resolved with one `ResolveBand` call to identity, which
  is authoritative. The answer is not put in the map: only the stream writes
  it, so a slow reply can never overwrite a newer deactivation.
- **Deactivation.** Identity commits a deactivation with its event and pokes
  its stream at once; the event reaches this map within milliseconds, and from
  then on every tap and charge with the band is refused. The map is trusted only
  while it is *live*: the stream is open and its replay has caught up. Until
  then (at boot, and after a dropped stream until the resumed stream has caught
  up) every band is resolved by `ResolveBand`, so a band deactivated while
  access was starting or cut off is refused all the same. Catching up is
  recognised when an event arrives that identity wrote after the stream was
  opened (the stream is in commit order, so everything older came first), or
  when the replay, once begun, falls quiet.
- **Entitlements are not cached.** The tap reads them in the same round trip
  that reads the guest's state version, and records the tap only if that
  version is unchanged (see the store's `record_tap`): a revoked, used or
  refunded entitlement can never be let through by a stale copy.

Band UIDs are personal data: they live only in this map's keys, never in a log,
span, error or event of access.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.access.decisions import Wearer
from venue.identity.v1 import identity_pb2 as ipb

# A replay is taken to be over when no event came for this long.
QUIET_SECONDS = 0.25
# An event written this long after the stream opened proves the replay is over.
NEWER_MARGIN_SECONDS = 0.05


@dataclass(slots=True)
class _Band:
    band_id: str
    guest_id: str
    active: bool
    # Link order: a guest's newest active band is the one they wear.
    linked: int = 0


@dataclass(slots=True)
class _Guest:
    party_id: str
    role: int
    height_cm: int
    uids: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class GuestInfo:
    guest_id: str
    party_id: str
    role: int
    height_cm: int


Resolver = Callable[[str], Awaitable[Wearer | None]]


class BandDirectory:
    def __init__(
        self,
        resolve: Resolver,
        wall_of: Callable[[datetime], float],
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._resolve = resolve
        self._wall_of = wall_of
        self._monotonic = monotonic
        self._wall = wall
        self._by_uid: dict[str, _Band] = {}
        self._uid_of_band: dict[str, str] = {}
        self._guests: dict[str, _Guest] = {}
        self._parties: dict[str, set[str]] = {}
        self._opened_wall: float | None = None
        self._last_event = 0.0
        self._caught_up = False
        self._heard = False
        self._links = 0
        self.misses = 0

    # --- the stream's state -----------------------------------------------------

    def stream_opened(self, resuming: bool = False) -> None:
        """A stream opened: from the start (boot), or resuming after a drop."""
        self._opened_wall = self._wall()
        self._last_event = self._monotonic()
        self._caught_up = False
        # From the start, quiet means nothing until an event came: a replay
        # that has not begun yet is not a replay that is over.
        self._heard = resuming

    def stream_closed(self) -> None:
        self._opened_wall = None
        self._caught_up = False

    @property
    def live(self) -> bool:
        if self._opened_wall is None:
            return False
        if (
            not self._caught_up
            and self._heard
            and self._monotonic() - self._last_event >= QUIET_SECONDS
        ):
            self._caught_up = True
        return self._caught_up

    # --- feeding ---------------------------------------------------------------------

    def apply(self, event: ipb.WatchIdentityEventsResponse) -> None:
        self._last_event = self._monotonic()
        self._heard = True
        if (
            not self._caught_up
            and self._opened_wall is not None
            and event.HasField("occurred_at")
            and self._wall_of(event.occurred_at.ToDatetime(tzinfo=UTC)) - self._opened_wall
            > NEWER_MARGIN_SECONDS
        ):
            self._caught_up = True
        which = event.WhichOneof("event")
        if which == "guest_created":
            g = event.guest_created
            self._set_guest(g.guest_id, g.party_id, g.role, g.height_cm)
        elif which == "guest_updated":
            u = event.guest_updated
            self._set_guest(u.guest_id, u.party_id, u.role, u.height_cm)
        elif which == "band_linked":
            b = event.band_linked
            self._link(b.band_id, b.band_uid, b.guest_id, b.party_id)
        elif which == "band_deactivated":
            d = event.band_deactivated
            self._deactivate(d.band_id, d.band_uid, d.guest_id)
        elif which == "party_changed":
            p = event.party_changed
            for guest_id in p.member_guest_ids:
                guest = self._guests.get(guest_id)
                if guest is not None:
                    self._move(guest_id, guest, p.party_id)
        elif which == "guest_erased":
            self._erase(event.guest_erased.guest_id)

    def _set_guest(self, guest_id: str, party_id: str, role: int, height_cm: int) -> None:
        guest = self._guests.get(guest_id)
        if guest is None:
            guest = self._guests[guest_id] = _Guest(party_id, role, height_cm)
            self._parties.setdefault(party_id, set()).add(guest_id)
        else:
            guest.role = role
            guest.height_cm = height_cm
            self._move(guest_id, guest, party_id)

    def _move(self, guest_id: str, guest: _Guest, party_id: str) -> None:
        if guest.party_id == party_id:
            return
        members = self._parties.get(guest.party_id)
        if members is not None:
            members.discard(guest_id)
            if not members:
                del self._parties[guest.party_id]
        guest.party_id = party_id
        self._parties.setdefault(party_id, set()).add(guest_id)

    def _link(self, band_id: str, uid: str, guest_id: str, party_id: str) -> None:
        if not uid:
            return
        guest = self._guests.get(guest_id)
        if guest is None:
            # Only when history was cut: role and height stay unknown (0).
            self._set_guest(guest_id, party_id, 0, 0)
            guest = self._guests[guest_id]
        self._links += 1
        self._by_uid[uid] = _Band(band_id, guest_id, True, self._links)
        self._uid_of_band[band_id] = uid
        guest.uids.add(uid)

    def _deactivate(self, band_id: str, uid: str, guest_id: str) -> None:
        uid = uid or self._uid_of_band.get(band_id, "")
        if not uid:
            return
        band = self._by_uid.get(uid)
        if band is None or band.band_id == band_id:
            self._by_uid[uid] = _Band(band_id, guest_id, False)
            self._uid_of_band[band_id] = uid

    def _erase(self, guest_id: str) -> None:
        guest = self._guests.pop(guest_id, None)
        if guest is None:
            return
        for uid in guest.uids:
            band = self._by_uid.get(uid)
            if band is not None and band.guest_id == guest_id:
                del self._by_uid[uid]
                self._uid_of_band.pop(band.band_id, None)
        members = self._parties.get(guest.party_id)
        if members is not None:
            members.discard(guest_id)
            if not members:
                del self._parties[guest.party_id]

    # --- reading -------------------------------------------------------------------

    def cached(self, uid: str) -> Wearer | None:
        """The map's answer (None when the band or its guest is not in it)."""
        band = self._by_uid.get(uid)
        if band is None:
            return None
        guest = self._guests.get(band.guest_id)
        if guest is None:
            return None
        return Wearer(
            band.band_id, band.guest_id, guest.party_id, band.active, guest.role, guest.height_cm
        )

    async def wearer(self, uid: str) -> Wearer | None:
        """Who wears the band (None: no such band). Identity answers when the map
        cannot be trusted yet or does not know the band."""
        if self.live:
            found = self.cached(uid)
            if found is not None:
                return found
        self.misses += 1
        return await self._resolve(uid)

    def guest(self, guest_id: str) -> GuestInfo | None:
        guest = self._guests.get(guest_id)
        if guest is None:
            return None
        return GuestInfo(guest_id, guest.party_id, guest.role, guest.height_cm)

    def band(self, band_id: str) -> Wearer | None:
        uid = self._uid_of_band.get(band_id)
        return None if uid is None else self.cached(uid)

    def active_band_of(self, guest_id: str) -> str | None:
        """The band the guest wears now (the last linked active one)."""
        guest = self._guests.get(guest_id)
        if guest is None:
            return None
        newest: _Band | None = None
        for uid in guest.uids:
            band = self._by_uid.get(uid)
            if (
                band is not None
                and band.active
                and band.guest_id == guest_id
                and (newest is None or band.linked > newest.linked)
            ):
                newest = band
        return None if newest is None else newest.band_id

    def has_party(self, party_id: str) -> bool:
        return party_id in self._parties

    def party_bands(self, party_id: str) -> list[Wearer]:
        """Active bands of the party's members."""
        found: list[Wearer] = []
        for guest_id in sorted(self._parties.get(party_id, ())):
            guest = self._guests[guest_id]
            for uid in sorted(guest.uids):
                wearer = self.cached(uid)
                if wearer is not None and wearer.active and wearer.guest_id == guest_id:
                    found.append(wearer)
        return found

    def __len__(self) -> int:
        return len(self._by_uid)
