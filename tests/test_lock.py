"""One daemon per database: a second `schedd serve` is refused before it opens, recovers or binds.

Real processes: the first daemon holds a run in progress (a `sleep` command run now
through HTTP) while second daemons are started on the same database by every path that
names it; each must exit 2 at once, naming the first's pid, and leave its run alone.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schedd.store.lock import DatabaseInUse, DatabaseLock, lock_path
from tests.support.daemon import Daemon, schedd

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock and signals")

RUN_NOW = "/api/1.0/aggregates/maintenance/orgId/default/run-immediately"
SINCE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"


def serve(daemon: Daemon, db: str, *, port: int = 0, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "schedd", "serve", "--db", db, "--port", str(port),
         "--config", str(daemon.config)],
        capture_output=True, text=True, timeout=60, cwd=cwd)


def run_states(db: str) -> list[tuple[str, str]]:
    """(uid, state) of every run, read without writing (the first daemon owns the file)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT uid, state FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()


def start_long_run(daemon: Daemon) -> str:
    token = daemon.login()
    status, body = daemon.request("POST", RUN_NOW, token=token)
    assert status == 200, body
    (run,) = daemon.wait_for(lambda: [r for r in run_states(daemon.db) if r[1] == "inprogress"])
    return run[0]


def test_a_second_serve_by_any_path_is_refused_and_the_first_run_stays_inprogress(daemon_factory, tmp_path):
    first = daemon_factory(["sleep", "30"]).start()
    run_id = start_long_run(first)
    before = run_states(first.db)
    link = tmp_path / "elsewhere.db"
    link.symlink_to(first.db)
    assert first.proc is not None

    for db, cwd in ((first.db, None), ("schedd.db", tmp_path), (str(link), None)):
        started = time.monotonic()
        out = serve(first, db, cwd=cwd)
        assert out.returncode == 2, out.stderr
        assert time.monotonic() - started < 20
        (line,) = out.stderr.strip().splitlines()
        assert re.fullmatch(rf"schedd: database {re.escape(db)} is in use by schedd pid {first.proc.pid} "
                            rf"\(since {SINCE}\)", line), line
        assert "Traceback" not in out.stderr
    assert run_states(first.db) == before
    assert first.proc.poll() is None
    _, current = first.request("GET", "/aggregates/maintenance/orgId/default", token=first.login())
    assert (current["response"]["id"], current["response"]["status"]) == (run_id, "inprogress")
    assert "action=core_started" not in out.stderr  # nothing opened, nothing recovered

    first.proc.kill()  # kill -9: the kernel drops the lock with the process
    first.proc.wait()
    first.start()  # the same database, now free
    assert dict(run_states(first.db))[run_id] == "interrupted"
    assert first.stop() == 0


def test_the_readme_start_command_run_twice_changes_nothing_of_the_live_daemon(daemon_factory):
    """The same database and the same port: refused by the lock before the port is even tried."""
    first = daemon_factory(["sleep", "30"]).start()
    run_id = start_long_run(first)
    before = run_states(first.db)
    out = serve(first, first.db, port=first.port)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert "is in use by schedd pid" in line and "cannot listen" not in line
    assert run_states(first.db) == before
    assert dict(before)[run_id] == "inprogress"
    assert first.stop() == 0


def test_a_port_in_use_fails_the_second_daemon_without_touching_the_first(daemon_factory, tmp_path):
    """Another database on the first's port: it cannot listen and exits 2; the first's run goes on."""
    first = daemon_factory(["sleep", "30"]).start()
    run_id = start_long_run(first)
    other = tmp_path / "other"
    other.mkdir()
    out = serve(first, str(other / "schedd.db"), port=first.port)
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{first.port}" in out.stderr and "Traceback" not in out.stderr
    assert dict(run_states(first.db))[run_id] == "inprogress"
    status, _ = first.request("GET", "/healthz")
    assert status == 200
    assert first.stop() == 0


def test_short_cli_writes_work_while_the_daemon_runs(daemon_factory, tmp_path):
    daemon = daemon_factory([sys.executable, "-c", "pass"]).start()
    args = ("--db", daemon.db, "--config", str(daemon.config))
    assert schedd("org", "add", "acme", *args).returncode == 0
    out = schedd("user", "add", "ann", "--org", "acme", "--password-stdin", *args, stdin="ann's password\n")
    assert out.returncode == 0, out.stderr
    token = schedd("token", "create", "ann", *args).stdout.strip()
    assert daemon.request("GET", "/aggregates/maintenance/scheduler/jobs/orgId/acme", token=token)[0] == 200
    out = schedd("db", "backup", str(tmp_path / "copy.db"), *args)
    assert out.returncode == 0, out.stderr
    assert daemon.stop() == 0


def test_serve_daemon_writes_the_detached_pid_into_the_lock(daemon_factory, tmp_path):
    daemon = daemon_factory([sys.executable, "-c", "pass"])
    pidfile, log = tmp_path / "schedd.pid", tmp_path / "detached.log"
    out = schedd("serve", "--daemon", "--pidfile", str(pidfile), "--log-file", str(log), "--port", "0",
                 "--db", daemon.db, "--config", str(daemon.config))
    assert out.returncode == 0, out.stderr
    pid = int(pidfile.read_text())
    try:
        # The process that detached has exited: the lock is held by the daemon alone.
        out = schedd("serve", "--port", "0", "--db", daemon.db, "--config", str(daemon.config))
        assert out.returncode == 2
        assert f"is in use by schedd pid {pid} (since" in out.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
    daemon.wait_for(lambda: not pidfile.exists())


def test_the_lock_file_is_private_and_one_holder_at_a_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "x.db")
    with DatabaseLock.acquire(db) as lock:
        assert lock.path == lock_path("x.db") == os.path.realpath(db) + ".lock"
        assert os.stat(lock.path).st_mode & 0o777 == 0o600
        assert Path(lock.path).read_text().split("\n")[0] == str(os.getpid())
        # flock is per open file, so a second acquire in this same process is refused too.
        with pytest.raises(DatabaseInUse, match=rf"^database x.db is in use by schedd pid {os.getpid()} "):
            DatabaseLock.acquire("x.db")
    DatabaseLock.acquire(db).release()  # released: free again
