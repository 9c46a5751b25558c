"""The real daemon as a subprocess: CLI set-up, login, second-level schedules, kill -9, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import sys
import time

import pytest

from tests.support.daemon import HISTORY, PASSWORD, SCHEDULES, schedd


def test_cli_user_login_and_a_second_level_schedule_runs(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "print('maintained {org_id}')"]).start()
    token = daemon.login()
    status, body = daemon.request("POST", SCHEDULES, {"time_expression": "* * * * * ?",
                                                      "scheduler_type": "time-based"}, token)
    assert status == 200, body

    def done_runs():
        _, history = daemon.request("GET", HISTORY, token=token)
        return [r for r in history["response"]["data"]
                if r["status"] == "done" and r["triggerType"] == "TimeBasedMaintenance"]

    assert daemon.wait_for(done_runs)
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "action=stopped" in log
    assert PASSWORD not in log and token not in log


def test_kill_9_mid_run_leaves_an_interrupted_run_and_keeps_acknowledged_writes(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "import time; time.sleep(60)"]).start()
    token = daemon.login()
    status, _ = daemon.request("POST", "/api/1.0/aggregates/maintenance/orgId/default/run-immediately",
                               token=token)
    assert status == 200
    acknowledged = []
    for expr in ("0 0 4 ? * * *", "0 0 5 ? * MON-FRI *", "0 30 2 * * ?"):
        status, body = daemon.request("POST", SCHEDULES, {"time_expression": expr,
                                                          "scheduler_type": "time-based"}, token)
        assert status == 200
        acknowledged.append(body["response"]["job_id"])
    status, current = daemon.request("GET", "/aggregates/maintenance/orgId/default", token=token)
    assert current["response"]["status"] == "inprogress"
    run_id = current["response"]["id"]

    daemon.proc.kill()  # SIGKILL: no shutdown bookkeeping at all
    daemon.proc.wait()

    daemon.start()
    token = daemon.login()
    _, history = daemon.request("GET", HISTORY, token=token)
    (run,) = [r for r in history["response"]["data"] if r["id"] == run_id]
    assert run["status"] == "interrupted"
    assert "stopped while the run was in progress" in run["errorInformation"]["message"]
    _, listed = daemon.request("GET", SCHEDULES, token=token)
    assert sorted(s["job_id"] for s in listed["response"]) == sorted(acknowledged)
    assert daemon.stop() == 0
    db = sqlite3.connect(daemon.db)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT count(*) FROM runs WHERE state IN ('queued', 'inprogress')").fetchone() == (0,)


def test_sigterm_interrupts_a_run_that_outlives_shutdown_grace(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "import time; time.sleep(60)"]).start()
    token = daemon.login()
    daemon.request("POST", "/api/1.0/aggregates/maintenance/orgId/default/run-immediately", token=token)
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15  # shutdown_grace is 2 s, then the process group is killed
    log = daemon.log.read_text()
    assert re.search(r"action=stopped runs_finished=0 runs_interrupted=1", log), log
    db = sqlite3.connect(daemon.db)
    state, error = db.execute("SELECT state, error FROM runs").fetchone()
    assert state == "interrupted" and "shut down" in error


def test_cron_next_prints_fire_times_and_rejects_bad_input():
    out = schedd("cron", "next", "0 15 10 ? * 6L 2026", "--after", "2026-01-01T00:00:00Z", "--count", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2026-01-30T10:15:00+00:00", "2026-02-27T10:15:00+00:00",
                                  "2026-03-27T10:15:00+00:00"]
    out = schedd("cron", "next", "30 2 * * *", "--tz", "America/New_York",
                 "--after", "2026-03-07T12:00:00-05:00", "--count", "1")
    assert out.stdout.split() == ["2026-03-08T03:00:00-04:00"]
    for bad in (["0 0 0 ? * 8"], ["* * * * *", "--tz", "Mars/Base"], ["* * * * *", "--after", "yesterday"]):
        out = schedd("cron", "next", *bad)
        assert out.returncode == 2
        assert out.stdout == "" and len(out.stderr.strip().splitlines()) == 1


def test_config_init_then_check_and_a_bad_key_exits_2(tmp_path):
    path = tmp_path / "c.toml"
    assert schedd("config", "init", str(path)).returncode == 0
    assert schedd("config", "check", str(path)).returncode == 0
    path.write_text("[scheduler]\nmisfire_grace = -5\n")
    out = schedd("config", "check", str(path))
    assert out.returncode == 2 and "scheduler.misfire_grace" in out.stderr


def test_token_create_prints_only_a_token_that_works(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "pass"])
    out = schedd("token", "create", "ops", "--ttl", "1h", "--db", daemon.db, "--config", str(daemon.config))
    assert out.returncode == 0
    token = out.stdout.strip()
    assert out.stdout == token + "\n"
    daemon.start()
    status, _ = daemon.request("GET", SCHEDULES, token=token)
    assert status == 200
    assert daemon.stop() == 0


def test_db_backup_writes_a_consistent_copy(daemon_factory, tmp_path):
    daemon = daemon_factory([sys.executable, "-c", "pass"])
    target = tmp_path / "copy.db"
    out = schedd("db", "backup", str(target), "--db", daemon.db)
    assert out.returncode == 0, out.stderr
    copy = sqlite3.connect(target)
    assert copy.execute("SELECT name FROM users").fetchall() == [("ops",)]
    assert schedd("db", "backup", str(target), "--db", daemon.db).returncode == 2
    assert schedd("db", "migrate", "--db", daemon.db).returncode == 0


pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and process groups")


def test_org_add_creates_an_org_a_member_can_use(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "pass"])
    args = ("--db", daemon.db, "--config", str(daemon.config))
    assert schedd("org", "add", "acme", *args).returncode == 0
    out = schedd("org", "add", "bad org", *args)
    assert out.returncode == 2 and "orgId" in out.stderr
    out = schedd("user", "add", "ann", "--org", "acme", "--password-stdin", *args, stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    token = schedd("token", "create", "ann", *args).stdout.strip()
    daemon.start()
    assert daemon.request("GET", "/aggregates/maintenance/scheduler/jobs/orgId/acme", token=token)[0] == 200
    assert daemon.request("GET", "/aggregates/maintenance/scheduler/jobs/orgId/default", token=token)[0] == 404
    assert daemon.stop() == 0
