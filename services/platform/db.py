"""The service's connection pool, on its own schema, and the database it lives in."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg

from services.platform import embedded_pg

log = logging.getLogger("venue.db")


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """DATABASE_URL when given, else the embedded server in the data directory."""
    if database_url:
        return database_url
    return embedded_pg.ensure_running(data_dir)


async def _release(conn: asyncpg.Connection) -> None:
    """Nothing more on a connection's way back to the pool. asyncpg still rolls
    back an unfinished transaction and drops listener callbacks itself; its
    default reset query (RESET ALL, UNLISTEN *, advisory unlock) would cost a
    round trip on every release, and services keep no session state on pooled
    connections (listeners and advisory locks use connections of their own)."""


async def create_pool(url: str, schema: str, service: str, max_size: int = 8) -> asyncpg.Pool:
    """A pool whose connections see only the service's schema by default."""
    return await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"venue-{service}"},
        # Statements are prepared per connection; a fresh schema invalidates nothing.
        max_inactive_connection_lifetime=300,
        reset=_release,
    )


async def wait_for_database(url: str, timeout: float = 30.0) -> None:
    """Wait until PostgreSQL accepts connections (it may be restarting)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("waiting for the database", extra={"error": type(err).__name__})
            await asyncio.sleep(0.5)
        else:
            await conn.close()
            return
