"""Which exceptions of service code become which status (the fault suite found a
database restart answered INTERNAL, which no client retries)."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from services.platform.interceptors import map_exception


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("terminating connection because of crash of another server"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionResetError(),
    ],
)
def test_a_database_restarting_or_gone_is_unavailable_not_internal(exc: Exception) -> None:
    mapped = map_exception(exc)
    assert mapped is not None
    assert mapped.code == grpc.StatusCode.UNAVAILABLE


def test_a_bug_is_still_internal() -> None:
    assert map_exception(asyncpg.UndefinedColumnError("no such column")) is None
    assert map_exception(KeyError("x")) is None
