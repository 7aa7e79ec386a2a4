"""Migrations against the real PostgreSQL: applied once, safe when two processes
start at once, and refusing a rewritten history."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from services.platform import migrations


def write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


async def test_migrations_apply_once(database_url: str, schema: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_things.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    write(tmp_path, "0002_more.sql", "ALTER TABLE things ADD COLUMN name text;")
    folders = {"platform": migrations.PLATFORM_MIGRATIONS, "svc": tmp_path}
    conn = await asyncpg.connect(database_url)
    try:
        first = await migrations.migrate(conn, schema, folders)
        second = await migrations.migrate(conn, schema, folders)
        assert first == ["platform/0001_platform", "svc/0001_things", "svc/0002_more"]
        assert second == []
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'things'",
            schema,
        )
        assert {c["column_name"] for c in columns} == {"id", "name"}
    finally:
        await conn.close()


async def test_concurrent_starts_apply_each_migration_once(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    # A migration that fails if run twice (no IF NOT EXISTS) proves single application.
    write(tmp_path, "0001_slow.sql", "SELECT pg_sleep(0.3); CREATE TABLE once (id int);")
    folders = {"platform": migrations.PLATFORM_MIGRATIONS, "svc": tmp_path}
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c, schema, folders) for c in conns))
        applied = [name for result in results for name in result]
        assert sorted(applied) == ["platform/0001_platform", "svc/0001_slow"]
    finally:
        for conn in conns:
            await conn.close()


async def test_changed_applied_migration_is_refused(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    conn = await asyncpg.connect(database_url)
    try:
        await migrations.migrate(conn, schema, {"svc": tmp_path})
        write(tmp_path, "0001_a.sql", "CREATE TABLE a (id bigint);")
        with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
            await migrations.migrate(conn, schema, {"svc": tmp_path})
    finally:
        await conn.close()


async def test_failed_migration_leaves_nothing_half_done(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    write(tmp_path, "0002_bad.sql", "CREATE TABLE half (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrations.migrate(conn, schema, {"svc": tmp_path})
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        assert {t["table_name"] for t in tables} == {"ok", "schema_migrations"}
    finally:
        await conn.close()


def test_badly_named_migration_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "1_init.sql", "SELECT 1;")
    with pytest.raises(migrations.MigrationError, match="NNNN_description"):
        migrations.load("svc", tmp_path)
