"""Acknowledged means on disk: the write-ahead log is synced before schedd answers or starts a run.

Method. The real daemon runs under `strace -f -y -e trace=pwrite64,fdatasync,fsync,sendto,execve`,
which writes one line per system call of every thread and child process, in the order
strace saw them (a call interrupted by another thread's is split into `<unfinished ...>`
and `<... resumed>` lines). SQLite appends a commit's frames to `<db>-wal` with pwrite64;
with `synchronous = "FULL"` it syncs that file (fdatasync) before COMMIT returns. So
frames are *unsynced* from the start of a pwrite64 on the log until the end of the next
sync of it. An acknowledgement is:

- the answer to an API write: a `sendto` of `HTTP/1.1 ...` (at the call's start, the first
  moment a client could read it), and
- the start of the command a run record was written for: its `execve`.

The test makes one write at a time (requests one after another, the run awaited before
the next request, the scheduled fire alone in its phase; progress is polled from the
database file, which strace does not see), then asserts: at every acknowledgement no
frame is unsynced, each acknowledgement was preceded by frames and a sync of its own, and
before the daemon receives SIGTERM every frame, the runs' outcomes included, is synced.
The same scenario with `synchronous = "NORMAL"` breaks the first assertion, so the method
is known to see the difference.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import tomli_w

from tests.support.daemon import PASSWORD, Daemon, schedd

STRACE = shutil.which("strace")
TRUE = shutil.which("true") or "/bin/true"
pytestmark = [
    pytest.mark.skipif(os.name != "posix", reason="strace is Linux"),
    pytest.mark.skipif(STRACE is None, reason="strace is not installed (Debian package strace)"),
]

SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/default"
RUN_NOW = "/api/1.0/aggregates/maintenance/orgId/default/run-immediately"


class TracedDaemon(Daemon):
    """`schedd serve` under strace, logging every sync, log write, answer and command start."""

    def __init__(self, tmp: Path, synchronous: str | None) -> None:
        super().__init__(tmp, [TRUE])
        database = {"synchronous": synchronous} if synchronous else {}
        self.config.write_bytes(tomli_w.dumps({
            "database": database,
            "executors": {"maintenance": {"command": [TRUE], "timeout": "60s"}},
        }).encode())
        self.trace = tmp / "strace.txt"

    def start(self) -> TracedDaemon:
        assert STRACE is not None
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [STRACE, "-f", "-y", "-s", "16", "-e", "trace=pwrite64,fdatasync,fsync,sendto,execve",
                 "-o", str(self.trace),
                 sys.executable, "-m", "schedd", "serve", "--port", "0", "--db", self.db,
                 "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log)
        found = self.wait_for(lambda: re.search(r"action=listening .*port=(\d+)", self.log.read_text()), 60)
        self.port = int(found.group(1))
        return self

    def daemon_pid(self) -> int:
        first = self.trace.read_text().split("\n", 1)[0]
        return int(first.split()[0])

    def stop_traced(self) -> None:
        assert self.proc is not None
        os.kill(self.daemon_pid(), signal.SIGTERM)  # strace follows its tracee out
        self.proc.wait(timeout=60)

    def kill(self) -> None:
        """After a failure: the daemon first (strace killed alone would leave it running), then strace."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.daemon_pid(), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
        self.proc.kill()
        self.proc.wait(timeout=60)


@dataclass(frozen=True)
class Event:
    kind: str  # "write" (frames), "sync" (log synced), "answer" (HTTP), "exec" (a run's command)
    line: int


_CALL = re.compile(r"^(\d+) +(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")


def events(trace: str, wal: str) -> tuple[list[Event], int]:
    """The events of a trace, in order, and the line where the daemon got SIGTERM."""
    found: list[Event] = []
    started: dict[int, tuple[str, str]] = {}  # pid -> (call, its first half) while unfinished
    sigterm = -1
    for n, text in enumerate(trace.splitlines()):
        if "--- SIGTERM" in text and sigterm < 0:
            sigterm = n
        match = _CALL.match(text)
        if match is None:
            continue
        pid, resumed, call, rest = int(match.group(1)), match.group(2), match.group(3), match.group(4)
        if resumed:
            call, rest = resumed, started.pop(pid, (resumed, ""))[1] + rest
            if call in ("fsync", "fdatasync") and f"<{wal}>" in rest and rest.rstrip().endswith("= 0"):
                found.append(Event("sync", n))  # a sync counts once it has returned
            continue
        if "<unfinished ...>" in rest:
            started[pid] = (call, rest)
        if call == "pwrite64" and f"<{wal}>" in rest.split(",", 1)[0]:
            found.append(Event("write", n))  # unsynced from the moment the call starts
        elif call in ("fsync", "fdatasync") and f"<{wal}>" in rest and rest.rstrip().endswith("= 0"):
            found.append(Event("sync", n))
        elif call == "sendto" and '"HTTP/1.1 ' in rest:
            found.append(Event("answer", n))
        elif call == "execve" and rest.startswith(f'"{TRUE}"'):
            found.append(Event("exec", n))
    return found, sigterm


def unsynced_acknowledgements(found: list[Event]) -> list[Event]:
    """Answers and command starts made while frames of the log were not yet synced."""
    pending = False
    bad = []
    for event in found:
        if event.kind == "write":
            pending = True
        elif event.kind == "sync":
            pending = False
        elif pending:
            bad.append(event)
    return bad


def runs(db: str) -> list[tuple[int | None, str]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT schedule_id, state FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()


def once_soon(seconds: float) -> str:
    """A Quartz expression with a year: it fires once, `seconds` from now (UTC)."""
    at = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return f"{at.second} {at.minute} {at.hour} {at.day} {at.month} ? {at.year}"


def drive(daemon: TracedDaemon, creates: int) -> tuple[list[Event], int]:
    """Login, creates, a run now, a fire; one at a time. Returns the events and SIGTERM's line."""
    out = schedd("user", "add", "ops", "--admin", "--password-stdin", "--db", daemon.db,
                          "--config", str(daemon.config), stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    daemon.start()
    token = daemon.login()
    for hour in range(creates):
        status, body = daemon.request("POST", SCHEDULES, {"time_expression": f"0 0 {hour % 24} ? * * *",
                                                          "scheduler_type": "time-based"}, token)
        assert status == 200, body
    status, body = daemon.request("POST", RUN_NOW, token=token)
    assert status == 200, body
    daemon.wait_for(lambda: runs(daemon.db) == [(None, "done")], 60)
    status, body = daemon.request("POST", SCHEDULES, {"time_expression": once_soon(6),
                                                      "scheduler_type": "time-based", "timezone": "UTC"}, token)
    assert status == 200, body
    daemon.wait_for(lambda: len(runs(daemon.db)) == 2 and runs(daemon.db)[1][1] == "done", 60)
    daemon.stop_traced()
    wal = os.path.realpath(daemon.db) + "-wal"
    return events(daemon.trace.read_text(), wal)


def test_every_answer_and_every_command_start_follows_the_sync_of_its_write(tmp_path):
    """The default (`synchronous = "FULL"`): API writes, a run now's record, a fire's record, outcomes."""
    daemon = TracedDaemon(tmp_path, synchronous=None)
    try:
        found, sigterm = drive(daemon, creates=20)
    finally:
        daemon.kill()
    kinds = [e.kind for e in found]
    answers = [e for e in found if e.kind == "answer"]
    assert len(answers) == 1 + 20 + 1 + 1  # login, creates, run now, the fire's schedule
    assert kinds.count("exec") == 2  # the run now, the fire
    assert unsynced_acknowledgements(found) == []
    # Each answer, and each command start, has a write and a sync of its own since the one before.
    for kind in ("answer", "exec"):
        last = -1
        for i, event in enumerate(found):
            if event.kind == kind:
                between = kinds[last + 1:i]
                assert "write" in between and "sync" in between, (event, between)
                last = i
    # Outcomes: after the last command start, frames were written and synced before SIGTERM.
    assert sigterm > 0
    before_stop = [e for e in found if e.line < sigterm]
    tail = [e.kind for e in before_stop[max(i for i, e in enumerate(before_stop) if e.kind == "exec"):]]
    assert "write" in tail and tail[-1] == "sync", tail


def test_with_synchronous_normal_the_same_trace_shows_unsynced_answers(tmp_path):
    daemon = TracedDaemon(tmp_path, synchronous="NORMAL")
    try:
        found, _ = drive(daemon, creates=5)
    finally:
        daemon.kill()
    late = unsynced_acknowledgements(found)
    assert len([e for e in late if e.kind == "answer"]) >= 5
    assert [e for e in late if e.kind == "exec"]
