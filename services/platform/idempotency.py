"""Idempotent writes: the key, a hash of the request and the reply, stored in the
same transaction as the write.

A retried request with the same key gets the stored reply and writes nothing; the
same key with a different request is refused; two concurrent retries serialize on
the key's row, so exactly one of them does the write.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from google.protobuf.message import Message

from services.platform.errors import FailedPrecondition, InvalidArgument

_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Idem:
    """An idempotent write: scope (method and caller), key, and request hash."""

    scope: str
    key: str
    digest: bytes


async def once(
    pool: asyncpg.Pool,
    idem: Idem | None,
    parse: Callable[[bytes], T],
    serialize: Callable[[T], bytes],
    work: Callable[[asyncpg.Connection], Awaitable[T]],
) -> T:
    """Run `work` in a transaction, once per idempotency key: a retry gets the
    stored reply. Without a key (or `idem`) the work simply runs."""
    async with pool.acquire() as conn, conn.transaction():
        if idem is not None and idem.key:
            prior = await claim(conn, idem.scope, idem.key, idem.digest)
            if prior is not None:
                return parse(prior)
        result = await work(conn)
        if idem is not None and idem.key:
            await remember(conn, idem.scope, idem.key, serialize(result))
        return result


def check_key(key: str, field: str = "idempotency_key", required: bool = False) -> str:
    if not key:
        if required:
            raise InvalidArgument(field, "required: a retry-safe write needs a key")
        return ""
    if not _KEY.match(key):
        raise InvalidArgument(field, "1 to 128 printable ASCII characters without spaces")
    return key


def request_hash(request: Message, key_field: str = "idempotency_key") -> bytes:
    """Hash of the request without its key, stable across retries."""
    stripped = type(request)()
    stripped.CopyFrom(request)
    if key_field in stripped.DESCRIPTOR.fields_by_name:
        stripped.ClearField(key_field)
    return hashlib.sha256(stripped.SerializeToString(deterministic=True)).digest()


async def claim(conn: asyncpg.Connection, scope: str, key: str, digest: bytes) -> bytes | None:
    """In the caller's transaction: the stored reply if this key was used before,
    else None after claiming the key for this transaction."""
    claimed = await conn.fetchval(
        "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3) "
        "ON CONFLICT (scope, key) DO NOTHING RETURNING true",
        scope,
        key,
        digest,
    )
    if claimed:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, response FROM idempotency_keys WHERE scope = $1 AND key = $2",
        scope,
        key,
    )
    if row is None or row["response"] is None:  # pragma: no cover - claimed rows get replies
        raise FailedPrecondition(
            "the first request with this key has not finished", reason="IDEMPOTENCY_IN_FLIGHT"
        )
    if bytes(row["request_hash"]) != digest:
        raise FailedPrecondition(
            "idempotency key already used for a different request",
            reason="IDEMPOTENCY_KEY_REUSED",
            subject="idempotency_key",
        )
    return bytes(row["response"])


async def remember(conn: asyncpg.Connection, scope: str, key: str, response: bytes) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET response = $3 WHERE scope = $1 AND key = $2",
        scope,
        key,
        response,
    )
