"""Failover with real processes: instances of `schedd serve` on one PostgreSQL database.

Every schedule fires every second and calls a local HTTP service. The instance that fires is
killed (SIGKILL) at random moments and started again, and stalled (SIGSTOP) past its lease,
then woken (SIGCONT); meanwhile a client keeps creating jobs through whichever instance is up.
Afterwards the database is read: for every schedule and every due second of the window there
must be exactly one record (a run, or a skip recorded by its policies, such as a misfire
during a gap), and every job whose creation was acknowledged must exist. Printed: the gap
after each kill (from the kill to the first fire the next instance records) and each stall.

    .venv/bin/python -m benchmarks.failover --kills 20 --stops 5 --schedules 200

Without --url, a throwaway PostgreSQL cluster is started (tests/support/postgres.py).
tests/test_failover.py runs `run()` against the tests' own cluster and asserts on its report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import tomli_w

PASSWORD = "failover password 1"
EVERY_SECOND = "* * * * * ? *"
JOBS = "/admin/api/jobs/job"


class _Service(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"opstatus":0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a caller killed mid-request: nothing to report


def start_service() -> ThreadingHTTPServer:
    server = _Server(("127.0.0.1", 0), _Service)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def schedd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "schedd", *args], input=stdin, capture_output=True,
                          text=True, timeout=120)


class Instance:
    """One `schedd serve` on an ephemeral port; started again as a new process after a kill."""

    def __init__(self, name: str, workdir: Path, url: str, config: Path) -> None:
        self.name, self.url, self.config = name, url, config
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "a") as log:
            log.write(f"--- start {self.starts}\n")
            log.flush()
            offset = log.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "schedd", "serve", "--port", "0", "--db", self.url, "--config",
                 str(self.config)], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.log.read_text()[offset:]
            found = re.search(r"action=listening .*port=(\d+)", text)
            if found:
                self.port = int(found.group(1))
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{text[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[offset:][-3000:]}")

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                form: dict | None = None, timeout: float = 5.0) -> tuple[int, Any, dict[str, str]]:
        headers: dict[str, str] = {}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if token:
            headers["X-VoltMX-Authorization"] = token
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310 - a local daemon
                return response.status, json.loads(response.read() or b"null"), dict(response.headers)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null"), dict(err.headers)

    def fires(self) -> bool | None:
        """Whether this instance says it fires (its /readyz), None if it does not answer."""
        if not self.up:
            return None
        try:
            _, body, _ = self.request("GET", "/readyz", timeout=1.0)
        except (OSError, ValueError):
            return None
        return bool(body and body.get("fires"))


@dataclass
class Report:
    schedules: int
    window: tuple[int, int] = (0, 0)
    kill_gaps: list[float] = field(default_factory=list)
    stall_gaps: list[float] = field(default_factory=list)
    seconds_checked: int = 0
    runs: int = 0
    skipped_seconds: int = 0
    missing: list[tuple[int, int]] = field(default_factory=list)
    doubled: list[tuple[int, int, int]] = field(default_factory=list)
    bad_skip_counts: int = 0
    acknowledged: int = 0
    lost: list[int] = field(default_factory=list)
    stepped_down_after_stall: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        def summary(gaps: list[float]) -> str:
            if not gaps:
                return "none"
            return f"p50 {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s ({len(gaps)})"
        return [
            f"schedules {self.schedules}, window {self.window[1] - self.window[0]} s, "
            f"{self.seconds_checked} schedule-seconds checked",
            f"runs {self.runs}, seconds covered by recorded skips {self.skipped_seconds}",
            f"seconds with no record {len(self.missing)}, with two or more {len(self.doubled)}, "
            f"skip records whose count disagrees {self.bad_skip_counts}",
            f"gap after kill: {summary(self.kill_gaps)}",
            f"gap after stall (SIGSTOP until another fires): {summary(self.stall_gaps)}; "
            f"stalled instance stepped down after SIGCONT: {self.stepped_down_after_stall}",
            f"API creates acknowledged {self.acknowledged}, lost {len(self.lost)}",
            *self.notes,
        ]


class Writer(threading.Thread):
    """Creates jobs through whichever instance is up, and remembers each acknowledged one."""

    def __init__(self, instances: list[Instance], token: str) -> None:
        super().__init__(daemon=True)
        self.instances, self.token = instances, token
        self.acknowledged: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            live = [i for i in self.instances if i.up]
            if live:
                target = random.choice(live)  # noqa: S311 - not a secret
                body = _job(f"written{n}", "0 0 3 * * ? *")
                try:
                    status, _, headers = target.request("POST", JOBS, body, token=self.token, timeout=3.0)
                except (OSError, ValueError):
                    status, headers = 0, {}
                if status in (200, 201) and headers.get("Location"):
                    self.acknowledged.append(int(headers["Location"].rstrip("/").rsplit("/", 1)[-1]))
            self.stopping.wait(0.1)


def _job(name: str, cron: str) -> dict[str, Any]:
    return {
        "jobName": name, "jobFrequency": cron, "description": "failover", "jobStatus": "Active",
        "historyStrategy": "MINIMAL", "retentionPeriod": "30",
        "jobServiceInfo": {"version": "1.0", "serviceType": "intSer", "serviceName": "stub", "objectName": "",
                           "operationName": "op", "requestheaderMap": {}, "serviceExecutionType": "SERVER_URL",
                           "postData": "{}", "operationSecurityLevel": "public"},
    }


def leader(instances: list[Instance], timeout: float = 30.0) -> Instance:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for instance in instances:
            if instance.fires():
                return instance
        time.sleep(0.05)
    raise RuntimeError("no instance fires")


async def _first_fire_after(url: str, after: float, timeout: float) -> float | None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = await conn.fetchval(
                "SELECT min(created_at) FROM runs WHERE created_at > $1 AND due_at IS NOT NULL", after)
            if found is not None:
                return float(found)
            await asyncio.sleep(0.05)
        return None
    finally:
        await conn.close()


async def _check(url: str, ids: list[int], window: tuple[int, int], acknowledged: list[int], report: Report) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT schedule_id, due_at, last_due_at, fires, state FROM runs"
            " WHERE schedule_id = ANY($1::bigint[]) AND due_at IS NOT NULL", ids)
        known = {r[0] for r in await conn.fetch("SELECT id FROM schedules WHERE id = ANY($1::bigint[])",
                                                acknowledged)}
    finally:
        await conn.close()
    counts: dict[int, Counter[int]] = {ident: Counter() for ident in ids}
    begin, end = window
    for schedule_id, due, last, fires, state in rows:
        first = round(due)
        if state == "skipped":
            final = round(last) if last is not None else first
            if fires != final - first + 1:
                report.bad_skip_counts += 1
            for second in range(first, final + 1):
                counts[schedule_id][second] += 1
                if begin <= second <= end:
                    report.skipped_seconds += 1
        else:
            counts[schedule_id][first] += 1
            if begin <= first <= end:
                report.runs += 1
    for ident, seen in counts.items():
        for second in range(begin, end + 1):
            report.seconds_checked += 1
            n = seen.get(second, 0)
            if n == 0:
                report.missing.append((ident, second))
            elif n > 1:
                report.doubled.append((ident, second, n))
    report.acknowledged = len(acknowledged)
    report.lost = [uid for uid in acknowledged if uid not in known]


async def _schedule_ids(url: str, names: list[str]) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id FROM schedules WHERE name = ANY($1::text[])", names)
    finally:
        await conn.close()
    return [r[0] for r in rows]


def run(url: str, workdir: Path, *, instances: int = 3, schedules: int = 200, kills: int = 20,
        stops: int = 5, lease_ttl: float = 3.0, seed: int = 1, log=print) -> Report:
    """The whole exercise against the (empty) database at `url`; the report says what it found."""
    rng = random.Random(seed)
    service = start_service()
    report = Report(schedules)
    members: list[Instance] = []
    writer: Writer | None = None
    try:
        config = workdir / "schedd.toml"
        config.write_bytes(tomli_w.dumps({
            "database": {"lease_ttl": f"{lease_ttl:g}s"},
            "scheduler": {"shutdown_grace": "2s"},
            "services": {"stub": {"base_url": f"http://127.0.0.1:{service.server_address[1]}/svc",
                                  "timeout": "5s"}},
        }).encode())
        out = schedd("user", "add", "ops", "--admin", "--password-stdin", "--db", url, "--config", str(config),
                     stdin=PASSWORD + "\n")
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        members = [Instance(f"n{i + 1}", workdir, url, config) for i in range(instances)]
        for member in members:
            member.start()
        first = leader(members)
        status, body, _ = first.request("POST", "/authService/accounts/login",
                                        form={"userid": "ops", "password": PASSWORD})
        token = body["claims_token"]["value"]
        names = [f"every-second-{i}" for i in range(schedules)]
        for name in names:
            target = rng.choice(members)
            status, body, _ = target.request("POST", JOBS, _job(name, EVERY_SECOND), token=token)
            if status not in (200, 201):
                raise RuntimeError(f"create {name}: {status} {body}")
        ids = asyncio.run(_schedule_ids(url, names))
        begin = int(time.time()) + 3
        log(f"{schedules} every-second schedules on {instances} instances; chaos begins")
        writer = Writer(members, token)
        writer.start()
        time.sleep(4)
        for n in range(kills):
            victim = leader(members)
            time.sleep(rng.uniform(0.5, 2.5))
            at = time.time()
            assert victim.proc is not None  # noqa: S101
            victim.proc.kill()
            victim.proc.wait()
            gap_at = asyncio.run(_first_fire_after(url, at, 30.0))
            gap = (gap_at - at) if gap_at is not None else float("inf")
            report.kill_gaps.append(gap)
            log(f"kill {n + 1}/{kills}: {victim.name}, next fire after {gap:.2f} s")
            victim.start()
        for n in range(stops):
            victim = leader(members)
            time.sleep(rng.uniform(0.5, 2.5))
            assert victim.proc is not None  # noqa: S101
            at = time.monotonic()
            victim.proc.send_signal(signal.SIGSTOP)
            others = [m for m in members if m is not victim]
            taker = leader(others, timeout=30.0)
            report.stall_gaps.append(time.monotonic() - at)
            time.sleep(1.0)
            victim.proc.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and victim.fires():
                time.sleep(0.05)
            if not victim.fires():
                report.stepped_down_after_stall += 1
            log(f"stall {n + 1}/{stops}: {victim.name} stopped, {taker.name} fired after "
                f"{report.stall_gaps[-1]:.2f} s")
        time.sleep(3)
        end = int(time.time()) - 3
        writer.stopping.set()
        writer.join()
        for member in members:
            if member.up and member.proc is not None:
                member.proc.send_signal(signal.SIGTERM)
        for member in members:
            if member.proc is not None:
                member.proc.wait(timeout=30)
        report.window = (begin, end)
        asyncio.run(_check(url, ids, (begin, end), writer.acknowledged, report))
        return report
    finally:
        if writer is not None:
            writer.stopping.set()
        for member in members:
            if member.proc is not None and member.proc.poll() is None:
                member.proc.send_signal(signal.SIGCONT)
                member.proc.kill()
                member.proc.wait()
        service.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a throwaway cluster)")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--schedules", type=int, default=200)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--stops", type=int, default=5)
    parser.add_argument("--lease-ttl", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="schedd-failover-") as tmp:
        cluster = None
        url = args.url
        if url is None:
            from tests.support.postgres import Cluster

            cluster = Cluster.find()
            if cluster is None:
                sys.exit("no PostgreSQL server installed: pass --url")
            cluster.start()
            url = asyncio.run(cluster.new_database(migrated=False))
        try:
            report = run(url, Path(tmp), instances=args.instances, schedules=args.schedules, kills=args.kills,
                         stops=args.stops, lease_ttl=args.lease_ttl, seed=args.seed)
        finally:
            if cluster is not None:
                cluster.stop()
    for line in report.lines():
        print(line)


if __name__ == "__main__":
    main()
