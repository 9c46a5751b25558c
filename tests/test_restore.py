"""`schedd db backup` under a real workload, then `schedd db restore`: what was acknowledged comes back.

Restore refuses while a daemon owns the database, refuses a backup that fails its
integrity check, is not schedd's or has a newer schema, and keeps the file it replaces
(with what its write-ahead log held) aside.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, schedd

SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/default"


class Workload(threading.Thread):
    """Creates schedules one after another, noting when each was acknowledged."""

    def __init__(self, daemon: Daemon, token: str) -> None:
        super().__init__(daemon=True)
        self.daemon_under_test, self.token = daemon, token
        self.acknowledged: list[tuple[float, str]] = []  # (monotonic time of the answer, job id)
        self.stop = threading.Event()
        self.failure: str | None = None

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            status, body = self.daemon_under_test.request(
                "POST", SCHEDULES, {"time_expression": f"0 {n % 60} {n % 24} ? * * *",
                                    "scheduler_type": "time-based"}, self.token)
            if status != 200:
                self.failure = f"{status} {body}"
                return
            self.acknowledged.append((time.monotonic(), body["response"]["job_id"]))

    def count(self) -> int:
        return len(self.acknowledged)


def uids(db: str | Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT uid FROM schedules WHERE family = 'maintenance'")}
    finally:
        conn.close()


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_backup_under_load_then_restore_brings_back_every_acknowledged_write(daemon_factory, tmp_path):
    daemon = daemon_factory([sys.executable, "-c", "pass"]).start()
    args = ("--db", daemon.db, "--config", str(daemon.config))
    work = Workload(daemon, daemon.login())
    work.start()
    daemon.wait_for(lambda: work.count() >= 30)
    backup = tmp_path / "backup.db"
    started = time.monotonic()
    out = schedd("db", "backup", str(backup), *args)
    finished = time.monotonic()
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    before = {uid for at, uid in work.acknowledged if at < started}
    daemon.wait_for(lambda: sum(1 for at, _ in work.acknowledged if at > finished) >= 30)

    # While the daemon runs, restore is refused and changes nothing.
    ours = ("schedd.db", "daemon.log")  # the daemon's own files change all the time
    snapshot = {name: data for name, data in files(tmp_path).items() if not name.startswith(ours)}
    refused = schedd("db", "restore", str(backup), *args)
    assert refused.returncode == 2
    (line,) = refused.stderr.splitlines()
    assert re.fullmatch(rf"schedd: database {re.escape(daemon.db)} is in use by schedd pid {daemon.proc.pid} "
                        r"\(since \S+\); stop it before restoring", line), line
    assert {n: d for n, d in files(tmp_path).items() if not n.startswith(ours)} == snapshot

    work.stop.set()
    work.join(30)
    assert work.failure is None, work.failure
    acknowledged = {uid for _, uid in work.acknowledged}
    after = {uid for at, uid in work.acknowledged if at > finished}
    daemon.proc.kill()  # kill -9: the newest writes are still in the write-ahead log
    daemon.proc.wait()
    assert Path(daemon.db + "-wal").stat().st_size > 0

    out = schedd("db", "restore", str(backup), *args)
    assert out.returncode == 0, out.stderr
    restored_line, aside_line = out.stdout.splitlines()
    assert restored_line == f"{daemon.db} restored from {backup}"
    aside = aside_line.removeprefix("the database it replaced is kept as ")
    assert re.fullmatch(rf"{re.escape(daemon.db)}\.replaced-\d{{8}}T\d{{6}}Z", aside), aside
    assert uids(aside) == acknowledged  # the replaced file, its log folded in, lost nothing
    assert stat.S_IMODE(os.stat(daemon.db).st_mode) == 0o600
    restored = uids(daemon.db)
    assert before <= restored  # every write acknowledged before the backup began
    assert not after & restored  # and nothing acknowledged after it ended

    daemon.start()
    _, listed = daemon.request("GET", SCHEDULES, token=daemon.login())
    assert {s["job_id"] for s in listed["response"]} == restored
    assert daemon.stop() == 0


@pytest.fixture
def stopped(daemon_factory, tmp_path) -> tuple[Daemon, Path]:
    """A database with a user and no daemon, and a good backup of it."""
    daemon = daemon_factory([sys.executable, "-c", "pass"])
    backup = tmp_path / "good.db"
    assert schedd("db", "backup", str(backup), "--db", daemon.db).returncode == 0
    return daemon, backup


def refuse(daemon: Daemon, backup: Path, says: str) -> None:
    directory = Path(daemon.db).parent
    before = files(directory)
    out = schedd("db", "restore", str(backup), "--db", daemon.db, "--config", str(daemon.config))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.splitlines()
    assert says in line, line
    after = files(directory)
    after.pop("schedd.db.lock", None)
    before.pop("schedd.db.lock", None)
    assert after == before


def test_a_corrupt_backup_is_refused(stopped):
    daemon, good = stopped
    bad = good.with_name("corrupt.db")
    conn = sqlite3.connect(good)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'users'").fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    data = bytearray(good.read_bytes())
    data[(root - 1) * size:(root - 1) * size + 8] = b"\xa5" * 8  # the users table's page header
    bad.write_bytes(bytes(data))
    refuse(daemon, bad, "fails its integrity check")


def test_a_backup_from_a_newer_schedd_is_refused(stopped):
    daemon, good = stopped
    newer = good.with_name("newer.db")
    newer.write_bytes(good.read_bytes())
    conn = sqlite3.connect(newer)
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)")
    conn.commit()
    conn.close()
    refuse(daemon, newer, "has schema version 9999, newer than this schedd knows")


def test_other_files_are_refused(stopped, tmp_path):
    daemon, _ = stopped
    plain = tmp_path / "plain.db"
    conn = sqlite3.connect(plain)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    refuse(daemon, plain, "is not a schedd database")
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 50)
    refuse(daemon, text, "is not an SQLite database")
    refuse(daemon, tmp_path / "missing.db", "no backup at")


def test_a_good_backup_restores_onto_a_stopped_daemon_and_keeps_the_old_file(stopped):
    daemon, good = stopped
    out = schedd("user", "add", "later", "--password-stdin", "--db", daemon.db, stdin="a later password\n")
    assert out.returncode == 0
    out = schedd("db", "restore", str(good), "--db", daemon.db, "--config", str(daemon.config))
    assert out.returncode == 0, out.stderr
    aside = out.stdout.splitlines()[1].removeprefix("the database it replaced is kept as ")
    names = lambda db: {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM users")}  # noqa: E731
    assert names(daemon.db) == {"ops"}
    assert names(aside) == {"ops", "later"}
    assert stat.S_IMODE(os.stat(aside).st_mode) == 0o600
    assert daemon.start().login()
    assert daemon.stop() == 0
