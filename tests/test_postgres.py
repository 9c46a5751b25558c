"""What only the PostgreSQL store has: migrations under an advisory lock, its schema against the
enums and against SQLite's, the pool size, and its errors. The Protocol's own tests run on
both stores in tests/test_store_protocol.py."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
import time

import pytest

from schedd import config as config_mod
from schedd.compose import install_families
from schedd.errors import StoreError, Unavailable
from schedd.states import Family, RunState, WindowState, values
from schedd.store import db as sqlite_db
from schedd.store.copy import PG_ONLY, SCHEMA_VERSION, TABLES
from schedd.store.postgres import db as pg_db
from schedd.store.postgres.store import PgStore
from schedd.store.protocol import LeaseLost
from schedd.store.runs import Finish, Fired, NewRun, Outcome
from schedd.store.schedules import NewSchedule
from schedd.store.windows import NewEvent, Window
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


# -- several instances on one database ---------------------------------------------------------

T0 = 1_767_225_600.0


@pytest.fixture
async def instances(pg_url):
    """Three stores on one database, as three instances would open it."""
    install_families()
    made = [PgStore.at(pg_url, pool_size=3) for _ in range(3)]
    for store in made:
        await store.open()
    yield made
    for store in made:
        await store.close()


async def _until(check, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_the_lease_goes_to_one_instance_at_a_time_and_its_epoch_only_grows(instances):
    a, b, again = instances
    assert a.lease.shared and await a.lease.take("a", 0.4) == 1
    assert await b.lease.take("b", 0.4) is None
    assert await a.lease.take("a", 0.4) == 1  # renewed: the same epoch
    assert await again.lease.take("a", 0.4) is None  # the same name, another process: not the holder
    held = await b.lease.current()
    assert (held.holder, held.epoch) == ("a", 1) and 0 < held.expires_in <= 0.4
    await asyncio.sleep(0.5)  # the lease lapses on the server's clock
    assert (await b.lease.current()).expires_in == 0
    assert await b.lease.take("b", 30) == 2 and await a.lease.take("a", 30) is None
    await b.lease.release("b", 1)  # an old epoch releases nothing
    assert (await a.lease.current()).holder == "b"
    await b.lease.release("b", 2)
    assert (await a.lease.current()).holder is None
    assert await a.lease.take("a", 30) == 3


async def test_an_instance_fenced_out_records_no_fire_and_starts_no_run(instances):
    a, b, _ = instances
    await a.accounts.ensure_org("acme", T0)
    made = await a.schedules.insert(NewSchedule(uid="s1", family=Family.MAINTENANCE, cron="* * * ? * * *",
                                                cron_normalized="* * * ? * * *", timezone="UTC", created_at=T0,
                                                org_id="acme", next_fire_at=T0))

    def due(uid: str) -> NewRun:
        return NewRun(uid=uid, family=Family.MAINTENANCE, overlap_key=made.overlap_key, trigger="Scheduled",
                      state=RunState.QUEUED, created_at=T0, schedule_id=made.id, org_id="acme", due_at=T0)

    a.fires.set_fence("a", await a.lease.take("a", 0.3))
    [first], _ = await a.fires.record_fires([(due("r1"), None)], [Fired(made.id, T0 + 1)], skip_since=T0, at=T0)
    queued = await a.fires.start_now(due("r2"), made.id)
    api_run = await a.fires.start_now(dataclasses.replace(due("r4"), trigger="Manual", due_at=None), made.id)
    await asyncio.sleep(0.4)
    b.fires.set_fence("b", await b.lease.take("b", 30))
    with pytest.raises(LeaseLost):
        await a.fires.record_fires([(due("r3"), None)], [Fired(made.id, T0 + 2)], skip_since=T0, at=T0 + 1)
    with pytest.raises(LeaseLost):
        await a.fires.mark_started(first, T0 + 1)
    assert await a.fires.mark_started(api_run, T0 + 1) is True  # a run started through the API starts anywhere
    assert await a.runs.get_by_uid("r3") is None and (await a.schedules.get(made.id)).next_fire_at == T0 + 1
    assert await b.fires.mark_started(queued, T0 + 2) is True  # the holder's writes go on
    a.fires.set_fence(None, None)  # no fence carried: nothing checked
    assert await a.fires.mark_started(first, T0 + 3) is True


async def test_an_instance_stopped_inside_a_fire_write_does_not_hold_the_takeover_up(instances):
    """A process stopped (SIGSTOP) between two statements of a fire write holds the lease's row
    locked for share; the server ends its session, so the next instance takes the lease."""
    a, b, _ = instances
    a.fires.set_fence("a", await a.lease.take("a", 0.3))
    stopped = asyncio.Event()

    async def fire_write_then_stop(conn):
        await a.me.check(conn)  # the lease's row, locked for share
        stopped.set()
        await asyncio.Event().wait()  # never sends its next statement

    held = asyncio.create_task(a.db.write(fire_write_then_stop))
    try:
        await stopped.wait()
        await asyncio.sleep(0.4)  # the lease lapses
        began = time.monotonic()
        assert await asyncio.wait_for(b.lease.take("b", 30), 10) == 2
        assert time.monotonic() - began < pg_db.IDLE_IN_TRANSACTION_MS / 1000 + 2
    finally:
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)


async def test_runs_whose_instance_stopped_are_closed_by_the_one_that_fires(instances):
    a, b, restarted = instances
    await a.accounts.ensure_org("acme", T0)
    made = await a.schedules.insert(NewSchedule(uid="s1", family=Family.MAINTENANCE, cron="* * * ? * * *",
                                                cron_normalized="* * * ? * * *", timezone="UTC", created_at=T0,
                                                org_id="acme"))

    def run(uid: str) -> NewRun:
        return NewRun(uid=uid, family=Family.MAINTENANCE, overlap_key=made.overlap_key, trigger="Manual",
                      state=RunState.INPROGRESS, created_at=T0, schedule_id=made.id, org_id="acme", started_at=T0)

    await a.lease.beat("a", 0.4)
    await b.lease.beat("b", 30)
    mine = await a.fires.start_now(run("a1"), made.id)
    theirs = await b.fires.start_now(run("b1"), made.id)
    assert sorted(name for name, _ in await b.lease.instances()) == ["a", "b"]
    assert await b.fires.interrupt_open(T0 + 1, "gone") == []  # both alive
    await asyncio.sleep(0.5)
    assert [name for name, _ in await b.lease.instances()] == ["b"]
    assert await b.fires.interrupt_open(T0 + 2, "gone") == [(mine, made.id, "a1")]
    await a.fires.finish(mine, Finish(state=RunState.DONE, ended_at=T0 + 3),
                         Outcome(made.id, ok=True, counted=True, status="done", run_uid="a1", at=T0 + 3))
    closed = await b.runs.get_by_uid("a1")
    assert (closed.state, closed.error) == ("interrupted", "gone")  # left as the takeover closed it
    counted = await b.schedules.get(made.id)
    assert (counted.success_count, counted.fail_count) == (0, 1)
    # an instance started again under the same name: the runs of the one before are orphans
    await restarted.lease.beat("b", 30)
    assert await a.fires.interrupt_open(T0 + 4, "gone") == [(theirs, made.id, "b1")]
    # the instance that fired before: its runs are closed though it still beats
    again = await restarted.fires.start_now(run("b2"), made.id)
    assert await a.fires.interrupt_open(T0 + 5, "gone") == []
    assert await a.fires.interrupt_open(T0 + 5, "taken over", previous="b") == [(again, made.id, "b2")]


async def test_changes_made_by_one_instance_are_heard_by_another(instances):
    a, b, _ = instances
    heard: list[tuple[str, int]] = []
    await a.listen(lambda kind, ident: heard.append((kind, ident)))
    await b.accounts.ensure_org("acme", T0)
    made = await b.schedules.insert(NewSchedule(uid="s1", family=Family.MAINTENANCE, cron="* * * ? * * *",
                                                cron_normalized="* * * ? * * *", timezone="UTC", created_at=T0,
                                                org_id="acme", next_fire_at=T0))
    await b.schedules.set_active(made.id, False, None, by="bob", at=T0)
    await b.fires.record_fires([], [Fired(made.id, T0 + 5)], skip_since=T0, at=T0)  # not a change
    await b.schedules.replace(made.id, NewSchedule(uid="s1", family=Family.MAINTENANCE, cron="0 * * ? * * *",
                                                   cron_normalized="0 * * ? * * *", timezone="UTC",
                                                   created_at=T0, org_id="acme"), by="bob", at=T0)
    window = await b.windows.insert(
        Window(id=0, name="w", description=None, external_reference=None, external_link=None,
               status=WindowState.SCHEDULED, scope_id=1, service_id=2, service_status="down", creation_date=T0,
               scheduled_start_date=T0 + 60, scheduled_end_date=T0 + 120, start_date=None, end_date=None),
        NewEvent("Maintenance created", "create"), at=T0)
    await b.windows.save(window, [], at=T0)
    assert not await b.schedules.delete(made.id + 100)  # nothing deleted: nothing heard
    await b.schedules.delete(made.id)
    await b.windows.delete(window.id)
    expected = [("schedule", made.id)] * 3 + [("window", window.id)] * 2 + [("schedule", made.id),
                                                                            ("window", window.id)]
    await _until(lambda: len(heard) >= len(expected))
    await asyncio.sleep(0.05)
    assert heard == expected
