"""Soak: a real `schedd serve` under a steady mix of work, sampled every 10 s.

    .venv/bin/python benchmarks/soak.py --minutes 60 --out benchmarks/soak

The daemon runs as a subprocess on its own SQLite file. Against it, for the whole run:

- API writes across many orgs, in every family: maintenance and aggregate schedules created
  and deleted, service jobs created, updated and deleted, maintenance windows created,
  updated, commented and deleted; each kind kept near a cap, so creates and deletes balance;
- run-now of maintenance runs, aggregate builds and jobs; reads of lists and histories;
  logins; a Prometheus scrape every sample;
- schedules firing every second and every minute: service jobs that call a local stub
  HTTP service, and maintenance and aggregate schedules whose command is `/bin/true`;
- a retention sweep every 30 s. Service jobs keep 1 day of history; before the daemon
  starts, each fixed job is given the history it would have made a day ago at its fire
  rate, so runs age out while the soak runs as they do on a daemon up for days.

Every `--every` seconds it samples the daemon: RSS, open file descriptors and threads
(/proc/PID), asyncio tasks, engine heap entries and live timers (/metrics), database and
WAL file sizes, run rows (all, and those of service jobs, which have a retention period),
token rows, and the p99 start delay of the runs started in that
interval (from the histogram's bucket deltas). It prints a table, writes it to OUT.txt,
draws every series in OUT.svg, and prints each series' slope after warm-up with a verdict:
flat (its change over the measured window is within the noise) or growing/shrinking.

Exit status 1 when a request failed (any status the API does not give to a correct call).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from schedd.accounts import hash_password  # noqa: E402
from schedd.compose import install_families  # noqa: E402
from schedd.store import accounts as account_store  # noqa: E402
from schedd.store import runs as run_store  # noqa: E402
from schedd.store import schedules as schedule_store  # noqa: E402
from schedd.store.db import Database  # noqa: E402

PASSWORD = "soak password 123"  # noqa: S105 - the soak's own throwaway users
USERS = ("soak", "ops1", "ops2", "ops3")
HOURLY, DAILY, EVERY_MINUTE, EVERY_SECOND = "0 0 * * * ?", "0 0 4 ? * * *", "0 * * * * ?", "* * * * * ?"
CAPS = {"maintenance": 150, "aggregate": 150, "job": 100, "window": 60}
"""Live objects the churn keeps per kind: below the cap a write creates, at it one deletes."""
RETENTION_DAYS = 1
# Org maintenance and cube builds keep their runs this long: short, so that an hour shows
# the sweep holding their history flat.
HISTORY_RETENTION = "10m"
DAY = 86400.0


# -- the daemon ---------------------------------------------------------------------------------



def located(headers: Any) -> int:
    """The id at the end of an answer's Location header (a new job's, a new run's)."""
    return int(headers["Location"].rsplit("/", 1)[1])

class Daemon:
    def __init__(self, workdir: Path, stub_port: int, orgs: list[str]) -> None:
        self.dir = workdir
        self.db = workdir / "soak.db"
        self.config = workdir / "schedd.toml"
        self.log = workdir / "daemon.log"
        self.orgs = orgs
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.config.write_text(f"""\
[scheduler]
retention_sweep = "30s"
history_retention = "{HISTORY_RETENTION}"
shutdown_grace = "5s"

[executors.maintenance]
command = ["/bin/true"]
timeout = "60s"
after_first_build = true

[executors.aggregate]
command = ["/bin/true"]
timeout = "60s"

[scopes.platform]
id = 1

[services.stub]
base_url = "http://127.0.0.1:{stub_port}/services"
timeout = "10s"
id = 10
scope = "platform"
""")

    async def create_accounts(self) -> None:
        db = Database(str(self.db), "NORMAL")
        await db.open()
        try:
            encoded = hash_password(PASSWORD)
            for name in USERS:
                await account_store.create_user(db, name, encoded, email=None, is_admin=True,
                                                orgs=tuple(self.orgs), at=time.time())
        finally:
            await db.close()

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                [sys.executable, "-m", "schedd", "serve", "--port", "0", "--db", str(self.db),
                 "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                f.seek(offset)
                found = re.search(rb"action=listening .*port=(\d+)", f.read())
            if found:
                self.port = int(found.group(1))
                return
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited:\n" + self.log.read_text()[-3000:])
            time.sleep(0.05)
        raise RuntimeError("daemon did not start:\n" + self.log.read_text()[-3000:])

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- the stub service the jobs call -------------------------------------------------------------


async def start_stub() -> tuple[web.AppRunner, int, Counter]:
    calls: Counter = Counter()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        calls[request.path] += 1
        return web.json_response({"opstatus": 0})

    app = web.Application()
    app.router.add_post("/services/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port, calls


def job_body(name: str, frequency: str, *, job_id: int | None = None, description: str = "soak") -> dict[str, Any]:
    body: dict[str, Any] = {
        "jobName": name, "jobFrequency": frequency, "description": description,
        "jobServiceInfo": {
            "version": "1.0", "serviceType": "intSer", "serviceName": "stub", "objectName": "",
            "operationName": "ping", "requestheaderMap": {}, "serviceExecutionType": "SERVER_URL",
            "postData": "{\"from\":\"soak\"}", "operationSecurityLevel": "public"},
        "jobStatus": "Active", "historyStrategy": "MINIMAL", "retentionPeriod": str(RETENTION_DAYS),
    }
    if job_id is not None:
        body["jobId"] = job_id
    return body


# -- the workload -------------------------------------------------------------------------------


class Failure(Exception):
    pass


@dataclass
class Tally:
    ok: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    last_failures: deque = field(default_factory=lambda: deque(maxlen=10))

    @property
    def requests(self) -> int:
        return sum(self.ok.values()) + sum(self.failed.values())


class Workload:
    """A steady mix of API calls; each call checks its status against what a correct call gets."""

    def __init__(self, daemon: Daemon, orgs: list[str], rng: random.Random, tally: Tally) -> None:
        self.daemon = daemon
        self.orgs = orgs
        self.rng = rng
        self.tally = tally
        self.session: aiohttp.ClientSession | None = None
        self.token = ""
        self.live: dict[str, deque] = {kind: deque() for kind in CAPS}
        self.jobs_fixed: list[int] = []
        self.serial = 0

    async def call(self, op: str, method: str, path: str, *, ok: tuple[int, ...] = (200,),
                   token: bool = True, gone: Any = None, **kw: Any) -> tuple[int, Any, Any]:
        """One request; a status outside `ok` is a failure, except a 404 for an object that
        another client deleted meanwhile (`gone()` says so)."""
        assert self.session is not None
        headers = {"X-VoltMX-Authorization": self.token} if token else {}
        try:
            async with self.session.request(method, self.daemon.base + path, headers=headers,
                                            allow_redirects=False, **kw) as response:
                text = await response.text()
                status, resp_headers = response.status, response.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.tally.failed[op] += 1
            self.tally.last_failures.append(f"{op}: {exc!r}")
            raise Failure(op) from exc
        if status == 404 and gone is not None and gone():
            self.tally.ok[op + "_gone"] += 1
            return status, None, resp_headers
        if status not in ok:
            self.tally.failed[op] += 1
            self.tally.last_failures.append(f"{op}: {method} {path} -> {status} {text[:200]}")
            raise Failure(op)
        self.tally.ok[op] += 1
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        return status, body, resp_headers

    async def login(self, user: str = "soak") -> str:
        _, body, _ = await self.call("login", "POST", "/authService/accounts/login", token=False,
                                     data={"userid": user, "password": PASSWORD})
        return body["claims_token"]["value"]

    def org(self) -> str:
        return self.rng.choice(self.orgs)

    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}-{uuid.uuid4().hex[:6]}"

    # fixed schedules, made once before the soak

    async def create_fixed(self, orgs: int) -> None:
        for i in range(2):  # every second: two service jobs, one maintenance, one aggregate schedule
            _, _, headers = await self.call("job_create", "POST", "/admin/api/jobs/job",
                                            json=job_body(f"every-second-{i}", EVERY_SECOND))
            self.jobs_fixed.append(located(headers))
        await self.call("maintenance_create", "POST", f"/aggregates/maintenance/scheduler/jobs/orgId/{self.orgs[0]}",
                        json={"time_expression": EVERY_SECOND, "scheduler_type": "time-based"})
        await self.call("aggregate_create", "POST",
                        f"/org/{self.orgs[0]}/project/fixed/cube/every-second/aggregates-creation/scheduler",
                        json={"time_expression": EVERY_SECOND, "path": "aggregate/create", "full_build": False})
        for i, org in enumerate(self.orgs[:orgs]):  # every minute: a job, a maintenance and a build per org
            _, _, headers = await self.call("job_create", "POST", "/admin/api/jobs/job",
                                            json=job_body(f"every-minute-{i}", EVERY_MINUTE))
            self.jobs_fixed.append(located(headers))
            await self.call("maintenance_create", "POST", f"/aggregates/maintenance/scheduler/jobs/orgId/{org}",
                            json={"time_expression": EVERY_MINUTE, "scheduler_type": "time-based"})
            await self.call("aggregate_create", "POST",
                            f"/org/{org}/project/fixed/cube/every-minute/aggregates-creation/scheduler",
                            json={"time_expression": EVERY_MINUTE, "path": "aggregate/create"})

    # the churn

    async def maintenance_write(self) -> None:
        live = self.live["maintenance"]
        if len(live) < CAPS["maintenance"]:
            org = self.org()
            cron = self.rng.choice((EVERY_MINUTE, HOURLY, DAILY))
            _, body, _ = await self.call("maintenance_create", "POST",
                                         f"/aggregates/maintenance/scheduler/jobs/orgId/{org}",
                                         json={"time_expression": cron, "scheduler_type": "time-based"})
            live.append((org, body["response"]["job_id"]))
        else:
            org, job = live.popleft()
            await self.call("maintenance_delete", "DELETE",
                            f"/api/1.0/aggregates/maintenance-schedule/jobs/orgId/{org}/jobId/{job}")

    async def aggregate_write(self) -> None:
        live = self.live["aggregate"]
        if len(live) < CAPS["aggregate"]:
            org, cube = self.org(), f"c{self.rng.randrange(20)}"
            cron = self.rng.choice((EVERY_MINUTE, HOURLY, DAILY))
            _, body, _ = await self.call("aggregate_create", "POST",
                                         f"/org/{org}/project/churn/cube/{cube}/aggregates-creation/scheduler",
                                         json={"time_expression": cron, "path": "aggregate/create"})
            live.append((org, cube, body["response"]["job_id"]))
        else:
            org, cube, job = live.popleft()
            await self.call("aggregate_delete", "DELETE",
                            f"/org/{org}/project/churn/cube/{cube}/aggregates-creation/scheduler/jobId/{job}")

    async def job_write(self) -> None:
        live = self.live["job"]
        roll = self.rng.random()
        if live and roll < 0.4:
            job = self.rng.choice(live)
            await self.call("job_update", "PUT", "/admin/api/jobs/job", json=job_body(
                job[1], self.rng.choice((EVERY_MINUTE, HOURLY, DAILY)), job_id=job[0],
                description=f"updated {self.serial}"), gone=lambda: job not in live)
        elif len(live) < CAPS["job"]:
            name = self.name("job")
            _, _, headers = await self.call("job_create", "POST", "/admin/api/jobs/job",
                                            json=job_body(name, self.rng.choice((EVERY_MINUTE, HOURLY, DAILY))))
            live.append((located(headers), name))
        else:
            job_id, _ = live.popleft()
            await self.call("job_delete", "DELETE", f"/admin/api/jobs/job/{job_id}")

    async def window_write(self) -> None:
        live = self.live["window"]
        roll = self.rng.random()
        day = self.rng.randrange(1, 300)
        form = {"scope": "1", "service": "10", "name": self.name("window"), "service_status": "degraded",
                "scheduled_start_date": f"2031-01-01T{day % 24:02d}:00",
                "scheduled_end_date": f"2031-01-02T{day % 24:02d}:00"}
        if live and roll < 0.3:
            window = self.rng.choice(live)
            await self.call("window_update", "POST", f"/api/maintenance/{window}/update", ok=(302,),
                            data={**form, "status": "scheduled"}, gone=lambda: window not in live)
        elif live and roll < 0.5:
            window = self.rng.choice(live)
            await self.call("window_comment", "POST", f"/api/maintenance/{window}/comment", ok=(302,),
                            data={"comment": "checked by the soak", "internal": "1"},
                            gone=lambda: window not in live)
        elif len(live) < CAPS["window"]:
            _, _, headers = await self.call("window_create", "POST", "/api/maintenance/create", ok=(302,), data=form)
            live.append(int(headers["Location"].rsplit("/", 1)[1]))
        else:
            await self.call("window_delete", "POST", f"/api/maintenance/{live.popleft()}/delete", ok=(302,))

    async def run_now(self) -> None:
        roll = self.rng.random()
        if roll < 0.4:
            await self.call("maintenance_run", "POST",
                            f"/api/1.0/aggregates/maintenance/orgId/{self.org()}/run-immediately", ok=(200, 409))
        elif roll < 0.7:
            await self.call("aggregate_execute", "POST",
                            f"/org/{self.org()}/project/churn/cube/c{self.rng.randrange(20)}/aggregates-creation/execute",
                            json={"full_build": False}, ok=(200, 409))
        else:  # a churned job: its runs go with it, so the fixed jobs' history stays what retention keeps
            live = self.live["job"]
            job = self.rng.choice(live) if live else (self.rng.choice(self.jobs_fixed), "")
            await self.call("job_run", "POST", f"/admin/api/jobs/job/run/{job[0]}", ok=(200, 409),
                            gone=lambda: job not in live and job[0] not in self.jobs_fixed)

    async def read(self) -> None:
        roll = self.rng.random()
        if roll < 0.25:
            await self.call("maintenance_history", "GET",
                            f"/aggregates/maintenance/orgId/{self.org()}/history?limit=20")
        elif roll < 0.45:
            await self.call("builds_history", "GET",
                            f"/org/{self.org()}/aggregates-creation/builds/history?limit=20")
        elif roll < 0.65:
            await self.call("job_history", "GET", f"/admin/api/jobs/history/{self.rng.choice(self.jobs_fixed)}")
        elif roll < 0.8:
            await self.call("maintenance_list", "GET", f"/aggregates/maintenance/scheduler/jobs/orgId/{self.org()}")
        else:
            await self.call("windows_list", "GET", "/api/maintenance?per_page=10")

    async def login_someone(self) -> None:
        await self.login(self.rng.choice(USERS))

    async def step(self) -> None:
        ops = ((self.maintenance_write, 2), (self.aggregate_write, 2), (self.job_write, 2),
               (self.window_write, 1), (self.run_now, 2), (self.read, 6), (self.login_someone, 0.25))
        action = self.rng.choices([op for op, _ in ops], weights=[w for _, w in ops])[0]
        try:
            await action()
        except Failure:
            pass

    async def drive(self, rate: float, stop: asyncio.Event, clients: int) -> None:
        """`clients` loops, together about `rate` requests per second, until `stop`."""
        interval = clients / rate

        async def client() -> None:
            next_at = time.monotonic()
            while not stop.is_set():
                await self.step()
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                    except TimeoutError:
                        pass
                else:
                    next_at = time.monotonic()  # behind: do not burst to catch up

        await asyncio.gather(*(client() for _ in range(clients)))


async def seed_aged_history(db_path: Path, job_ids: list[int], seconds: float) -> int:
    """Give each fixed job the runs it made a retention period ago, at its fire rate, over the
    span that ages out while the soak runs (and a minute either side)."""
    install_families()  # the records' overlap keys are the families' to say
    db = Database(str(db_path), "NORMAL")
    await db.open()
    now = time.time()
    total = 0
    try:
        for job_id in job_ids:
            schedule = await schedule_store.get(db, job_id)
            assert schedule is not None
            step = 1.0 if schedule.cron == EVERY_SECOND else 60.0
            first = now - RETENTION_DAYS * DAY - 60
            last = now - RETENTION_DAYS * DAY + seconds + 60
            times = [first + i * step for i in range(int((last - first) / step) + 1)]
            for start in range(0, len(times), 2000):
                chunk = times[start:start + 2000]

                def op(conn, chunk=chunk, schedule=schedule):
                    for at in chunk:
                        run_store.op_insert(conn, run_store.NewRun(
                            uid=str(uuid.uuid4()), family="service", overlap_key=schedule.overlap_key,
                            trigger="Scheduled", state="done", created_at=at, schedule_id=schedule.id,
                            cron=schedule.cron, due_at=at, started_at=at, ended_at=at + 0.01))

                await db.write(op)
                total += len(chunk)
    finally:
        await db.close()
    return total


# -- sampling -----------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    rss_mb: float
    fds: int
    threads: int
    tasks: int
    heap: int
    timers: int
    db_mb: float
    wal_mb: float
    runs: int
    svc_runs: int
    tokens: int
    p99_ms: float
    started: int
    requests: int
    failed: int


SERIES = (
    # attribute, heading, what must not grow, absolute tolerance over the measured window
    ("rss_mb", "RSS MB", 2.0),
    ("fds", "fds", 2.0),
    ("threads", "threads", 1.0),
    ("tasks", "tasks", 5.0),
    ("heap", "heap", 50.0),
    ("timers", "timers", 20.0),
    ("db_mb", "DB MB", 1.0),
    ("wal_mb", "WAL MB", 1.0),
    ("runs", "runs", 200.0),
    ("svc_runs", "job runs", 200.0),
    ("tokens", "tokens", 10.0),
    ("p99_ms", "delay p99 ms", 25.0),
)


def proc_status(pid: int) -> tuple[float, int]:
    rss_kb, threads = 0, 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kb / 1024, threads


def file_mb(path: Path) -> float:
    try:
        return path.stat().st_size / 1e6
    except FileNotFoundError:
        return 0.0


def parse_metrics(text: str) -> tuple[dict[str, float], dict[float, float]]:
    """Plain gauges by name, and the start-delay histogram's cumulative buckets (all families)."""
    values: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "schedd_start_delay_seconds_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif not sample.labels:
                values[sample.name] = sample.value
    return values, buckets


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> tuple[float, int]:
    """Prometheus' histogram_quantile over the buckets' increase: (seconds, observations)."""
    bounds = sorted(after)
    delta = [after[b] - before.get(b, 0.0) for b in bounds]
    total = delta[-1] if delta else 0.0
    if total <= 0:
        return math.nan, 0
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, delta, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower, int(total)
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9), int(total)
        lower, below = bound, count
    return lower, int(total)


class Sampler:
    def __init__(self, daemon: Daemon, tally: Tally, session: aiohttp.ClientSession) -> None:
        self.daemon = daemon
        self.tally = tally
        self.session = session
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self._buckets: dict[float, float] = {}
        self._requests = 0
        self._failed = 0

    async def take(self) -> Sample:
        assert self.daemon.proc is not None
        pid = self.daemon.proc.pid
        async with self.session.get(self.daemon.base + "/metrics") as response:
            text = await response.text()
        values, buckets = parse_metrics(text)
        p99, started = quantile(0.99, self._buckets, buckets)
        self._buckets = buckets
        rss, threads = proc_status(pid)
        with sqlite3.connect(f"file:{self.daemon.db}?mode=ro", uri=True) as db:
            runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
            svc_runs = db.execute("SELECT count(*) FROM runs WHERE family = 'service'").fetchone()[0]
            tokens = db.execute("SELECT count(*) FROM tokens").fetchone()[0]
        requests, failed = self.tally.requests, sum(self.tally.failed.values())
        sample = Sample(
            t=time.monotonic() - self.t0, rss_mb=rss, fds=len(os.listdir(f"/proc/{pid}/fd")), threads=threads,
            tasks=int(values.get("schedd_asyncio_tasks", -1)), heap=int(values.get("schedd_heap_entries", -1)),
            timers=int(values.get("schedd_heap_timers", -1)), db_mb=file_mb(self.daemon.db),
            wal_mb=file_mb(Path(str(self.daemon.db) + "-wal")), runs=runs, svc_runs=svc_runs, tokens=tokens,
            p99_ms=p99 * 1000, started=started, requests=requests - self._requests, failed=failed - self._failed)
        self._requests, self._failed = requests, failed
        self.samples.append(sample)
        return sample


# -- reporting ----------------------------------------------------------------------------------


COLUMNS = ("t", "rss_mb", "fds", "threads", "tasks", "heap", "timers", "db_mb", "wal_mb", "runs", "svc_runs",
           "tokens", "p99_ms", "started", "requests", "failed")
HEADINGS = ("t s", "RSS MB", "fds", "thr", "tasks", "heap", "timers", "DB MB", "WAL MB", "runs", "job runs",
            "tokens", "p99 ms", "started", "reqs", "fail")


def row(sample: Sample) -> str:
    cells = []
    for name in COLUMNS:
        value = getattr(sample, name)
        if isinstance(value, float):
            cells.append("-" if math.isnan(value) else f"{value:.0f}" if name == "t" else f"{value:.1f}")
        else:
            cells.append(str(value))
    return " ".join(f"{c:>9}" for c in cells)


def header() -> str:
    return " ".join(f"{h:>9}" for h in HEADINGS)


@dataclass(frozen=True)
class Trend:
    name: str
    slope_per_hour: float
    change: float
    noise: float
    verdict: str


def fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares slope and intercept, and the residuals' standard deviation."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    intercept = my - slope * mx
    residuals = [y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)]
    return slope, intercept, statistics.pstdev(residuals) if n > 1 else 0.0


def trends(samples: list[Sample], warmup: float) -> list[Trend]:
    kept = [s for s in samples if s.t >= warmup]
    out = []
    for name, heading, tolerance in SERIES:
        points = [(s.t, float(getattr(s, name))) for s in kept if not math.isnan(float(getattr(s, name)))]
        if len(points) < 3:
            out.append(Trend(heading, math.nan, math.nan, math.nan, "too few samples"))
            continue
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        slope, _, spread = fit(xs, ys)
        change = slope * (xs[-1] - xs[0])
        noise = max(2 * spread, tolerance)
        verdict = "flat" if abs(change) <= noise else ("growing" if change > 0 else "shrinking")
        out.append(Trend(heading, slope * 3600, change, noise, verdict))
    return out


def svg_chart(samples: list[Sample], warmup: float, title: str, found: list[Trend]) -> str:
    """Small multiples, one panel per series from zero, minutes on x; the warm-up is shaded and
    the fitted line over the measured window is dashed."""
    width, panel_h, cols = 1000, 150, 3
    pw, gap, left, top = (width - 40) / cols, 30, 50, 40
    rows = math.ceil(len(SERIES) / cols)
    height = top + rows * (panel_h + gap) + 10
    end = max((s.t for s in samples), default=1.0) or 1.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
           f'viewBox="0 0 {width} {height:.0f}" font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{_xml(title)}</text>']
    for index, ((name, heading, _), trend) in enumerate(zip(SERIES, found, strict=True)):
        col, line = index % cols, index // cols
        x0 = 20 + col * pw + left - 20
        y0 = top + line * (panel_h + gap)
        w, h = pw - left - 10, panel_h - 30
        values = [(s.t, float(getattr(s, name))) for s in samples if not math.isnan(float(getattr(s, name)))]
        hi = max((v for _, v in values), default=1.0)
        if hi < 1e-9:
            hi = 1.0

        def xy(t: float, v: float, x0: float = x0, y0: float = y0, w: float = w, h: float = h,
               hi: float = hi) -> str:
            return f"{x0 + w * t / end:.1f},{y0 + 18 + h - h * v / hi:.1f}"

        label = f"{heading}: {trend.verdict}"
        if not math.isnan(trend.slope_per_hour):
            label += f" ({trend.slope_per_hour:+.3g}/h)"
        out.append(f'<text x="{x0:.1f}" y="{y0 + 10:.1f}" font-weight="bold">{_xml(label)}</text>')
        out.append(f'<rect x="{x0:.1f}" y="{y0 + 18:.1f}" width="{w * min(warmup, end) / end:.1f}" '
                   f'height="{h:.1f}" fill="#eeeeee"/>')
        out.append(f'<rect x="{x0:.1f}" y="{y0 + 18:.1f}" width="{w:.1f}" height="{h:.1f}" '
                   f'fill="none" stroke="#999999"/>')
        out.append(f'<text x="{x0 - 4:.1f}" y="{y0 + 22:.1f}" text-anchor="end">{_num(hi)}</text>')
        out.append(f'<text x="{x0 - 4:.1f}" y="{y0 + 18 + h:.1f}" text-anchor="end">0</text>')
        out.append(f'<text x="{x0:.1f}" y="{y0 + 30 + h:.1f}">0</text>')
        out.append(f'<text x="{x0 + w:.1f}" y="{y0 + 30 + h:.1f}" text-anchor="end">{end / 60:.0f} min</text>')
        if values:
            points = " ".join(xy(t, v) for t, v in values)
            out.append(f'<polyline points="{points}" fill="none" stroke="#1f5fa8" stroke-width="1.5"/>')
        kept = [(t, v) for t, v in values if t >= warmup]
        if len(kept) >= 3:
            slope, intercept, _ = fit([t for t, _ in kept], [v for _, v in kept])
            a, b = kept[0][0], kept[-1][0]
            out.append(f'<polyline points="{xy(a, intercept + slope * a)} {xy(b, intercept + slope * b)}" '
                       'fill="none" stroke="#c0392b" stroke-width="1" stroke-dasharray="4 3"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- the run ------------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> int:
    seconds = args.seconds if args.seconds else args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(300.0, seconds * 0.2)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)  # noqa: S311 - a reproducible workload, not a secret
    orgs = ["default"] + [f"org{i:03d}" for i in range(1, args.orgs)]
    stub_runner, stub_port, stub_calls = await start_stub()
    daemon = Daemon(workdir, stub_port, orgs)
    tally = Tally()
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    try:
        await daemon.create_accounts()
        daemon.start()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            work = Workload(daemon, orgs, rng, tally)
            work.session = session
            work.token = await work.login()
            await work.create_fixed(args.fixed_orgs)
        if daemon.stop() != 0:
            raise RuntimeError("the set-up daemon did not stop cleanly:\n" + daemon.log.read_text()[-3000:])
        seeded = await seed_aged_history(daemon.db, work.jobs_fixed, seconds)
        daemon.start()
        proc = daemon.proc
        assert proc is not None
        say(f"soak: {seconds:.0f} s, sample every {args.every:g} s, warm-up {warmup:.0f} s; "
            f"{len(orgs)} orgs, {len(work.jobs_fixed)} fixed jobs ({seeded} aged runs seeded), "
            f"API mix ~{args.rate:g} req/s over {args.clients} clients; daemon pid {proc.pid}, "
            f"db {daemon.db}; load average {os.getloadavg()[0]:.1f}")
        say(header())
        async with aiohttp.ClientSession(timeout=timeout) as session:
            work.session = session
            work.token = await work.login()
            sampler = Sampler(daemon, tally, session)
            stop = asyncio.Event()
            driver = asyncio.create_task(work.drive(args.rate, stop, args.clients))
            await sampler.take()  # the baseline of the histogram and counters
            say(row(sampler.samples[-1]))
            deadline = time.monotonic() + seconds
            ended = asyncio.Event()  # SIGINT or SIGTERM: stop early, still report what was sampled
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, ended.set)
            while time.monotonic() < deadline and not ended.is_set():
                try:
                    await asyncio.wait_for(ended.wait(), min(args.every, max(0.0, deadline - time.monotonic())))
                except TimeoutError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError("the daemon died:\n" + daemon.log.read_text()[-3000:])
                say(row(await sampler.take()))
            stop.set()
            await driver
        status = daemon.stop()
    finally:
        daemon.stop()
        await stub_runner.cleanup()

    samples = sampler.samples
    say("")
    say(f"{tally.requests} requests ({sum(tally.failed.values())} failed), stub service calls "
        f"{sum(stub_calls.values())}, daemon exit {status}; load average at the end "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    say("requests by operation: " + ", ".join(f"{op} {n}" for op, n in sorted(tally.ok.items())))
    for failure in tally.last_failures:
        say(f"  failed: {failure}")
    say("")
    say(f"slopes after the {warmup:.0f} s warm-up (change = slope x measured window; flat when "
        "|change| <= noise = max(2 x residual sd, tolerance))")
    say(f"{'series':<14} {'slope/h':>10} {'change':>10} {'noise':>10}  verdict")
    found = trends(samples, warmup)
    for trend in found:
        say(f"{trend.name:<14} {trend.slope_per_hour:>10.2f} {trend.change:>10.2f} {trend.noise:>10.2f}  "
            f"{trend.verdict}")
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    span = f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
    title = (f"schedd soak: {span}, {args.rate:g} req/s API mix, {len(orgs)} orgs "
             f"(shaded: warm-up)")
    out.with_suffix(".svg").write_text(svg_chart(samples, warmup, title, found))
    print(f"wrote {out.with_suffix('.txt')} and {out.with_suffix('.svg')}; daemon files in {workdir}")
    return 1 if tally.failed or status != 0 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=0.0, help="overrides --minutes (smoke runs)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds left out of the slopes (default: 20%% of the run, at most 300)")
    parser.add_argument("--rate", type=float, default=20.0, help="API requests per second, all clients")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--orgs", type=int, default=50)
    parser.add_argument("--fixed-orgs", type=int, default=10,
                        help="orgs given an every-minute job, maintenance and build schedule each")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="soak", help="writes OUT.txt and OUT.svg")
    parser.add_argument("--workdir", default=None, help="the daemon's files (default: a new temporary directory)")
    args = parser.parse_args()
    if args.rate <= 0 or args.clients < 1 or args.orgs < 1 or args.every <= 0:
        parser.error("--rate, --clients, --orgs and --every must be positive")
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
