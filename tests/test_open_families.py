"""Migration 0007 rebuilds SQLite's schedules and runs tables to open their family columns,
and loses nothing of a database made before it: rows, ids, AUTOINCREMENT high-water marks,
indexes, and the cascade from a schedule to its runs."""

from __future__ import annotations

import sqlite3

import pytest

from schedd.errors import StoreError
from schedd.store import db as sqlite_db
from schedd.store.db import Database

FAMILIES = ("maintenance", "aggregate", "service")


def _dump(path) -> dict[str, object]:
    conn = sqlite3.connect(path)
    try:
        return {
            "schedules": conn.execute("SELECT * FROM schedules ORDER BY id").fetchall(),
            "runs": conn.execute("SELECT * FROM runs ORDER BY id").fetchall(),
            "columns": {t: [r[1:] for r in conn.execute(f"PRAGMA table_info({t})")] for t in ("schedules", "runs")},
            "sequence": conn.execute("SELECT name, seq FROM sqlite_sequence WHERE name IN ('schedules', 'runs')"
                                     " ORDER BY name").fetchall(),
            "indexes": conn.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'"
                                    " ORDER BY name").fetchall(),
        }
    finally:
        conn.close()


async def _old_database(path, monkeypatch) -> None:
    """A database at schema version 5 with schedules and runs of every family, the newest of each deleted."""
    every = sqlite_db.migrations()
    monkeypatch.setattr(sqlite_db, "migrations", lambda: [m for m in every if m.version <= 5])
    db = Database(path)
    await db.open()
    await db.close()
    monkeypatch.undo()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("INSERT INTO orgs (id, created_at) VALUES ('acme', 0)")
        for n in range(1, 8):
            family = FAMILIES[n % 3]
            conn.execute(
                "INSERT INTO schedules (uid, family, org_id, name, cron, cron_normalized, timezone, spec,"
                " created_at, updated_at) VALUES (?, ?, 'acme', ?, '0 * * * *', '0 * * * *', 'UTC', '{}', ?, ?)",
                (f"s{n}", family, f"job {n}", n, n))
            for k in range(3):
                conn.execute(
                    "INSERT INTO runs (uid, family, schedule_id, overlap_key, org_id, trigger, state, created_at,"
                    " error, last_due_at) VALUES (?, ?, ?, ?, 'acme', 'Scheduled', 'failed', ?, 'boom', ?)",
                    (f"r{n}.{k}", family, n, f"{family}:{n}", n + k, n + k))
        conn.execute("DELETE FROM schedules WHERE id = 7")  # its runs go with it (the cascade)
        conn.execute("DELETE FROM runs WHERE id = (SELECT max(id) FROM runs)")
    conn.close()


async def test_an_old_database_keeps_every_row_id_sequence_and_index(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    await _old_database(path, monkeypatch)
    before = _dump(path)
    assert len(before["schedules"]) == 6 and len(before["runs"]) == 17
    assert dict(before["sequence"]) == {"schedules": 7, "runs": 21}

    db = Database(path)
    await db.open()
    assert db.applied == [6, 7]
    await db.close()

    after = _dump(path)
    assert after == before
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
        assert "'maintenance'" not in sql and "GLOB" in sql
    finally:
        conn.close()


async def test_after_the_rebuild_ids_go_on_from_the_old_high_water_mark_and_the_cascade_holds(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    await _old_database(path, monkeypatch)
    db = Database(path)
    await db.open()
    try:
        def write(conn: sqlite3.Connection) -> tuple[int, int]:
            cur = conn.execute(
                "INSERT INTO schedules (uid, family, cron, cron_normalized, timezone, created_at, updated_at)"
                " VALUES ('s-new', 'export', '0 * * * *', '0 * * * *', 'UTC', 0, 0)")
            schedule_id = cur.lastrowid
            cur = conn.execute("INSERT INTO runs (uid, family, schedule_id, overlap_key, trigger, state, created_at)"
                               " VALUES ('r-new', 'export', ?, 'k', 'Scheduled', 'done', 0)", (schedule_id,))
            return int(schedule_id or 0), int(cur.lastrowid or 0)

        schedule_id, run_id = await db.write(write)
        assert (schedule_id, run_id) == (8, 22)  # never an id a deleted row had

        def cascade(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM schedules WHERE id = 1")

        await db.write(cascade)
        rows = await db.fetchall("SELECT count(*) FROM runs WHERE schedule_id = 1")
        assert rows[0][0] == 0  # foreign keys are enforced again once the migrations are done

        def orphan(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO runs (uid, family, schedule_id, overlap_key, trigger, state, created_at)"
                         " VALUES ('r-orphan', 'export', 999, 'k', 'Scheduled', 'done', 0)")

        with pytest.raises(StoreError, match="FOREIGN KEY"):
            await db.write(orphan)
    finally:
        await db.close()


async def test_a_migration_that_would_break_a_foreign_key_is_rolled_back(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    db = Database(path)
    await db.open()
    await db.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO schedules (uid, family, cron, cron_normalized, timezone, created_at, updated_at)"
                     " VALUES ('s1', 'service', '0 * * * *', '0 * * * *', 'UTC', 0, 0)")
        conn.execute("INSERT INTO runs (uid, family, schedule_id, overlap_key, trigger, state, created_at)"
                     " VALUES ('r1', 'service', 1, 'k', 'Scheduled', 'done', 0)")
    conn.close()
    every = sqlite_db.migrations()
    broken = sqlite_db.Migration(99, "drops_schedules", "DELETE FROM schedules;")
    monkeypatch.setattr(sqlite_db, "migrations", lambda: [*every, broken])
    db = Database(path)
    with pytest.raises(StoreError, match="migration 0099_drops_schedules failed: 1 rows would refer to nothing"):
        await db.open()
    monkeypatch.undo()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM schedules").fetchone() == (1,)
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (7,)
    finally:
        conn.close()
