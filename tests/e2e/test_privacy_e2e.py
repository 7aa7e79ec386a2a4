"""The privacy proof, searched automatically: three guests go about the park
as real devices see them — one with every consent, one who turned tracking,
photo linking and nudges off, one who is then erased — and afterwards every
table of every service, every log line and every kept span is searched.

Nothing names the erased guest (name, e-mail, band UID) anywhere; the guest
without consent is nowhere in location's tables (counted, not placed); and no
one's name, e-mail or band UID reaches a log or a trace. The consenting guest
is found where expected, so the search is known to look in the right places."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from services.runner.suite import Suite, auto_ports
from tests.support.people import device, staff
from tests.support.stubs import bearer
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.location.v1 import location_pb2 as lpb
from venue.location.v1 import location_pb2_grpc

pytestmark = pytest.mark.e2e

SERVICES = ["identity", "access", "location", "queue", "photo", "itinerary"]
READER = "rd.jungle-reach.plaza"


@dataclass
class Person:
    name: str
    email: str
    band: str
    guest_id: str = ""

    @property
    def personal(self) -> tuple[str, ...]:
        return (self.name, self.email, self.band)


def person(first: str) -> Person:
    tag = secrets.token_hex(4)
    return Person(
        f"{first} Privacy{tag}", f"{first.lower()}.{tag}@example.net", f"PRV-{tag.upper()}"
    )


async def every_row(url: str) -> dict[str, list[str]]:
    """Every row of every table of every service schema, as text, by table."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        found: dict[str, list[str]] = {}
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            rows = await conn.fetch(f"SELECT * FROM {name}")
            # bytea (event payloads are protobuf) is searched as the bytes it
            # holds: a protobuf string field is its UTF-8 bytes.
            found[name] = [
                " ".join(
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                    for v in r.values()
                )
                for r in rows
            ]
        return found
    finally:
        await conn.close()


def where(rows: dict[str, list[str]], needle: str) -> list[str]:
    return [table for table, texts in rows.items() if any(needle in text for text in texts)]


async def test_nothing_personal_remains_of_the_erased_or_the_unconsenting(
    tmp_path: Path, database_url: str
) -> None:
    name = f"e2e_privacy_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    suite = Suite(
        data_dir=tmp_path / "data",
        database_url=url,
        services=SERVICES,
        ports=auto_ports(SERVICES),
    )
    everyone = {"open": person("Olive"), "private": person("Piers"), "erased": person("Edith")}
    consents = {
        "open": ipb.Consent(location_tracking=True, personalized_nudges=True, photo_linking=True),
        "private": ipb.Consent(),
        "erased": ipb.Consent(location_tracking=True, personalized_nudges=True, photo_linking=True),
    }
    await suite.start()
    try:
        admin = await suite.admin_token()
        async with grpc.aio.insecure_channel(suite.addresses["identity"]) as ichannel:
            identity: identity_pb2_grpc.IdentityServiceAsyncStub = (
                identity_pb2_grpc.IdentityServiceStub(ichannel)
            )
            for key, who in everyone.items():
                made = await identity.CreateGuest(
                    ipb.CreateGuestRequest(
                        display_name=who.name,
                        email=who.email,
                        password="correct horse battery",
                        consent=consents[key],
                    ),
                    metadata=bearer(admin),
                )
                who.guest_id = made.guest.guest_id
                await identity.LinkBand(
                    ipb.LinkBandRequest(guest_id=who.guest_id, band_uid=who.band),
                    metadata=bearer(admin),
                )
            reader = await device(identity, admin, common_pb2.DEVICE_KIND_READER, READER)
            ops = await staff(identity, admin, common_pb2.STAFF_ROLE_OPS)

            # The reader hears all three bands until location has placed the
            # consenting guest (the band map fills from identity's stream).
            async with grpc.aio.insecure_channel(suite.addresses["location"]) as lchannel:
                location: location_pb2_grpc.LocationServiceAsyncStub = (
                    location_pb2_grpc.LocationServiceStub(lchannel)
                )
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while True:
                    now_ms = int(time.time() * 1000)
                    bands = [who.band for who in everyone.values()]

                    async def one(
                        bands: list[str] = bands, now_ms: int = now_ms
                    ) -> AsyncIterator[lpb.IngestPingsRequest]:
                        yield lpb.IngestPingsRequest(
                            batch=lpb.PingBatch(
                                batch_id=uuid.uuid4().hex,
                                band_uids=bands,
                                reader_ids=[READER] * len(bands),
                                observed_at_unix_ms=[now_ms] * len(bands),
                                rssi_dbm=[-50] * len(bands),
                            )
                        )

                    acks = [a async for a in location.IngestPings(one(), metadata=reader)]
                    assert acks
                    placed = await location.GetGuestLocation(
                        lpb.GetGuestLocationRequest(guest_id=everyone["open"].guest_id),
                        metadata=bearer(ops),
                    )
                    if placed.location.status == lpb.LOCATION_STATUS_KNOWN:
                        break
                    assert loop.time() < deadline, "location never placed the consenting guest"
                    await asyncio.sleep(0.5)

            await identity.EraseGuest(
                ipb.EraseGuestRequest(
                    guest_id=everyone["erased"].guest_id, idempotency_key=uuid.uuid4().hex
                ),
                metadata=bearer(admin),
            )
            # Followers act on the erasure from identity's stream; give them a
            # moment, then search.
            await asyncio.sleep(3)
    finally:
        await suite.stop()

    rows = await every_row(url)
    erased, private, open_ = everyone["erased"], everyone["private"], everyone["open"]
    location_rows = {t: r for t, r in rows.items() if t.startswith('"location"')}
    # The search looks in the right places: the consenting guest is there.
    assert where(location_rows, open_.guest_id), "the consenting guest should be placed"
    for needle in erased.personal:
        assert not where(rows, needle), (
            f"erased guest's {needle!r} remains in {where(rows, needle)}"
        )
    assert not where(location_rows, erased.guest_id), "erased guest's trail remains"
    for needle in (private.guest_id, private.band):
        assert not where(location_rows, needle), f"unconsenting guest kept by location: {needle}"

    texts = [p.read_text(errors="replace") for p in (suite.data_dir / "logs").glob("*.log")]
    texts += [p.read_text(errors="replace") for p in (suite.data_dir / "telemetry").glob("*.jsonl")]
    assert texts, "no logs or telemetry files to search"
    for who in everyone.values():
        for needle in who.personal:
            assert not any(needle in text for text in texts), f"{needle!r} in a log or trace"
