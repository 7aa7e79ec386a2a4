"""Idempotent writes on the real PostgreSQL: concurrent retries write once and
all get the same reply; a reused key with another request is refused."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest
from google.protobuf import wrappers_pb2

from services.platform import idempotency, migrations
from services.platform.errors import FailedPrecondition, InvalidArgument
from venue.identity.v1 import identity_pb2 as pb


@pytest.fixture
async def pool(database_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(database_url)
    await migrations.migrate(conn, schema, {"platform": migrations.PLATFORM_MIGRATIONS})
    await conn.execute(f"CREATE TABLE {schema}.writes (id serial PRIMARY KEY, body text)")
    await conn.close()
    pool = await asyncpg.create_pool(
        database_url, min_size=2, max_size=10, server_settings={"search_path": schema}
    )
    yield pool
    await pool.close()


async def write_once(pool: asyncpg.Pool, key: str, body: str) -> bytes:
    digest = idempotency.request_hash(wrappers_pb2.StringValue(value=body))
    async with pool.acquire() as conn, conn.transaction():
        prior = await idempotency.claim(conn, "test", key, digest)
        if prior is not None:
            return prior
        await asyncio.sleep(random.random() * 0.01)
        row_id = await conn.fetchval("INSERT INTO writes (body) VALUES ($1) RETURNING id", body)
        reply = f"{body}#{row_id}".encode()
        await idempotency.remember(conn, "test", key, reply)
        return reply


async def test_concurrent_retries_write_once(pool: asyncpg.Pool) -> None:
    for round_ in range(20):
        key = f"k-{round_}"
        replies = await asyncio.gather(*(write_once(pool, key, "charge") for _ in range(8)))
        assert len(set(replies)) == 1
    assert await pool.fetchval("SELECT count(*) FROM writes") == 20


async def test_reused_key_with_another_request_is_refused(pool: asyncpg.Pool) -> None:
    await write_once(pool, "k", "first")
    with pytest.raises(FailedPrecondition, match="different request"):
        await write_once(pool, "k", "second")
    assert await pool.fetchval("SELECT count(*) FROM writes") == 1


async def test_failed_write_releases_its_key(pool: asyncpg.Pool) -> None:
    digest = idempotency.request_hash(wrappers_pb2.StringValue(value="x"))
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            assert await idempotency.claim(conn, "test", "k2", digest) is None
            raise RuntimeError("the write failed")
    assert (await write_once(pool, "k2", "x")).startswith(b"x#")
    assert await pool.fetchval("SELECT count(*) FROM writes") == 1


@pytest.mark.parametrize("key", ["has space", "x" * 129, "tab\tkey", "ünïcode"])
def test_bad_keys_name_the_field(key: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        idempotency.check_key(key)
    assert err.value.field == "idempotency_key"


def test_request_hash_ignores_only_the_key() -> None:
    a = pb.LinkBandRequest(guest_id="g", band_uid="u1", idempotency_key="k1")
    b = pb.LinkBandRequest(guest_id="g", band_uid="u1", idempotency_key="k2")
    c = pb.LinkBandRequest(guest_id="g", band_uid="u2", idempotency_key="k1")
    assert idempotency.request_hash(a) == idempotency.request_hash(b)
    assert idempotency.request_hash(a) != idempotency.request_hash(c)
