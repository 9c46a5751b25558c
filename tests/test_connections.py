"""Connections cannot exhaust the daemon: deadlines for a request's head and body, idle
keep-alive, a cap on client connections that leaves descriptors for scheduled runs, and
accept errors logged at most once a second. Each test runs a real `schedd serve`."""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import tomli_w

from schedd import config as config_mod
from schedd import listener
from tests.support.daemon import PASSWORD, Daemon, schedd

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: schedd\r\n\r\n"


def configure(daemon: Daemon, **server: object) -> Daemon:
    daemon.config.write_bytes(tomli_w.dumps({
        "server": server,
        "scheduler": {"shutdown_grace": "2s"},
        "executors": {"maintenance": {"command": [sys.executable, "-c", "print('maintained')"],
                                      "timeout": "60s"}},
    }).encode())
    return daemon


# `schedd serve` under a lower RLIMIT_NOFILE (soft and hard), as a unit's LimitNOFILE= sets it.
LIMITED = ("import resource, sys; n = int(sys.argv.pop(1)); "
           "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
           "from schedd.cli import main; sys.exit(main(sys.argv[1:]))")


class LimitedDaemon(Daemon):
    def __init__(self, tmp, limit_nofile: int | None) -> None:
        super().__init__(tmp, [])
        self.limit_nofile = limit_nofile

    def start(self) -> Daemon:
        if self.limit_nofile is None:
            return super().start()
        self.log.write_text("")
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LIMITED, str(self.limit_nofile), "serve", "--port", "0", "--db", self.db,
                 "--config", str(self.config)], stdout=subprocess.DEVNULL, stderr=log)
        found = self.wait_for(lambda: re.search(r"action=listening .*port=(\d+)", self.log.read_text()), 20)
        self.port = int(found.group(1))
        return self


@pytest.fixture
def daemon(tmp_path):
    made: list[Daemon] = []

    def make(limit_nofile: int | None = None, **server: object) -> Daemon:
        d = configure(LimitedDaemon(tmp_path, limit_nofile), **server)
        out = schedd("user", "add", "ops", "--admin", "--password-stdin", "--db", d.db, "--config", str(d.config),
                     stdin=PASSWORD + "\n")
        assert out.returncode == 0, out.stderr
        made.append(d)
        return d.start()

    yield make
    for d in made:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def closed_within(sock: socket.socket, limit: float) -> float:
    """When (monotonic) the daemon closed `sock`, having sent nothing; fails if it stays open past `limit`."""
    sock.settimeout(limit)
    try:
        assert sock.recv(1024) == b""
    except TimeoutError:
        pytest.fail(f"the connection was still open after {limit} s")
    except ConnectionResetError:
        pass
    return time.monotonic()


def timeout_counts(log: str, phase: str) -> list[int]:
    return [int(n) for n in re.findall(rf"action=http_timeout count=(\d+) total=\d+ phase={phase}\b", log)]


def test_half_sent_heads_and_bodies_and_idle_connections_are_closed_after_their_timeouts(daemon):
    d = daemon(header_timeout="1s", body_timeout="1s", keepalive_timeout="2s")
    started = time.monotonic()
    head = connect(d.port)
    head.sendall(b"GET /healthz HTTP/1.1\r\nHost: schedd\r\n")  # no blank line: the head never ends
    body = connect(d.port)
    body.sendall(b"POST /authService/accounts/login HTTP/1.1\r\nHost: schedd\r\nContent-Length: 100\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n\r\nuserid=ops")
    idle = connect(d.port)
    assert closed_within(head, 10) - started >= 0.9
    assert closed_within(body, 10) - started >= 0.9
    assert closed_within(idle, 10) - started >= 1.9
    # A complete request is answered, and the connection then idles out too.
    used = connect(d.port)
    used.sendall(HEALTHZ)
    assert used.recv(1024).startswith(b"HTTP/1.1 200")
    closed_within(used, 10)

    # Many slow clients at once: every one is closed, in a few log lines with their count.
    slow = [connect(d.port) for _ in range(40)]
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    for sock in slow:
        closed_within(sock, 10)
    def all_logged() -> str | None:
        text = d.log.read_text()
        return text if sum(timeout_counts(text, "headers")) >= 41 else None

    log = d.wait_for(all_logged)
    assert sum(timeout_counts(log, "body")) == 1
    assert len(timeout_counts(log, "headers")) <= 6  # at most one line a second
    assert "action=request_failed" not in log
    assert d.request("GET", "/healthz")[0] == 200
    # Each slow client closed is counted by the limit it reached.
    exposed = urllib.request.urlopen(f"http://127.0.0.1:{d.port}/metrics", timeout=10).read().decode()
    assert limit_count(exposed, "server.header_timeout") >= 41
    assert limit_count(exposed, "server.body_timeout") == 1


def limit_count(exposed: str, limit: str) -> float:
    found = re.search(rf'^schedd_limit_reached_total{{limit="{re.escape(limit)}"}} (\S+)$', exposed, re.M)
    return float(found.group(1)) if found else 0.0


def login(conn: http.client.HTTPConnection) -> str:
    conn.request("POST", "/authService/accounts/login", f"userid=ops&password={PASSWORD}",
                 {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    body = json.loads(response.read())
    assert response.status == 200, body
    return body["claims_token"]["value"]


def call(conn: http.client.HTTPConnection, method: str, path: str, token: str | None = None,
         body: dict | None = None) -> tuple[int, dict]:
    headers = {"X-VoltMX-Authorization": token} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body), "application/json"
    conn.request(method, path, data, headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def done_runs(db: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM runs WHERE state = 'done' AND trigger = 'TimeBasedMaintenance'"
                            ).fetchone()[0]
    finally:
        conn.close()


def test_beyond_the_cap_connections_wait_while_healthz_and_scheduled_runs_go_on(daemon):
    # 200 descriptors in all and 100 kept for everything else: the configured 1000 is cut to 100.
    d = daemon(limit_nofile=200, max_connections=1000, reserved_fds=100, keepalive_timeout="60s",
               header_timeout="60s")
    log = d.log.read_text()
    assert "action=max_connections_clamped nofile=200 reserved_fds=100 max_connections=100 configured=1000" in log
    kept = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    token = login(kept)
    status, body = call(kept, "POST", "/aggregates/maintenance/scheduler/jobs/orgId/default", token,
                        {"time_expression": "* * * * * ?", "scheduler_type": "time-based"})
    assert status == 200, body

    idle = [connect(d.port) for _ in range(150)]  # 99 take the rest of the cap, 51 wait in the backlog
    waiting = connect(d.port)
    waiting.sendall(HEALTHZ)
    waiting.settimeout(1.0)
    with pytest.raises(TimeoutError):
        waiting.recv(1024)  # not accepted: nobody reads it

    before = done_runs(d.db)
    deadline = time.monotonic() + 20
    while done_runs(d.db) < before + 3:  # a run a second keeps starting children with their pipes
        assert time.monotonic() < deadline, d.log.read_text()
        assert call(kept, "GET", "/healthz")[0] == 200
        time.sleep(0.2)
    status, history = call(kept, "GET", "/aggregates/maintenance/orgId/default/history?limit=50", token)
    assert status == 200
    assert {run["status"] for run in history["response"]["data"]} <= {"done", "inprogress", "skipped"}
    assert "Too many open files" not in d.log.read_text()

    for sock in idle[:60]:  # slots come free: the waiting connections are taken in turn
        sock.close()
    waiting.settimeout(10)
    assert waiting.recv(1024).startswith(b"HTTP/1.1 200")
    assert "action=connections_at_cap" in d.log.read_text()


def test_accept_errors_are_logged_at_most_once_a_second_with_a_count(daemon):
    d = daemon(keepalive_timeout="60s", header_timeout="60s")
    kept = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    assert call(kept, "GET", "/healthz")[0] == 200
    # The limit lowered under the running daemon to a few more than it holds: accept() runs out.
    held = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
    resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (held + 5, held + 5))
    idle = [connect(d.port) for _ in range(80)]
    time.sleep(3)
    assert call(kept, "GET", "/healthz")[0] == 200  # the loop is not flooded
    log = d.log.read_text()
    counts = [int(n) for n in re.findall(r"action=accept_failed count=(\d+) total=\d+ error=EMFILE", log)]
    assert counts, log
    assert len(counts) <= 5 and sum(counts) > len(counts)  # a line a second, each for several errors
    assert "out of system resource" not in log
    for sock in idle:
        sock.close()


@pytest.mark.parametrize(("key", "value"), [
    ("max_connections", 0), ("max_connections", "many"), ("reserved_fds", 3), ("listen_backlog", 0),
    ("header_timeout", 0), ("body_timeout", "soon"), ("keepalive_timeout", -1),
])
def test_bad_connection_limits_are_refused_naming_the_key(key, value):
    with pytest.raises(config_mod.ConfigError) as refused:
        config_mod.from_dict({"server": {key: value}})
    assert refused.value.field == f"server.{key}"


def test_the_default_limits_fit_under_the_units_limit_nofile():
    unit = (Path(__file__).resolve().parent.parent / "systemd" / "schedd.service").read_text()
    limit = int(re.search(r"^LimitNOFILE=(\d+)$", unit, re.MULTILINE).group(1))
    default = config_mod.default()
    assert default.server.max_connections + listener.reserved_fds(default) <= limit
    assert listener.reserved_fds(default) == 64 + 8 * default.scheduler.max_concurrent_runs
