"""What only the PostgreSQL store has: migrations under an advisory lock, its schema against the
enums and against SQLite's, the pool size, and its errors. The Protocol's own tests run on
both stores in tests/test_store_protocol.py."""

from __future__ import annotations

import asyncio
import re
import sqlite3

import pytest

from schedd import config as config_mod
from schedd.errors import StoreError, Unavailable
from schedd.states import values
from schedd.store import db as sqlite_db
from schedd.store.copy import PG_ONLY, SCHEMA_VERSION, TABLES
from schedd.store.postgres import db as pg_db
from schedd.store.postgres.store import PgStore
from tests.support.postgres import Cluster
from tests.support.schema import CHECKED


async def test_two_stores_opening_a_new_database_at_once_migrate_it_once(pg_cluster: Cluster):
    url = await pg_cluster.new_database(migrated=False)
    stores = [PgStore.at(url, pool_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        applied = sorted(store.db.applied for store in stores)
        assert applied[-1] == [m.version for m in pg_db.migrations()] and applied[:-1] == [[], [], []]
        rows = await stores[0].db.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r[0], r[1]) for r in rows] == [(m.version, m.name) for m in pg_db.migrations()]
        again = PgStore.at(url)
        await again.open()
        assert again.db.applied == [] and await again.db.schema_version() == pg_db.migrations()[-1].version
        await again.close()
    finally:
        await asyncio.gather(*(store.close() for store in stores))
        await pg_cluster.drop_database(url)


async def test_the_schema_checks_allow_exactly_the_enum_values(pg_url):
    store = PgStore.at(pg_url)
    await store.open()
    try:
        for (table, column), kind in CHECKED.items():
            rows = await store.db.fetch(
                "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
                " WHERE t.relname = $1 AND c.contype = 'c'", table)
            found = [r[0] for r in rows if re.search(rf"\(\({column}\b", r[0])]
            assert len(found) == 1, (table, column, [r[0] for r in rows])
            assert tuple(re.findall(r"'([^']*)'::text", found[0])) == values(kind), (table, column)
    finally:
        await store.close()


async def test_both_schemas_have_the_same_tables_and_columns_that_copy_moves(tmp_path, pg_url):
    """A migration added to one backend and not the other, or a column `db copy` would drop, fails here."""
    assert max(m.version for m in sqlite_db.migrations()) == SCHEMA_VERSION
    assert [(m.version, m.name) for m in pg_db.migrations()][:SCHEMA_VERSION] == [
        (m.version, m.name) for m in sqlite_db.migrations()]
    lite = sqlite_db.Database(tmp_path / "s.db")
    await lite.open()
    await lite.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                        " AND name NOT IN ('schema_migrations', 'sqlite_sequence')")]
    sqlite_columns = {t: tuple(r[1] for r in conn.execute(f"PRAGMA table_info({t})")) for t in names}
    conn.close()
    store = PgStore.at(pg_url)
    await store.open()
    try:
        rows = await store.db.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position")
    finally:
        await store.close()
    pg_columns: dict[str, tuple[str, ...]] = {}
    for row in rows:
        if row[1] not in PG_ONLY.get(row[0], ()):
            pg_columns[row[0]] = (*pg_columns.get(row[0], ()), row[1])
    copied = {table: tuple(sorted(columns)) for table, columns in TABLES}
    assert {t: tuple(sorted(c)) for t, c in sqlite_columns.items()} == copied
    assert {t: tuple(sorted(c)) for t, c in pg_columns.items()} == copied


async def test_a_server_out_of_reach_is_unavailable_and_the_password_is_never_shown(tmp_path):
    store = PgStore.at(f"postgresql://schedd:s3cret@/schedd?host={tmp_path}")
    with pytest.raises(Unavailable) as caught:
        await store.open()
    assert "s3cret" not in str(caught.value) and "schedd:***@" in str(caught.value)
    assert not store.is_open
    with pytest.raises(StoreError):
        PgStore.at("/var/lib/schedd/schedd.db")
    assert pg_db.is_url("postgresql://h/db") and pg_db.is_url("postgres://h/db") and not pg_db.is_url("s.db")


def test_pool_size_is_configured_and_bounded(tmp_path):
    assert config_mod.DatabaseConfig().pool_size == 10
    path = tmp_path / "c.toml"
    path.write_text("[database]\npool_size = 25\n")
    assert config_mod.load(str(path)).database.pool_size == 25
    for bad in (0, 1000, "ten"):
        path.write_text(f"[database]\npool_size = {bad!r}\n".replace("'", '"'))
        with pytest.raises(config_mod.ConfigError, match="pool_size"):
            config_mod.load(str(path))
    with pytest.raises(ValueError):
        PgStore.at("postgresql:///x", pool_size=0)


async def test_a_store_uses_at_most_its_pool(pg_url):
    store = PgStore.at(pg_url, pool_size=3)
    await store.open()
    try:
        await asyncio.gather(*(store.db.fetchval("SELECT pg_sleep(0.05)") for _ in range(12)))
        mine = await store.db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'schedd'")
        assert 1 <= mine <= 3
    finally:
        await store.close()
