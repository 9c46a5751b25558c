"""The store on a real SQLite file: migrations, group commit, failure isolation, backup."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from schedd.errors import Conflict, StoreError, Unavailable
from schedd.store import runs, schedules
from schedd.store.db import Database, backup, migrations

T0 = 1_767_225_600.0


@pytest.fixture
async def db(tmp_path):
    batches: list[int] = []
    database = Database(tmp_path / "s.db", on_commit=lambda n, _s: batches.append(n))
    database.batches = batches
    await database.open()
    yield database
    await database.close()


def new_schedule(uid: str, **kw) -> schedules.NewSchedule:
    base = dict(uid=uid, family="maintenance", cron="0 0 4 ? * * *", cron_normalized="0 0 4 ? * * *",
                timezone="UTC", created_at=T0, org_id="default", next_fire_at=T0 + 60)
    base.update(kw)
    return schedules.NewSchedule(**base)


async def test_migrations_create_every_table_and_apply_once(db, tmp_path):
    tables = {row[0] for row in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"orgs", "users", "user_orgs", "tokens", "schedules", "runs", "windows", "window_events"} <= tables
    assert await db.migrate() == []
    versions = [row[0] for row in await db.fetchall("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in migrations()]


async def test_writes_queued_in_one_turn_commit_together(db):
    await db.execute("INSERT INTO orgs (id, created_at) VALUES ('default', 0)")
    db.batches.clear()
    await asyncio.gather(*(schedules.insert(db, new_schedule(f"u{i}")) for i in range(50)))
    assert sum(db.batches) == 50
    assert len(db.batches) <= 3  # grouped, not one transaction per write
    assert len(await schedules.list_scope(db, "maintenance", "default")) == 50


@pytest.mark.parametrize("fields", [
    {},
    dict(family="service", org_id=None, name="nightly", description="d", spec={"b": [1, 2], "a": {"x": None}},
         full_build=True, active=False, next_fire_at=None, misfire_policy="skip", overlap_policy="allow",
         timeout=2.5, retries=3, history_strategy="FULL", retention_days=7, created_by="alice"),
    dict(family="aggregate", project_id="p", cube_id="c", full_build=False),
])
async def test_insert_answers_exactly_what_a_later_read_gives(db, fields):
    await db.execute("INSERT INTO orgs (id, created_at) VALUES ('default', 0)")
    made = await schedules.insert(db, new_schedule("same", **fields))
    assert made == await schedules.get(db, made.id)


async def test_a_failing_write_fails_alone(db):
    await db.execute("INSERT INTO orgs (id, created_at) VALUES ('default', 0)")
    good = [schedules.insert(db, new_schedule(f"g{i}")) for i in range(5)]
    bad = schedules.insert(db, new_schedule("g1"))  # duplicate uid
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(isinstance(r, schedules.Schedule) for r in results[:5])
    assert isinstance(results[5], (StoreError, Conflict))
    assert len(await schedules.list_scope(db, "maintenance", "default")) == 5


async def test_acknowledged_write_is_on_disk_for_another_connection(db, tmp_path):
    await db.execute("INSERT INTO orgs (id, created_at) VALUES ('acme', 0)")
    other = sqlite3.connect(tmp_path / "s.db")
    assert other.execute("SELECT id FROM orgs").fetchall() == [("acme",)]
    other.close()


async def test_reads_do_not_wait_for_a_slow_write(db):
    started = threading.Event()
    release = threading.Event()

    def slow(conn):
        conn.execute("INSERT INTO orgs (id, created_at) VALUES ('slow', 0)")
        started.set()
        release.wait(10)  # holds the writer's thread inside its open transaction

    writer = asyncio.create_task(db.write(slow))
    assert await asyncio.to_thread(started.wait, 10)
    rows = await asyncio.wait_for(db.fetchall("SELECT id FROM orgs"), 2)
    assert rows == []  # the read saw the last committed state, without waiting
    release.set()
    await writer
    assert [r[0] for r in await db.fetchall("SELECT id FROM orgs")] == ["slow"]


async def test_a_write_op_is_a_plain_function_not_a_coroutine(db):
    async def wrong(conn):
        conn.execute("INSERT INTO orgs (id, created_at) VALUES ('wrong', 0)")

    with pytest.raises(TypeError, match="plain function"):
        await db.write(wrong)
    await db.execute("INSERT INTO orgs (id, created_at) VALUES ('after', 0)")  # the writer goes on
    assert [r[0] for r in await db.fetchall("SELECT id FROM orgs")] == ["after"]


async def test_full_database_answers_unavailable_and_recovers(db):
    await db.execute("INSERT INTO orgs (id, created_at) VALUES ('default', 0)")
    pages = (await db.fetchone("PRAGMA page_count"))[0]
    await db.write(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))
    with pytest.raises(Unavailable):
        await db.execute("INSERT INTO runs (uid, family, overlap_key, trigger, state, created_at, error)"
                         " VALUES ('x', 'maintenance', 'k', 't', 'done', 0, ?)", ("x" * 200_000,))
    assert await db.fetchone("SELECT 1 FROM runs") is None
    await db.write(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
    await db.execute("INSERT INTO runs (uid, family, overlap_key, trigger, state, created_at)"
                     " VALUES ('y', 'maintenance', 'k', 't', 'done', 0)")
    assert (await db.fetchone("SELECT count(*) FROM runs"))[0] == 1


async def test_interrupt_open_closes_queued_and_inprogress_runs(db):
    await db.execute("INSERT INTO orgs (id, created_at) VALUES ('default', 0)")

    def fill(conn):
        for i, state in enumerate(["queued", "inprogress", "done"]):
            runs.op_insert(conn, runs.NewRun(
                uid=f"r{i}", family="maintenance", overlap_key="maintenance:default",
                trigger="ManualMaintenance", state=state, created_at=T0, org_id="default"))

    await db.write(fill)
    closed = await db.write(lambda conn: runs.op_interrupt_open(conn, T0 + 5, "crashed"))
    assert sorted(uid for _, _, uid in closed) == ["r0", "r1"]
    states = {r.uid: (r.state, r.error) for r in await runs.list_org(db, "maintenance", "default", limit=10, offset=0)}
    assert states == {"r0": ("interrupted", "crashed"), "r1": ("interrupted", "crashed"), "r2": ("done", None)}


async def test_backup_copies_a_live_database(db, tmp_path):
    await db.execute("INSERT INTO orgs (id, created_at) VALUES ('acme', 0)")
    seen = []
    backup(tmp_path / "s.db", tmp_path / "copy.db", lambda done, total: seen.append((done, total)))
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("SELECT id FROM orgs").fetchall() == [("acme",)]
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copy.close()
    assert seen and seen[-1][0] == seen[-1][1]
    with pytest.raises(StoreError):
        backup(tmp_path / "s.db", tmp_path / "copy.db")


async def test_the_write_ahead_log_shrinks_back_after_a_burst(db, tmp_path):
    """A long read holds checkpoints back while writes pile up; once it ends, the log is cut back."""
    from schedd.store.db import WAL_SIZE_LIMIT

    wal = tmp_path / "s.db-wal"
    reader = sqlite3.connect(db.path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM orgs").fetchone()  # a snapshot: the log cannot be reset under it
    for batch in range(12):
        await db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
                         "INSERT INTO orgs (id, created_at) SELECT ? || i, 0 FROM n", (f"burst-{batch}-" + "x" * 400,))
    grown = wal.stat().st_size
    assert grown > 2 * WAL_SIZE_LIMIT
    reader.execute("COMMIT")
    reader.close()
    for batch in range(3):  # the next commit checkpoints the whole log, and the write after it starts it again
        await db.execute("INSERT INTO orgs (id, created_at) VALUES (?, 0)", (f"after-{batch}",))
    assert wal.stat().st_size <= WAL_SIZE_LIMIT
