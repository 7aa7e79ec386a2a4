"""Identity's SQL: every read and write of its schema, each write with its events
in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from services.identity import event_payloads as ev
from services.identity.records import (
    BandRecord,
    Consent,
    DeviceRecord,
    GuestRecord,
    NewMember,
    PartyRecord,
    ResolvedBand,
    StaffRecord,
)
from services.platform import events, idempotency
from services.platform.errors import FailedPrecondition, NotFound
from services.platform.idempotency import Idem
from venue.identity.v1 import identity_pb2 as pb

SCHEMA = "identity"

ADULT, CHILD = 1, 2
BAND_ACTIVE, BAND_DEACTIVATED = 1, 2
CRED_ACTIVE, CRED_REVOKED = 1, 2
REASON_REPLACED, REASON_ERASED = 3, 5

T = TypeVar("T")


@dataclass(frozen=True)
class Registration:
    """One guest the desk registers in bulk, already checked."""

    display_name: str
    height_cm: int
    consent: Consent
    band_uid: str


_GUEST_COLUMNS = (
    "guest_id, party_id, role, display_name, email, height_cm, consent_location, "
    "consent_nudges, consent_photos, created_at, erased_at"
)
_BAND_COLUMNS = (
    "b.band_id, b.band_uid, b.guest_id, g.party_id, b.status, b.deactivation_reason, "
    "b.linked_at, b.deactivated_at"
)


def _guest(row: asyncpg.Record) -> GuestRecord:
    return GuestRecord(
        guest_id=str(row["guest_id"]),
        party_id=str(row["party_id"]),
        role=row["role"],
        display_name=row["display_name"] or "",
        email=row["email"] or "",
        height_cm=row["height_cm"],
        consent=Consent(row["consent_location"], row["consent_nudges"], row["consent_photos"]),
        created_at=row["created_at"],
        erased=row["erased_at"] is not None,
    )


def _band(row: asyncpg.Record) -> BandRecord:
    return BandRecord(
        band_id=str(row["band_id"]),
        band_uid=row["band_uid"] or "",
        guest_id=str(row["guest_id"]),
        party_id=str(row["party_id"]),
        status=row["status"],
        deactivation_reason=row["deactivation_reason"],
        linked_at=row["linked_at"],
        deactivated_at=row["deactivated_at"],
    )


def _device(row: asyncpg.Record) -> DeviceRecord:
    return DeviceRecord(
        device_id=str(row["device_id"]),
        kind=row["kind"],
        name=row["name"],
        zone_id=row["zone_id"],
        node_id=row["node_id"],
        venue_ref=row["venue_ref"],
        active=row["status"] == CRED_ACTIVE,
        created_at=row["created_at"],
    )


def _staff(row: asyncpg.Record) -> StaffRecord:
    return StaffRecord(
        staff_id=str(row["staff_id"]),
        display_name=row["display_name"],
        role=row["role"],
        active=row["status"] == CRED_ACTIVE,
        created_at=row["created_at"],
    )


async def _refuse_worn_bands(conn: asyncpg.Connection, uids: list[str], field: str) -> None:
    """FAILED_PRECONDITION naming the first entry whose band someone wears
    (`field[i].band_uid`; the UID itself stays out of the error)."""
    if not any(uids):
        return
    taken = await conn.fetchval(
        "SELECT band_uid FROM bands WHERE band_uid = ANY($1::text[]) AND status = $2 LIMIT 1",
        [u for u in uids if u],
        BAND_ACTIVE,
    )
    if taken is not None:
        raise FailedPrecondition(
            "a band of this request is already linked; deactivate it first",
            reason="BAND_IN_USE",
            subject=f"{field}[{uids.index(taken)}].band_uid",
        )


async def _insert_bands(conn: asyncpg.Connection, bands: list[BandRecord], at: datetime) -> None:
    """New active bands in one statement."""
    if bands:
        await conn.execute(
            "INSERT INTO bands (band_id, band_uid, guest_id, status, linked_at) "
            "SELECT b, u, g, $4, $5 FROM unnest($1::uuid[], $2::text[], $3::uuid[]) "
            "AS t(b, u, g)",
            [b.band_id for b in bands],
            [b.band_uid for b in bands],
            [b.guest_id for b in bands],
            BAND_ACTIVE,
            at,
        )


class IdentityStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _event(
        self, conn: asyncpg.Connection, kind: str, payload: bytes, at: datetime, key: str
    ) -> None:
        await events.append(conn, SCHEMA, kind, payload, at, key)

    async def idempotent(
        self,
        idem: Idem | None,
        parse: Callable[[bytes], T],
        serialize: Callable[[T], bytes],
        work: Callable[[asyncpg.Connection], Awaitable[T]],
    ) -> T:
        """Run `work` in a transaction, once per idempotency key."""
        return await idempotency.once(self._pool, idem, parse, serialize, work)

    # --- guests and parties ------------------------------------------------

    async def create_guest(
        self,
        conn: asyncpg.Connection,
        *,
        display_name: str,
        email: str,
        password_hash: str,
        height_cm: int,
        consent: Consent,
        party_id: str | None,
        role: int,
        at: datetime,
    ) -> GuestRecord:
        guest_id = str(uuid.uuid4())
        if party_id is None:
            party_id = str(uuid.uuid4())
            await conn.execute(
                "INSERT INTO parties (party_id, name, created_at) VALUES ($1, $2, $3)",
                party_id,
                f"{display_name}'s party",
                at,
            )
        elif not await conn.fetchval(
            "SELECT true FROM parties WHERE party_id = $1 FOR UPDATE", party_id
        ):
            raise NotFound("party", party_id)
        row = await conn.fetchrow(
            f"INSERT INTO guests (guest_id, party_id, role, display_name, email, password_hash, "
            f"height_cm, consent_location, consent_nudges, consent_photos, created_at) "
            f"VALUES ($1, $2, $3, $4, NULLIF($5, ''), NULLIF($6, ''), $7, $8, $9, $10, $11) "
            f"RETURNING {_GUEST_COLUMNS}",
            guest_id,
            party_id,
            role,
            display_name,
            email,
            password_hash,
            height_cm,
            consent.location_tracking,
            consent.personalized_nudges,
            consent.photo_linking,
            at,
        )
        guest = _guest(row)
        await self._event(conn, "guest_created", ev.guest_created(guest), at, guest.guest_id)
        await self._party_changed(conn, party_id, [], at)
        return guest

    async def register_guests(
        self,
        conn: asyncpg.Connection,
        entries: list[Registration],
        at: datetime,
    ) -> tuple[list[GuestRecord], list[BandRecord]]:
        """Many desk guests, each founding a party and wearing their band, in a few
        round trips: rows in bulk, events in one append. The caller has checked
        that the UIDs are well formed and distinct."""
        await _refuse_worn_bands(conn, [e.band_uid for e in entries], "guests")
        guests: list[GuestRecord] = []
        bands: list[BandRecord] = []
        stream: list[tuple[str, str, bytes, datetime]] = []
        for e in entries:
            guest = GuestRecord(
                guest_id=str(uuid.uuid4()),
                party_id=str(uuid.uuid4()),
                role=ADULT,
                display_name=e.display_name,
                email="",
                height_cm=e.height_cm,
                consent=e.consent,
                created_at=at,
            )
            guests.append(guest)
            stream.append(("guest_created", guest.guest_id, ev.guest_created(guest), at))
            members = ev.party_changed(guest.party_id, [guest.guest_id], [])
            stream.append(("party_changed", guest.party_id, members, at))
            if e.band_uid:
                band = BandRecord(
                    band_id=str(uuid.uuid4()),
                    band_uid=e.band_uid,
                    guest_id=guest.guest_id,
                    party_id=guest.party_id,
                    status=BAND_ACTIVE,
                    deactivation_reason=0,
                    linked_at=at,
                    deactivated_at=None,
                )
                bands.append(band)
                payload = ev.band_linked(
                    band.band_id, band.band_uid, guest.guest_id, guest.party_id
                )
                stream.append(("band_linked", guest.guest_id, payload, at))
        await conn.execute(
            "INSERT INTO parties (party_id, name, created_at) "
            "SELECT p, n, $3 FROM unnest($1::uuid[], $2::text[]) AS t(p, n)",
            [g.party_id for g in guests],
            [f"{g.display_name}'s party" for g in guests],
            at,
        )
        await conn.execute(
            "INSERT INTO guests (guest_id, party_id, role, display_name, height_cm, "
            "consent_location, consent_nudges, consent_photos, created_at) "
            "SELECT g, p, $3, n, h, cl, cn, cp, $9 FROM unnest($1::uuid[], $2::uuid[], "
            "$4::text[], $5::int[], $6::bool[], $7::bool[], $8::bool[]) "
            "AS t(g, p, n, h, cl, cn, cp)",
            [g.guest_id for g in guests],
            [g.party_id for g in guests],
            ADULT,
            [g.display_name for g in guests],
            [g.height_cm for g in guests],
            [g.consent.location_tracking for g in guests],
            [g.consent.personalized_nudges for g in guests],
            [g.consent.photo_linking for g in guests],
            at,
        )
        await _insert_bands(conn, bands, at)
        await events.append_many(conn, SCHEMA, stream)
        return guests, bands

    async def _party_changed(
        self, conn: asyncpg.Connection, party_id: str, removed: list[str], at: datetime
    ) -> None:
        members = await conn.fetch(
            "SELECT guest_id FROM guests WHERE party_id = $1 AND erased_at IS NULL "
            "ORDER BY created_at, guest_id",
            party_id,
        )
        payload = ev.party_changed(party_id, [str(m["guest_id"]) for m in members], removed)
        await self._event(conn, "party_changed", payload, at, party_id)

    async def get_guest(self, guest_id: str) -> GuestRecord:
        row = await self._pool.fetchrow(
            f"SELECT {_GUEST_COLUMNS} FROM guests WHERE guest_id = $1", guest_id
        )
        if row is None or row["erased_at"] is not None:
            raise NotFound("guest", guest_id)
        return _guest(row)

    async def login(self, email: str) -> tuple[GuestRecord, str] | None:
        row = await self._pool.fetchrow(
            f"SELECT {_GUEST_COLUMNS}, password_hash FROM guests "
            "WHERE lower(email) = lower($1) AND erased_at IS NULL",
            email,
        )
        if row is None or not row["password_hash"]:
            return None
        return _guest(row), row["password_hash"]

    async def update_guest(
        self, guest_id: str, display_name: str | None, height_cm: int | None, at: datetime
    ) -> GuestRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE guests SET display_name = coalesce($2, display_name), "
                f"height_cm = coalesce($3, height_cm) "
                f"WHERE guest_id = $1 AND erased_at IS NULL RETURNING {_GUEST_COLUMNS}",
                guest_id,
                display_name,
                height_cm,
            )
            if row is None:
                raise NotFound("guest", guest_id)
            guest = _guest(row)
            await self._event(conn, "guest_updated", ev.guest_updated(guest), at, guest_id)
            return guest

    async def get_party(self, party_id: str, conn: Any = None) -> PartyRecord:
        source = conn or self._pool
        row = await source.fetchrow(
            "SELECT party_id, name, created_at FROM parties WHERE party_id = $1", party_id
        )
        if row is None:
            raise NotFound("party", party_id)
        members = await source.fetch(
            f"SELECT {_GUEST_COLUMNS} FROM guests WHERE party_id = $1 AND erased_at IS NULL "
            "ORDER BY created_at, guest_id",
            party_id,
        )
        return PartyRecord(
            party_id=str(row["party_id"]),
            name=row["name"],
            created_at=row["created_at"],
            members=[_guest(m) for m in members],
        )

    async def rename_party(self, party_id: str, name: str) -> PartyRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "UPDATE parties SET name = $2 WHERE party_id = $1", party_id, name
            )
            if done == "UPDATE 0":
                raise NotFound("party", party_id)
            return await self.get_party(party_id, conn)

    async def create_invite(self, party_id: str, code_hash: bytes, expires_at: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO party_invites (code_hash, party_id, expires_at) VALUES ($1, $2, $3)",
            code_hash,
            party_id,
            expires_at,
        )

    async def join_party(
        self, guest_id: str, code_hash: bytes, now: datetime, at: datetime
    ) -> PartyRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            invite = await conn.fetchrow(
                "UPDATE party_invites SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL "
                "AND expires_at > $2 RETURNING party_id",
                code_hash,
                now,
            )
            if invite is None:
                raise FailedPrecondition(
                    "invite code unknown, used or expired", reason="INVITE_INVALID"
                )
            new_party = str(invite["party_id"])
            old_party = await conn.fetchval(
                "SELECT party_id FROM guests WHERE guest_id = $1 AND erased_at IS NULL FOR UPDATE",
                guest_id,
            )
            if old_party is None:
                raise NotFound("guest", guest_id)
            old_party = str(old_party)
            if old_party == new_party:
                raise FailedPrecondition("already in this party", reason="ALREADY_MEMBER")
            others = await conn.fetchval(
                "SELECT count(*) FROM guests WHERE party_id = $1 AND guest_id <> $2 "
                "AND erased_at IS NULL",
                old_party,
                guest_id,
            )
            if others:
                raise FailedPrecondition(
                    "leave your current party (it has other members) before joining another",
                    reason="IN_A_PARTY",
                )
            await conn.execute(
                "UPDATE guests SET party_id = $2 WHERE guest_id = $1", guest_id, new_party
            )
            await self._party_changed(conn, old_party, [guest_id], at)
            await self._party_changed(conn, new_party, [], at)
            return await self.get_party(new_party, conn)

    async def remove_member(self, party_id: str, guest_id: str, at: datetime) -> PartyRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_GUEST_COLUMNS} FROM guests WHERE guest_id = $1 AND party_id = $2 "
                "AND erased_at IS NULL FOR UPDATE",
                guest_id,
                party_id,
            )
            if row is None:
                raise NotFound("party member", guest_id)
            guest = _guest(row)
            if guest.role == CHILD:
                raise FailedPrecondition(
                    "a child cannot be left without a party; erase them instead",
                    reason="CHILD_NEEDS_PARTY",
                )
            new_party = str(uuid.uuid4())
            await conn.execute(
                "INSERT INTO parties (party_id, name, created_at) VALUES ($1, $2, $3)",
                new_party,
                f"{guest.display_name}'s party",
                at,
            )
            await conn.execute(
                "UPDATE guests SET party_id = $2 WHERE guest_id = $1", guest_id, new_party
            )
            await self._party_changed(conn, party_id, [guest_id], at)
            await self._party_changed(conn, new_party, [], at)
            return await self.get_party(party_id, conn)

    # --- app links ---------------------------------------------------------

    async def create_app_link(self, guest_id: str, code_hash: bytes, expires_at: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO app_links (code_hash, guest_id, expires_at) VALUES ($1, $2, $3)",
            code_hash,
            guest_id,
            expires_at,
        )

    async def redeem_app_link(self, code_hash: bytes, now: datetime) -> GuestRecord | None:
        async with self._pool.acquire() as conn, conn.transaction():
            guest_id = await conn.fetchval(
                "UPDATE app_links SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL "
                "AND expires_at > $2 RETURNING guest_id",
                code_hash,
                now,
            )
            if guest_id is None:
                return None
            row = await conn.fetchrow(
                f"SELECT {_GUEST_COLUMNS} FROM guests WHERE guest_id = $1 AND erased_at IS NULL",
                guest_id,
            )
            return None if row is None else _guest(row)

    # --- bands -------------------------------------------------------------

    async def link_band(
        self, conn: asyncpg.Connection, guest: GuestRecord, uid: str, at: datetime
    ) -> BandRecord:
        band_id = str(uuid.uuid4())
        taken = await conn.fetchval(
            "SELECT true FROM bands WHERE band_uid = $1 AND status = $2", uid, BAND_ACTIVE
        )
        if taken:
            raise FailedPrecondition(
                "this band is already linked; deactivate it first", reason="BAND_IN_USE"
            )
        row = await conn.fetchrow(
            "INSERT INTO bands (band_id, band_uid, guest_id, status, linked_at) "
            "VALUES ($1, $2, $3, $4, $5) "
            "RETURNING band_id, band_uid, guest_id, status, deactivation_reason, linked_at, "
            "deactivated_at, $6::uuid AS party_id",
            band_id,
            uid,
            guest.guest_id,
            BAND_ACTIVE,
            at,
            guest.party_id,
        )
        payload = ev.band_linked(band_id, uid, guest.guest_id, guest.party_id)
        await self._event(conn, "band_linked", payload, at, guest.guest_id)
        return _band(row)

    async def register_party(
        self, conn: asyncpg.Connection, members: list[NewMember], at: datetime
    ) -> tuple[list[GuestRecord], list[BandRecord]]:
        """A new party with its members and their bands, in one transaction: the
        events are those of CreateGuest, AddChild and LinkBand one by one, with a
        single party_changed once everyone is in."""
        await _refuse_worn_bands(conn, [m.band_uid for m in members], "members")
        party_id = str(uuid.uuid4())
        await conn.execute(
            "INSERT INTO parties (party_id, name, created_at) VALUES ($1, $2, $3)",
            party_id,
            f"{members[0].display_name}'s party",
            at,
        )
        guest_ids = [str(uuid.uuid4()) for _ in members]
        # Distinct creation times keep the members in the desk's order wherever
        # a party is listed by creation (the founder first).
        times = [at + timedelta(microseconds=i) for i in range(len(members))]
        rows = await conn.fetch(
            f"INSERT INTO guests (guest_id, party_id, role, display_name, height_cm, "
            f"consent_location, consent_nudges, consent_photos, created_at) "
            f"SELECT g, $2::uuid, r, n, h, cl, cn, cp, t FROM unnest($1::uuid[], $3::int[], "
            f"$4::text[], $5::int[], $6::bool[], $7::bool[], $8::bool[], $9::timestamptz[]) "
            f"AS u(g, r, n, h, cl, cn, cp, t) RETURNING {_GUEST_COLUMNS}",
            guest_ids,
            party_id,
            [m.role for m in members],
            [m.display_name for m in members],
            [m.height_cm for m in members],
            [m.consent.location_tracking for m in members],
            [m.consent.personalized_nudges for m in members],
            [m.consent.photo_linking for m in members],
            times,
        )
        by_id = {str(r["guest_id"]): _guest(r) for r in rows}
        guests = [by_id[g] for g in guest_ids]
        # The party's events in one round trip: each guest_created, then the one
        # party_changed naming everyone, then each band_linked.
        rows_out: list[tuple[str, str, bytes, datetime]] = [
            ("guest_created", g.guest_id, ev.guest_created(g), at) for g in guests
        ]
        rows_out.append(("party_changed", party_id, ev.party_changed(party_id, guest_ids, []), at))
        bands = [
            BandRecord(
                band_id=str(uuid.uuid4()),
                band_uid=member.band_uid,
                guest_id=guest.guest_id,
                party_id=party_id,
                status=BAND_ACTIVE,
                deactivation_reason=0,
                linked_at=at,
                deactivated_at=None,
            )
            for guest, member in zip(guests, members, strict=True)
            if member.band_uid
        ]
        await _insert_bands(conn, bands, at)
        rows_out += [
            (
                "band_linked",
                b.guest_id,
                ev.band_linked(b.band_id, b.band_uid, b.guest_id, party_id),
                at,
            )
            for b in bands
        ]
        await events.append_many(conn, SCHEMA, rows_out)
        return guests, bands

    async def resolve_band(self, uid: str) -> ResolvedBand | None:
        row = await self._pool.fetchrow(
            "SELECT b.band_id, b.guest_id, g.party_id, b.status, g.role, g.height_cm, "
            "g.consent_location, g.consent_nudges, g.consent_photos "
            "FROM bands b JOIN guests g USING (guest_id) WHERE b.band_uid = $1 "
            "ORDER BY (b.status = 1) DESC, b.linked_at DESC LIMIT 1",
            uid,
        )
        if row is None:
            return None
        return ResolvedBand(
            band_id=str(row["band_id"]),
            guest_id=str(row["guest_id"]),
            party_id=str(row["party_id"]),
            active=row["status"] == BAND_ACTIVE,
            role=row["role"],
            height_cm=row["height_cm"],
            consent=Consent(row["consent_location"], row["consent_nudges"], row["consent_photos"]),
        )

    async def get_band(self, band_id: str, conn: Any = None) -> BandRecord:
        row = await (conn or self._pool).fetchrow(
            f"SELECT {_BAND_COLUMNS} FROM bands b JOIN guests g USING (guest_id) "
            "WHERE b.band_id = $1",
            band_id,
        )
        if row is None:
            raise NotFound("band", band_id)
        return _band(row)

    async def list_bands(
        self,
        *,
        guest_id: str | None,
        party_id: str | None,
        include_deactivated: bool,
        after: list[Any] | None,
        limit: int,
    ) -> list[BandRecord]:
        args: list[Any] = [guest_id, party_id, include_deactivated]
        sql = (
            f"SELECT {_BAND_COLUMNS} FROM bands b JOIN guests g USING (guest_id) "
            "WHERE ($1::uuid IS NULL OR b.guest_id = $1) AND ($2::uuid IS NULL OR g.party_id = $2) "
            "AND ($3 OR b.status = 1) AND b.band_uid IS NOT NULL "
        )
        if after is not None:
            args += [datetime.fromisoformat(after[0]), after[1]]
            sql += "AND (b.linked_at, b.band_id) > ($4, $5::uuid) "
        args.append(limit)
        sql += f"ORDER BY b.linked_at, b.band_id LIMIT ${len(args)}"
        return [_band(r) for r in await self._pool.fetch(sql, *args)]

    async def deactivate_band(
        self, conn: asyncpg.Connection, band_id: str, reason: int, at: datetime
    ) -> BandRecord:
        row = await conn.fetchrow(
            "UPDATE bands SET status = $2, deactivation_reason = $3, deactivated_at = $4 "
            "WHERE band_id = $1 AND status = $5 RETURNING band_id, band_uid, guest_id",
            band_id,
            BAND_DEACTIVATED,
            reason,
            at,
            BAND_ACTIVE,
        )
        if row is None:
            band = await self.get_band(band_id, conn)
            raise FailedPrecondition(
                "band is already deactivated", reason="BAND_DEACTIVATED", subject=band.band_id
            )
        payload = ev.band_deactivated(band_id, row["band_uid"], str(row["guest_id"]), reason)
        await self._event(conn, "band_deactivated", payload, at, str(row["guest_id"]))
        return await self.get_band(band_id, conn)

    async def deactivate(self, band_id: str, reason: int, at: datetime) -> BandRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            return await self.deactivate_band(conn, band_id, reason, at)

    # --- consent and erasure -----------------------------------------------

    async def set_consent(
        self, guest_id: str, merge: Callable[[Consent], Consent], at: datetime
    ) -> Consent:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT consent_location, consent_nudges, consent_photos FROM guests "
                "WHERE guest_id = $1 AND erased_at IS NULL FOR UPDATE",
                guest_id,
            )
            if row is None:
                raise NotFound("guest", guest_id)
            consent = merge(Consent(*row.values()))
            await conn.execute(
                "UPDATE guests SET consent_location = $2, consent_nudges = $3, "
                "consent_photos = $4 WHERE guest_id = $1",
                guest_id,
                consent.location_tracking,
                consent.personalized_nudges,
                consent.photo_linking,
            )
            await self._event(
                conn, "consent_changed", ev.consent_changed(guest_id, consent), at, guest_id
            )
            return consent

    async def erase_guest(self, conn: asyncpg.Connection, guest_id: str, at: datetime) -> None:
        row = await conn.fetchrow(
            "SELECT party_id, role, display_name FROM guests "
            "WHERE guest_id = $1 AND erased_at IS NULL FOR UPDATE",
            guest_id,
        )
        if row is None:
            raise NotFound("guest", guest_id)
        party_id = str(row["party_id"])
        if row["display_name"]:
            # A party is named after whoever created it ("Ann's party").
            await conn.execute(
                "UPDATE parties SET name = '' WHERE party_id = $1 AND strpos(name, $2) > 0",
                party_id,
                row["display_name"],
            )
        bands = await conn.fetch(
            "SELECT band_id FROM bands WHERE guest_id = $1 AND status = $2", guest_id, BAND_ACTIVE
        )
        for band in bands:
            await self.deactivate_band(conn, str(band["band_id"]), REASON_ERASED, at)
        # The row stays as a pseudonymous tombstone so ledgers elsewhere still
        # balance; everything that could identify the person goes.
        await conn.execute(
            "UPDATE guests SET display_name = NULL, email = NULL, password_hash = NULL, "
            "height_cm = 0, consent_location = false, consent_nudges = false, "
            "consent_photos = false, erased_at = $2 WHERE guest_id = $1",
            guest_id,
            at,
        )
        await conn.execute("UPDATE bands SET band_uid = NULL WHERE guest_id = $1", guest_id)
        await conn.execute("DELETE FROM app_links WHERE guest_id = $1", guest_id)
        await self._event(conn, "guest_erased", ev.guest_erased(guest_id, party_id), at, guest_id)
        await self._party_changed(conn, party_id, [guest_id], at)
        # The band UIDs in the guest's past events go too. Followers replaying
        # the stream then map a blank UID until guest_erased removes the guest;
        # live followers drop the guest by id from guest_erased either way.
        history = await conn.fetch(
            "SELECT txid::text AS txid, seq, payload FROM events "
            "WHERE key = $1 AND kind = ANY($2::text[])",
            guest_id,
            ["band_linked", "band_deactivated"],
        )
        for event in history:
            await conn.execute(
                "UPDATE events SET payload = $3 WHERE txid = $1::text::xid8 AND seq = $2",
                event["txid"],
                event["seq"],
                ev.without_band_uid(event["payload"]),
            )

    async def erased_guests(self) -> list[str]:
        rows = await self._pool.fetch("SELECT guest_id FROM guests WHERE erased_at IS NOT NULL")
        return [str(r["guest_id"]) for r in rows]

    # --- devices and staff ---------------------------------------------------

    async def register_device(
        self,
        conn: asyncpg.Connection,
        device_id: str,
        kind: int,
        name: str,
        zone_id: str,
        node_id: str,
        venue_ref: str,
        secret_hash: bytes,
    ) -> DeviceRecord:
        row = await conn.fetchrow(
            "INSERT INTO devices (device_id, kind, name, zone_id, node_id, venue_ref, "
            "secret_hash, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
            device_id,
            kind,
            name,
            zone_id,
            node_id,
            venue_ref,
            secret_hash,
            CRED_ACTIVE,
        )
        return _device(row)

    async def get_device(self, device_id: str) -> DeviceRecord:
        row = await self._pool.fetchrow("SELECT * FROM devices WHERE device_id = $1", device_id)
        if row is None:
            raise NotFound("device", device_id)
        return _device(row)

    async def device_secret_hash(self, device_id: str) -> tuple[DeviceRecord, bytes] | None:
        row = await self._pool.fetchrow("SELECT * FROM devices WHERE device_id = $1", device_id)
        return None if row is None else (_device(row), bytes(row["secret_hash"]))

    async def list_devices(
        self, kind: int, include_revoked: bool, after: list[Any] | None, limit: int
    ) -> list[DeviceRecord]:
        args: list[Any] = [kind, include_revoked]
        sql = "SELECT * FROM devices WHERE ($1 = 0 OR kind = $1) AND ($2 OR status = 1) "
        if after is not None:
            args += [datetime.fromisoformat(after[0]), after[1]]
            sql += "AND (created_at, device_id) > ($3, $4::uuid) "
        args.append(limit)
        sql += f"ORDER BY created_at, device_id LIMIT ${len(args)}"
        return [_device(r) for r in await self._pool.fetch(sql, *args)]

    async def revoke_device(self, device_id: str, at: datetime) -> DeviceRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE devices SET status = $2, revoked_at = now() WHERE device_id = $1 "
                "RETURNING *",
                device_id,
                CRED_REVOKED,
            )
            if row is None:
                raise NotFound("device", device_id)
            payload = ev.credential_revoked(pb.PRINCIPAL_KIND_DEVICE, device_id)
            await self._event(conn, "credential_revoked", payload, at, device_id)
            return _device(row)

    async def revoked_devices(self) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT device_id FROM devices WHERE status = $1", CRED_REVOKED
        )
        return [str(r["device_id"]) for r in rows]

    async def create_staff(
        self,
        conn: asyncpg.Connection,
        staff_id: str,
        display_name: str,
        role: int,
        secret_hash: bytes,
    ) -> StaffRecord:
        row = await conn.fetchrow(
            "INSERT INTO staff (staff_id, display_name, role, secret_hash, status) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING *",
            staff_id,
            display_name,
            role,
            secret_hash,
            CRED_ACTIVE,
        )
        return _staff(row)

    async def ensure_staff(
        self, staff_id: str, display_name: str, role: int, secret_hash: bytes
    ) -> None:
        await self._pool.execute(
            "INSERT INTO staff (staff_id, display_name, role, secret_hash, status) "
            # The master in use is authoritative: if it was rotated, the bootstrap
            # administrator's secret follows (a revoked one stays revoked).
            "VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (staff_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash",
            staff_id,
            display_name,
            role,
            secret_hash,
            CRED_ACTIVE,
        )

    async def staff_secret_hash(self, staff_id: str) -> tuple[StaffRecord, bytes] | None:
        row = await self._pool.fetchrow("SELECT * FROM staff WHERE staff_id = $1", staff_id)
        return None if row is None else (_staff(row), bytes(row["secret_hash"]))

    async def list_staff(
        self, include_revoked: bool, after: list[Any] | None, limit: int
    ) -> list[StaffRecord]:
        args: list[Any] = [include_revoked]
        sql = "SELECT * FROM staff WHERE ($1 OR status = 1) "
        if after is not None:
            args += [datetime.fromisoformat(after[0]), after[1]]
            sql += "AND (created_at, staff_id) > ($2, $3::uuid) "
        args.append(limit)
        sql += f"ORDER BY created_at, staff_id LIMIT ${len(args)}"
        return [_staff(r) for r in await self._pool.fetch(sql, *args)]

    async def revoke_staff(self, staff_id: str, at: datetime) -> StaffRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE staff SET status = $2, revoked_at = now() WHERE staff_id = $1 RETURNING *",
                staff_id,
                CRED_REVOKED,
            )
            if row is None:
                raise NotFound("staff", staff_id)
            payload = ev.credential_revoked(pb.PRINCIPAL_KIND_STAFF, staff_id)
            await self._event(conn, "credential_revoked", payload, at, staff_id)
            return _staff(row)

    async def revoked_staff(self) -> list[str]:
        rows = await self._pool.fetch("SELECT staff_id FROM staff WHERE status = $1", CRED_REVOKED)
        return [str(r["staff_id"]) for r in rows]
