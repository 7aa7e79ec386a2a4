"""Shared fixtures: a real PostgreSQL for the session (embedded, or a fresh
database on DATABASE_URL's server), and a data directory with keys."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.platform import embedded_pg


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("venue-data")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this test session's own."""
    external = os.environ.get("DATABASE_URL")
    if external:
        name = f"venue_test_{uuid.uuid4().hex[:8]}"

        async def create() -> None:
            conn = await asyncpg.connect(external)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        async def drop() -> None:
            conn = await asyncpg.connect(external)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(create())
        yield urlunsplit(urlsplit(external)._replace(path=f"/{name}"))
        asyncio.run(drop())
        return
    pg_dir = tmp_path_factory.mktemp("pg")
    url = embedded_pg.ensure_running(pg_dir, database="venue_test")
    yield url
    embedded_pg.stop(pg_dir, mode="immediate")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def schema() -> str:
    """A schema name of this test's own, so tests never see each other's tables."""
    return f"t_{uuid.uuid4().hex[:12]}"
