"""The embedded PostgreSQL: a real server from the `pgserver` package.

Used when DATABASE_URL is unset, so that a fresh clone needs nothing but pip. The
server lives in <data dir>/pg, listens only on a Unix socket, and outlives the
process that started it until `stop()`; any process of the suite that calls
`ensure_running()` on the same data directory gets the same server.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import subprocess
import warnings
from pathlib import Path

# platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers, CI);
# pgserver then uses /tmp, which is what we want.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pgserver import _commands
    from pgserver.postgres_server import PostgresServer, get_server

# pgserver builds its command wrappers at run time; mypy cannot see them.
pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]

log = logging.getLogger("venue.db")

# The suite runs seven services, each with a pool, plus stream listeners and tests.
SETTINGS = {
    "max_connections": "400",
    "shared_buffers": "256MB",
    "wal_buffers": "16MB",
    "max_wal_size": "2GB",
    "checkpoint_timeout": "15min",
    # A short-lived tap commits alone; grouping concurrent commits keeps fsyncs down.
    "commit_delay": "200",
    "commit_siblings": "3",
}


def _pgdata(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir / "pg"


def _system_user() -> str | None:
    # pgserver runs postgres as an unprivileged user when we are root.
    return "pgserver" if os.geteuid() == 0 else None


def ensure_running(data_dir: Path, database: str = "venue") -> str:
    """Start (or find) the embedded server; returns a URL for `database`."""
    server = get_server(_pgdata(data_dir), cleanup_mode=None)
    if _apply_settings(server):
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=_system_user())
        server = _reopen(server)
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", database):
        raise ValueError(f"bad database name {database!r}")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return str(server.get_uri(database))


def _forget(pgdata: Path) -> None:
    """Drop pgserver's handle so the next call looks at the server afresh."""
    handle = PostgresServer._instances.pop(pgdata.resolve(), None)
    if handle is not None:
        atexit.unregister(handle._cleanup)


def _reopen(server: PostgresServer) -> PostgresServer:
    _forget(server.pgdata)
    return get_server(server.pgdata, cleanup_mode=None)


def _apply_settings(server: PostgresServer) -> bool:
    """ALTER SYSTEM what differs; True when a restart is needed for it to take effect."""
    names = ",".join(f"'{n}'" for n in SETTINGS)
    rows = server.psql(f"SELECT n || '=' || current_setting(n) FROM unnest(ARRAY[{names}]) AS n;")
    current = {line.strip() for line in rows.splitlines()}
    changed = [n for n, v in SETTINGS.items() if f"{n}={v}" not in current]
    for name in changed:
        server.psql(f"ALTER SYSTEM SET {name} = '{SETTINGS[name]}';")
    if not changed:
        return False
    server.psql("SELECT pg_reload_conf();")
    pending = server.psql("SELECT count(*) FROM pg_settings WHERE pending_restart;")
    return any(line.strip().isdigit() and int(line.strip()) > 0 for line in pending.splitlines())


def stop(data_dir: Path, mode: str = "fast") -> None:
    pgdata = _pgdata(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return
    try:
        pg_ctl(["-w", "-m", mode, "stop"], pgdata=pgdata, user=_system_user())
    except subprocess.CalledProcessError:
        log.warning("embedded PostgreSQL was not running")
    _forget(pgdata)
