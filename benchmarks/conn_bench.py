# ruff: noqa: S101, S310, S603, S608 - a benchmark: it runs its own daemon and CLI on a throwaway
# database with a throwaway password, and opens sockets to 127.0.0.1 only.
"""Connections cannot exhaust the daemon: a real `schedd serve` with its default limits
(1024 connections, 10 s for a request's head, 75 s idle keep-alive) while 1k clients send
request heads a byte at a time and 10k more connect and send nothing. Prints /healthz
latency over a connection opened before the flood, the start delay of a schedule firing
every second before and during the flood, and the daemon's log lines by action.
Goals: healthz p99 <= 50 ms, scheduled runs unaffected, log volume bounded.

    .venv/bin/python benchmarks/conn_bench.py                        # 10k idle + 1k slow, 40 s of flood
    .venv/bin/python benchmarks/conn_bench.py --idle 2000 --slow 200 --seconds 15

Loopback only, bounded in count and time: every socket is closed when the flood ends.
This process raises its own RLIMIT_NOFILE to hold the sockets (the daemon raises its own
to max_connections + reserved_fds). Figures only: nothing here asserts.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import os
import re
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "conn bench password"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def cli(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "schedd", *args], input=stdin, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return out.stdout.strip()


class Poller(threading.Thread):
    """GET /healthz every 10 ms on one keep-alive connection; (time, latency ms) of each."""

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        super().__init__(daemon=True)
        self.conn = conn
        self.samples: list[tuple[float, float]] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                self.conn.request("GET", "/healthz")
                response = self.conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
            if ok:
                self.samples.append((time.monotonic(), (time.perf_counter() - started) * 1000))
            else:
                self.failures += 1
            self.stop.wait(0.01)


def open_nonblocking(port: int, count: int) -> list[socket.socket]:
    """`count` connections begun without waiting: past the daemon's cap they sit in its backlog."""
    found = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        found.append(sock)
    return found


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def start_delays(db: str, since: float, until: float) -> list[float]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT started_at - due_at FROM runs WHERE trigger = 'TimeBasedMaintenance' AND due_at >= ?"
            " AND due_at < ? AND started_at IS NOT NULL", (since, until)).fetchall()
        return [row[0] * 1000 for row in rows]
    finally:
        conn.close()


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"{len(values)} runs, p50 {statistics.median(values):.1f} ms, p99 {percentile(values, 99):.1f} ms, "
            f"max {max(values):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--slow", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=40.0, help="how long the flood is held")
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of runs measured before the flood")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.idle + args.slow + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    with tempfile.TemporaryDirectory(prefix="schedd-conn-") as tmp:
        db, config = os.path.join(tmp, "bench.db"), os.path.join(tmp, "bench.toml")
        Path(config).write_text('[executors.maintenance]\ncommand = ["/bin/true"]\n'
                                '[scheduler]\nshutdown_grace = "2s"\n')
        cli("user", "add", "bench", "--admin", "--password-stdin", "--db", db, "--config", config,
            stdin=PASSWORD + "\n")
        token = cli("token", "create", "bench", "--db", db, "--config", config)
        daemon_log = Path(tmp) / "daemon.log"
        with open(daemon_log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "schedd", "serve", "--port", "0", "--db", db,
                                     "--config", config], stderr=out, stdout=subprocess.DEVNULL, cwd=ROOT)
        sockets: list[socket.socket] = []
        try:
            port = 0
            for _ in range(400):
                found = re.search(r"action=listening .*port=(\d+)", daemon_log.read_text())
                if found:
                    port = int(found.group(1))
                    break
                time.sleep(0.05)
            assert port, daemon_log.read_text()
            kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            kept.request("POST", "/aggregates/maintenance/scheduler/jobs/orgId/default",
                         json.dumps({"time_expression": "* * * * * ?", "scheduler_type": "time-based"}),
                         {"Content-Type": "application/json", "X-VoltMX-Authorization": token})
            response = kept.getresponse()
            assert response.status == 200, response.read()
            response.read()
            poller = Poller(kept)
            poller.start()
            calm_from = time.time()
            time.sleep(args.baseline)
            flood_from = time.time()
            log_before = len(daemon_log.read_text().splitlines())
            flood_started = time.monotonic()

            slow = open_nonblocking(port, args.slow)
            headed: set[int] = set()

            def trickle() -> None:
                """Each slow client's request line once it is connected, then a header byte each call."""
                for n, sock in enumerate(slow):
                    with contextlib.suppress(OSError):  # not connected yet (SYN retried) or closed
                        sock.send(b"X" if n in headed else b"GET /healthz HTTP/1.1\r\nHost: schedd\r\nX-Slow: ")
                        headed.add(n)

            for _ in range(8):  # a listen backlog of 128 takes a thousand connects in a few SYN retries
                trickle()
                time.sleep(0.5)
            idle = open_nonblocking(port, args.idle)
            sockets = slow + idle
            log(f"flood: {len(slow)} slow-header ({len(headed)} connected) and {len(idle)} idle connections "
                f"to 127.0.0.1:{port}")
            while time.monotonic() - flood_started < args.seconds:
                trickle()  # a byte every 2 s: a slow client, not a dead one
                time.sleep(2.0)
            slow_closed = sum(closed_by_peer(sock) for sock in slow)
            idle_closed = sum(closed_by_peer(sock) for sock in idle)
            flood_until = time.time()
            held_fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            poller.stop.set()
            poller.join()
            lines = daemon_log.read_text().splitlines()[log_before:]
            by_action = collections.Counter(m.group(1) for line in lines if (m := re.search(r"action=(\S+)", line)))
            during = [ms for at, ms in poller.samples if at >= flood_started]
            size = sum(len(line) + 1 for line in lines)
            runs_before = start_delays(db, calm_from, flood_from)
            runs_during = start_delays(db, flood_from, flood_until)
        finally:
            for sock in sockets:
                sock.close()
            proc.terminate()
            proc.wait(timeout=30)

    print(f"flood of {args.slow} slow-header + {args.idle} idle connections held {args.seconds:.0f} s; "
          f"the daemon held {held_fds} descriptors at its end")
    print(f"closed by the daemon by then: {slow_closed} of {args.slow} slow-header, {idle_closed} of {args.idle} idle")
    print(f"/healthz during the flood ({len(during)} polls, {poller.failures} failed): "
          f"p50 {statistics.median(during):.1f} ms, p99 {percentile(during, 99):.1f} ms, max {max(during):.1f} ms "
          f"(goal p99 <= 50 ms)")
    print(f"start delay of an every-second schedule before: {summary(runs_before)}")
    print(f"start delay of an every-second schedule during: {summary(runs_during)}")
    shown = ", ".join(f"{action} {count}" for action, count in by_action.most_common())
    print(f"daemon log during the flood: {len(lines)} lines, {size / 1024:.1f} KiB ({shown})")


if __name__ == "__main__":
    main()
