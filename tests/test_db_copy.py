"""`schedd db copy SRC DST` through the CLI: SQLite to PostgreSQL and back, row for row, and its refusals."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from schedd.cli import main
from schedd.compose import install_families
from schedd.states import Family, RunState, WindowState
from schedd.store.copy import SCHEMA_VERSION, TABLES
from schedd.store.db import check_backup
from schedd.store.lock import DatabaseLock
from schedd.store.postgres.store import PgStore
from schedd.store.runs import NewRun
from schedd.store.schedules import NewSchedule
from schedd.store.sqlite import SqliteStore
from schedd.store.windows import NewEvent, Window

T0 = 1_767_225_600.0


async def _fill(path: str) -> None:
    """A store with a row or more in every table, revocations included."""
    install_families()
    store = SqliteStore.at(path)
    await store.open()
    try:
        await store.accounts.ensure_org("acme", T0)
        alice = await store.accounts.create_user("alice", "h", email="a@x", is_admin=False, orgs=("acme", "b"),
                                                 at=T0)
        await store.accounts.add_tokens(alice, [(b"\x00\xffhash", "access", T0 + 60)], name="ci", at=T0)
        await store.accounts.revoke_token(b"\x00\xffhash", T0 + 1)
        for n in range(30):
            made = await store.schedules.insert(NewSchedule(
                uid=f"s{n}", family=Family.MAINTENANCE, cron="0 0 4 ? * * *", cron_normalized="0 0 4 ? * * *",
                timezone="Europe/Paris", created_at=T0 + n, org_id="acme", next_fire_at=T0 + 0.25 + n,
                spec={"n": n}, full_build=bool(n % 2)))
            for k in range(3):
                await store.runs.insert(NewRun(
                    uid=f"r{n}-{k}", family=Family.MAINTENANCE, overlap_key=made.overlap_key, trigger="Scheduled",
                    state=RunState.DONE, created_at=T0 + n + k / 8, schedule_id=made.id, org_id="acme",
                    started_at=T0 + n + 0.1, ended_at=T0 + n + 0.2, error="é ✓ \n quoted 'x'"))
        await store.schedules.delete(3)  # a gap in the ids
        window = await store.windows.insert(
            Window(id=0, name="upgrade", description="d", external_reference=None, external_link=None,
                   status=WindowState.SCHEDULED, scope_id=1, service_id=2, service_status="down",
                   creation_date=T0, scheduled_start_date=T0 + 60, scheduled_end_date=T0 + 120,
                   start_date=None, end_date=None),
            NewEvent("Maintenance created", "create", author_id=alice), at=T0)
        await store.windows.add_event(window.id, NewEvent("note", "comment", internal=True), at=T0 + 1)
        await store.grants.grant(alice, 7, at=T0)
    finally:
        await store.close()


def _tables(path: str) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608
                for table, cols in TABLES}
    finally:
        conn.close()


def test_sqlite_to_postgresql_and_back_keeps_every_row(tmp_path, pg_url, capsys):
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    asyncio.run(_fill(first))
    assert main(["db", "copy", first, pg_url]) == 0
    out = capsys.readouterr().out
    assert "runs: 87 rows" in out and "schedules: 29 rows" in out and "row counts agree" in out
    assert main(["db", "copy", pg_url, second]) == 0
    capsys.readouterr()
    before, after = _tables(first), _tables(second)
    assert all(before[table] for table, _ in TABLES)  # every table was tested with rows in it
    assert after == before

    async def goes_on() -> None:
        store = PgStore.at(pg_url)
        await store.open()
        try:  # the ids PostgreSQL hands out next come after the copied ones
            made = await store.schedules.insert(NewSchedule(
                uid="new", family=Family.SERVICE, cron="* * * ? * * *", cron_normalized="* * * ? * * *",
                timezone="UTC", created_at=T0, name="new"))
            assert made.id == 31
            assert (await store.accounts.lookup_token(b"\x00\xffhash")).revoked_at == T0 + 1
        finally:
            await store.close()

    asyncio.run(goes_on())


def test_a_destination_with_rows_is_refused_and_left_alone(tmp_path, pg_url, capsys):
    source = str(tmp_path / "a.db")
    asyncio.run(_fill(source))
    assert main(["db", "copy", source, pg_url]) == 0
    capsys.readouterr()
    assert main(["db", "copy", source, pg_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the destination is not empty (orgs holds 2 rows)" in err
    back = str(tmp_path / "back.db")
    assert main(["db", "copy", pg_url, back]) == 0
    assert _tables(back) == _tables(source)  # nothing was added twice
    assert main(["db", "copy", pg_url, back]) == 2
    assert "not empty" in capsys.readouterr().err


def test_an_sqlite_file_a_daemon_holds_is_not_copied(tmp_path, pg_url, capsys):
    source = str(tmp_path / "a.db")
    asyncio.run(_fill(source))
    with DatabaseLock.acquire(source):
        assert main(["db", "copy", source, pg_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in use by schedd pid" in err and "stop it before copying" in err
    destination = str(tmp_path / "b.db")
    asyncio.run(_fill(destination.replace("b.db", "c.db")))
    with DatabaseLock.acquire(destination):
        assert main(["db", "copy", pg_url, destination]) == 2
    assert "in use" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing", "same", "not sqlite", "no server"])
def test_bad_copies_exit_2_on_one_line(tmp_path, pg_url, capsys, case):
    source = str(tmp_path / "a.db")
    asyncio.run(_fill(source))
    args = {
        "missing": [str(tmp_path / "nothing.db"), pg_url],
        "same": [source, str(tmp_path / "." / "a.db")],
        "not sqlite": [source, str(tmp_path / "notes.txt")],
        "no server": [source, f"postgresql://postgres@/x?host={tmp_path}"],
    }[case]
    (tmp_path / "notes.txt").write_text("not a database\n")
    assert main(["db", "copy", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("schedd: ") and err.count("\n") == 1, err
    assert (tmp_path / "notes.txt").read_text() == "not a database\n"
    assert not (tmp_path / "nothing.db.lock").exists() and not (tmp_path / "notes.txt.lock").exists()


def test_a_backup_of_a_postgresql_store_is_an_sqlite_file_restore_takes(tmp_path, pg_url, capsys):
    source = str(tmp_path / "a.db")
    asyncio.run(_fill(source))
    assert main(["db", "copy", source, pg_url]) == 0
    backup = tmp_path / "backup.db"
    assert main(["db", "backup", "--db", pg_url, str(backup)]) == 0
    assert check_backup(backup) == SCHEMA_VERSION and backup.stat().st_mode & 0o777 == 0o600
    assert _tables(str(backup)) == _tables(source)
    assert main(["db", "backup", "--db", pg_url, str(backup)]) == 2  # never over an existing file
    assert "exists" in capsys.readouterr().err and _tables(str(backup)) == _tables(source)
