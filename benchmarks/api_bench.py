# ruff: noqa: S101, S105, S310, S603, S607, S608 - a benchmark: it runs its own daemon, CLI and wrk on a
# throwaway database with a throwaway password, and calls 127.0.0.1 only.
"""HTTP API benchmark: `schedd serve` in its own process under a load client (issue "API bench").

    .venv/bin/python benchmarks/api_bench.py                  # 1M rows, 1/16/64 conns, 5 s cells, 3 runs (~7.5 min)
    .venv/bin/python benchmarks/api_bench.py --quick          # smoke run, well under a minute
    .venv/bin/python benchmarks/api_bench.py --ops history_org,history_job --conns 1,64 --repeat 1
    .venv/bin/python benchmarks/api_bench.py --client wrk     # requests driven by wrk (C) instead of aiohttp
    .venv/bin/python benchmarks/api_bench.py --ops run_job    # a service job's run-now (not in the default set)
    .venv/bin/python benchmarks/api_bench.py --schedules 10000,100000,1000000   # how each cell grows
    .venv/bin/python benchmarks/api_bench.py --analyse /tmp/schedd-api-profile-create_job-64.txt

Set-up (not timed): a fresh SQLite file, an admin user and a token through the CLI
(`schedd user add --password-stdin`, `schedd token create`), a config whose maintenance
command is `/bin/true` and whose `[services.stub]` points at a tiny aiohttp stub in its own
process, the list schedules, the history job and a pool of jobs for run-now created
through the API, then `--rows` runs bulk-inserted with sqlite3 executemany for the history
org (org maintenance) and as many again for the history job (a service job), and the organisations
that run-now uses (`schedd org add` for a few, the rest inserted the same way). Then the
daemon is started again and each cell (operation x connections) runs a fresh load-client
process (aiohttp on the default asyncio loop, as schedd itself runs: no uvloop) for a
warm-up and then `--seconds` of closed-loop load; runs started by a cell are drained
before the next one. Every cell is repeated `--repeat` times, repeats outermost, and the
median of each figure is printed. Figures only: nothing here asserts.

Finally the goal cells that missed are run again under py-spy (`py-spy record --pid`),
and the top costs are printed with their share of the samples.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import itertools
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "api bench password"
USER = "bench"
LIST_ORG = "bench-list"      # holds --list-size schedules, read by the `list` cells
HIST_ORG = "bench-hist"      # holds --rows maintenance runs, read by `history_org`
CREATE_ORG = "bench-create"  # where `create_schedule` puts its schedules
HELD_ORG = "bench-held"    # idle schedules of `--schedules` (never read, never fired)
RUN_ORG = "rn-{:06d}"        # fresh orgs for `run_now` (one maintenance run per org at a time)
CLI_ORGS = 3                 # run-now orgs made with `schedd org add`; the rest are bulk-inserted
SERVICE = "stub"
# Fires on 1 January at 04:00 only: nothing created by the benchmark fires during it.
FAR_CRON = "0 0 4 1 1 ? *"
HISTORY_DAYS = 10            # the bulk-inserted runs span the last 10 days (inside retention)
JOB_RETENTION = "30"

# operation -> (method, what it does, goal)
OPS: dict[str, tuple[str, str]] = {
    "create_schedule": ("POST", "org maintenance: POST .../scheduler/jobs/orgId/{org} (Quartz cron)"),
    "create_job": ("POST", "service job: POST /admin/api/jobs/job (unique jobName)"),
    "run_now": ("POST", "org maintenance: POST /api/1.0/.../orgId/{org}/run-immediately, a fresh org each"),
    "run_job": ("POST", "service job: POST /admin/api/jobs/job/run/{jobId}, round-robin over a job pool"),
    "list": ("GET", "org maintenance: GET .../scheduler/jobs/orgId/{org} (--list-size schedules)"),
    "history_org": ("GET", "org maintenance: GET .../orgId/{org}/history?limit=10, --rows runs in the org"),
    "history_job": ("GET", "service job: GET /admin/api/jobs/history/{jobId}?limit=100, --rows runs"),
}
CREATE_GOAL = (3000.0, 20.0)   # req/s at least, p99 ms at most, at 64 connections
HISTORY_GOAL = 10.0            # p99 ms at most
GOAL_CONNS = 64


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of an unsorted list."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def machine_busy() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ============================================================================ children

def stub_main() -> None:
    """The service the service jobs POST to: answers every POST with 200 `{}`."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"PORT {port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def job_body(name: str, operation: str = "ping") -> dict[str, Any]:
    """A service job like Volt MX's sample (MINIMAL history, the far cron)."""
    return {
        "jobName": name, "jobFrequency": FAR_CRON, "description": f"benchmark job {name}",
        "jobServiceInfo": {
            "version": "1.0", "serviceType": "intSer", "serviceName": SERVICE, "objectName": "",
            "operationName": operation, "requestheaderMap": {}, "serviceExecutionType": "SERVER_URL",
            "postData": "{\"cityName\":\"Oslo\"}", "operationSecurityLevel": "public",
        },
        "jobStatus": "Active", "historyStrategy": "MINIMAL", "retentionPeriod": JOB_RETENTION,
    }


def request_maker(spec: dict[str, Any]):
    """A function giving (method, url, body) for the next request of the cell's operation."""
    base, op = spec["base"], spec["op"]
    counter = itertools.count(spec.get("start", 0))
    if op == "create_schedule":
        url = f"{base}/aggregates/maintenance/scheduler/jobs/orgId/{CREATE_ORG}"
        body = json.dumps({"time_expression": FAR_CRON, "scheduler_type": "time-based"}).encode()
        return lambda: ("POST", url, body)
    if op == "create_job":
        url = f"{base}/admin/api/jobs/job"
        prefix = spec["prefix"]
        return lambda: ("POST", url, json.dumps(job_body(f"{prefix}-{next(counter)}")).encode())
    if op == "run_now":
        n = spec["orgs"]
        return lambda: ("POST", (f"{base}/api/1.0/aggregates/maintenance/orgId/"
                                 f"{RUN_ORG.format(next(counter) % n)}/run-immediately"), None)
    if op == "run_job":
        pool = spec["pool"]
        return lambda: ("POST", f"{base}/admin/api/jobs/job/run/{pool[next(counter) % len(pool)]}", None)
    if op == "list":
        url = f"{base}/aggregates/maintenance/scheduler/jobs/orgId/{LIST_ORG}"
    elif op == "history_org":
        url = f"{base}/aggregates/maintenance/orgId/{HIST_ORG}/history?limit=10"
    elif op == "history_job":
        url = f"{base}/admin/api/jobs/history/{spec['history_job']}?limit=100"
    else:
        raise ValueError(op)
    return lambda: ("GET", url, None)


def parse_writer_totals(text: str) -> tuple[float, float, float]:
    """(commits, writes, commit seconds) from the text of the daemon's /metrics."""
    found = dict(re.findall(r"^(schedd_writer_\w+_(?:sum|count)) ([0-9.e+]+)$", text, re.M))
    return (float(found.get("schedd_writer_batch_size_count", 0)),
            float(found.get("schedd_writer_batch_size_sum", 0)),
            float(found.get("schedd_writer_commit_seconds_sum", 0)))


def writer_totals_now(base: str) -> tuple[float, float, float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        return parse_writer_totals(r.read().decode())


def wrk_script(spec: dict[str, Any], threads: int, start: int, prefix: str) -> str:
    """The wrk Lua script of a cell: the same requests as `request_maker`, numbered across threads."""
    op = spec["op"]
    path = {
        "create_schedule": f"/aggregates/maintenance/scheduler/jobs/orgId/{CREATE_ORG}",
        "create_job": "/admin/api/jobs/job",
        "list": f"/aggregates/maintenance/scheduler/jobs/orgId/{LIST_ORG}",
        "history_org": f"/aggregates/maintenance/orgId/{HIST_ORG}/history?limit=10",
        "history_job": f"/admin/api/jobs/history/{spec['history_job']}?limit=100",
    }.get(op)
    body = "nil"
    if op == "create_schedule":
        body = lua_string(json.dumps({"time_expression": FAR_CRON, "scheduler_type": "time-based"}))
    elif op == "create_job":
        template = lua_string(json.dumps(job_body("@NAME@")))
        body = f"(string.gsub({template}, '@NAME@', {lua_string(prefix)} .. '-' .. n))"
    if op == "run_now":
        target = (f"string.format('/api/1.0/aggregates/maintenance/orgId/{RUN_ORG.replace('{:06d}', '%06d')}"
                  f"/run-immediately', n % {spec['orgs']})")
    elif op == "run_job":
        target = "'/admin/api/jobs/job/run/' .. pool[n % #pool + 1]"
    else:
        target = lua_string(path or "")
    method = OPS[op][0]
    return (
        f"local pool = {{{', '.join(str(j) for j in spec['pool']) if op == 'run_job' else ''}}}\n"
        "local threads_made = 0\n"
        "function setup(thread)\n  thread:set('tid', threads_made)\n  threads_made = threads_made + 1\nend\n"
        "local count = 0\n"
        "function request()\n"
        f"  local n = {start} + tid + count * {threads}\n"
        "  count = count + 1\n"
        f"  return wrk.format('{method}', {target}, nil, {body})\n"
        "end\n"
        "function done(summary, latency, requests)\n"
        "  io.write(string.format('WRK %d %d %d %d %d %d\\n', summary.requests, summary.duration,\n"
        "    latency:percentile(50), latency:percentile(99), latency.max,\n"
        "    summary.errors.status + summary.errors.connect + summary.errors.read\n"
        "    + summary.errors.write + summary.errors.timeout))\n"
        "end\n"
    )


def lua_string(text: str) -> str:
    """A Lua string literal (the text has no newline)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def client_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Closed loop: `conns` workers, each on its own keep-alive connection, for warm-up + window."""
    import aiohttp

    conns, warmup, seconds = spec["conns"], spec["warmup"], spec["seconds"]
    make = request_maker(spec)
    headers = {"X-VoltMX-Authorization": spec["token"]}
    post_headers = {**headers, "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    issued = 0
    connector = aiohttp.TCPConnector(limit=conns, limit_per_host=conns)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        begin = time.perf_counter()
        window_start, window_end = begin + warmup, begin + warmup + seconds
        marks: dict[str, float] = {}

        async def worker() -> None:
            nonlocal issued
            while True:
                t0 = time.perf_counter()
                if t0 >= window_end:
                    return
                method, url, body = make()
                issued += 1
                try:
                    async with session.request(method, url, data=body,
                                               headers=post_headers if body else headers) as r:
                        await r.read()
                        status = str(r.status)
                except Exception as exc:  # noqa: BLE001 - counted, shown in the table
                    status = type(exc).__name__
                if t0 >= window_start:
                    latencies.append(time.perf_counter() - t0)
                    statuses[status] += 1

        async def writer_totals() -> tuple[float, float, float]:
            """(commits, writes, commit seconds) so far, from the daemon's /metrics (own connection)."""
            async with aiohttp.ClientSession() as own, own.get(f"{spec['base']}/metrics") as r:
                return parse_writer_totals(await r.text())

        def cpu_marks(suffix: str) -> None:
            marks["srv" + suffix], marks["cli" + suffix] = proc_cpu(spec["daemon_pid"]), time.process_time()
            marks["stub" + suffix], marks["all" + suffix] = proc_cpu(spec["stub_pid"]), machine_busy()

        async def meter() -> None:
            await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
            marks["w0"] = await writer_totals()
            cpu_marks("0")
            await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
            cpu_marks("1")
            marks["w1"] = await writer_totals()

        await asyncio.gather(meter(), *(worker() for _ in range(conns)))
    n = len(latencies)
    commits, writes, commit_s = (b - a for a, b in zip(marks["w0"], marks["w1"], strict=True))
    return {
        "commits": commits, "writes": writes, "commit_s": commit_s,
        "n": n, "rps": n / seconds, "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000, "max": max(latencies, default=math.nan) * 1000,
        "statuses": dict(statuses), "issued": issued,
        "srv_cpu": marks["srv1"] - marks["srv0"], "cli_cpu": marks["cli1"] - marks["cli0"],
        "other_cpu": (marks["all1"] - marks["all0"]) - (marks["srv1"] - marks["srv0"])
        - (marks["cli1"] - marks["cli0"]) - (marks["stub1"] - marks["stub0"]),
        "seconds": seconds, "client": "aiohttp",
    }


def client_main(spec_json: str) -> None:
    result = asyncio.run(client_run(json.loads(spec_json)))
    print("RESULT " + json.dumps(result), flush=True)


# ============================================================================ the daemon

class Daemon:
    """`schedd serve --port 0` with its log in a file (as tests/test_e2e.py starts it)."""

    def __init__(self, work: Path, db: Path | str, config: Path) -> None:
        self.work, self.db, self.config = work, db, config
        self.log = work / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> Daemon:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "schedd", "serve", "--port", "0", "--db", str(self.db),
                 "--config", str(self.config)], stdout=subprocess.DEVNULL, stderr=out, cwd=self.work)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(self.log) as f:
                f.seek(offset)
                found = re.search(r"action=listening .*port=(\d+)", f.read())
            if found:
                self.port = int(found.group(1))
                return self
            if self.proc.poll() is not None:
                raise SystemExit("schedd serve exited:\n" + self.log.read_text()[-4000:])
            time.sleep(0.05)
        raise SystemExit("schedd serve did not start:\n" + self.log.read_text()[-4000:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        return self.exchange(method, path, token, body)[0]

    def exchange(self, method: str, path: str, token: str, body: Any = None) -> tuple[Any, Any]:
        """The parsed answer and the response headers."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "X-VoltMX-Authorization": token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return json.loads(response.read() or b"null"), response.headers
        except urllib.error.HTTPError as err:
            raise SystemExit(f"{method} {path}: {err.code} {err.read()[:500]!r}") from err

    def create_job(self, token: str, body: Any) -> int:
        """A new admin-console job; its id is at the end of the answer's `Location`."""
        _, headers = self.exchange("POST", "/admin/api/jobs/job", token, body)
        return int(headers["Location"].rsplit("/", 1)[1])


def schedd_cli(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "schedd", *args], input=stdin, capture_output=True,
                         text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise SystemExit(f"schedd {' '.join(args)}: exit {out.returncode}\n{out.stderr}")
    return out.stdout


# ============================================================================ set-up

RUN_COLUMNS = (
    "uid", "family", "schedule_id", "overlap_key", "org_id", "trigger", "state", "cron", "due_at",
    "fires", "created_at", "started_at", "ended_at", "attempt", "error", "exit_code", "timed_out",
    "complete",
)
SQL_RUN_INSERT = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"


def history_rows(rows: int, job_id: int, job_cron: str, now: float):
    """`rows` finished maintenance runs of HIST_ORG and as many runs of the job, interleaved,
    one in 20 failed, spread evenly over the last HISTORY_DAYS days (oldest first)."""
    step = HISTORY_DAYS * 86400.0 / max(rows, 1)
    first = now - HISTORY_DAYS * 86400.0
    org_key, job_key = f"maintenance:{HIST_ORG}", f"service:{job_id}"
    uid = uuid.uuid4
    for i in range(rows):
        at = first + i * step
        failed = i % 20 == 7
        state = "failed" if failed else "done"
        yield (str(uid()), "maintenance", None, org_key, HIST_ORG, "TimeBasedMaintenance", state,
               "0 0 4 ? * * *", at, 1, at, at + 0.01, at + 2.5, 1,
               "exit status 1" if failed else None, 1 if failed else None, 0, 0)
        yield (str(uid()), "service", job_id, job_key, None, "Scheduled", state, job_cron, at, 1,
               at, at + 0.005, at + 0.12, 1, "HTTP 503" if failed else None, None, 0, 0)


def bulk_insert(db: Path, rows: int, job_id: int, run_orgs: int, now: float) -> dict[str, int]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    conn.execute("BEGIN")
    job_cron = conn.execute("SELECT cron FROM schedules WHERE id = ?", (job_id,)).fetchone()[0]
    conn.executemany(SQL_RUN_INSERT, history_rows(rows, job_id, job_cron, now))
    fails = sum(1 for i in range(rows) if i % 20 == 7)
    conn.execute("UPDATE schedules SET success_count = ?, fail_count = ? WHERE id = ?",
                 (rows - fails, fails, job_id))
    conn.executemany("INSERT INTO orgs (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                     ((RUN_ORG.format(i), now) for i in range(run_orgs)))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {
        "runs": conn.execute("SELECT count(*) FROM runs").fetchone()[0],
        "org_runs": conn.execute("SELECT count(*) FROM runs WHERE org_id = ?", (HIST_ORG,)).fetchone()[0],
        "job_runs": conn.execute("SELECT count(*) FROM runs WHERE schedule_id = ?", (job_id,)).fetchone()[0],
        "orgs": conn.execute("SELECT count(*) FROM orgs").fetchone()[0],
    }
    conn.close()
    return counts


def add_idle_schedules(db: Path, total: int, now: float) -> int:
    """Maintenance schedules in org `bench-held` up to `total`, firing on 1 January only (at spread minutes)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    have = conn.execute("SELECT count(*) FROM schedules WHERE org_id = ?", (HELD_ORG,)).fetchone()[0]
    year = time.gmtime(now).tm_year + 1
    jan1 = calendar.timegm((year, 1, 1, 0, 0, 0))

    def rows():
        for i in range(have, total):
            hour, minute = (i // 60) % 24, i % 60
            yield (str(uuid.uuid4()), HELD_ORG, f"0 {minute} {hour} 1 1 ? *", jan1 + hour * 3600 + minute * 60, now)

    conn.execute("BEGIN")
    conn.execute("INSERT INTO orgs (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING", (HELD_ORG, now))
    conn.executemany(
        "INSERT INTO schedules (uid, family, org_id, cron, cron_normalized, timezone, full_build, active,"
        " next_fire_at, retention_days, created_by, created_at, updated_by, updated_at)"
        " VALUES (?1, 'maintenance', ?2, ?3, ?3, 'UTC', 0, 1, ?4, 0, 'bench', ?5, 'bench', ?5)", rows())
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return max(0, total - have)


class PgTarget:
    """--store postgres: a throwaway durable cluster (fsync and full_page_writes on) and one new database
    on it, which the SQLite set-up file is copied into (`schedd db copy`, row counts verified)."""

    def __init__(self) -> None:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from tests.support.postgres import Cluster

        cluster = Cluster.find(durable=True)
        if cluster is None:
            raise SystemExit("--store postgres: no PostgreSQL server installed (/usr/lib/postgresql/*/bin)")
        self.cluster = cluster
        cluster.start()
        self.url = asyncio.run(cluster.new_database(migrated=False))
        self.settings = self._query(
            "SELECT string_agg(name || ' ' || setting, ', ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('fsync', 'full_page_writes', 'synchronous_commit', 'server_version')")
        if "fsync on" not in self.settings or "full_page_writes on" not in self.settings:
            raise SystemExit(f"--store postgres: the cluster is not durable: {self.settings}")

    def _query(self, sql: str) -> Any:
        async def fetch() -> Any:
            import asyncpg

            conn = await asyncpg.connect(self.url)
            try:
                return await conn.fetchval(sql)
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def copy_from(self, db: Path) -> float:
        """Every table of the set-up file into the database; seconds taken."""
        started = time.perf_counter()
        schedd_cli("db", "copy", str(db), self.url)
        return time.perf_counter() - started

    def open_runs(self) -> int:
        return int(self._query("SELECT count(*) FROM runs WHERE state IN ('queued', 'inprogress')"))

    def size_mb(self) -> float:
        return float(self._query("SELECT pg_database_size(current_database())")) / 2**20

    def close(self) -> None:
        self.cluster.stop()


def db_target(args: argparse.Namespace, db: Path) -> tuple[str, PgTarget | None]:
    """The daemon's `--db` for the cells: the set-up file itself, or (--store postgres) a PostgreSQL
    database holding a copy of it."""
    if args.store == "sqlite":
        return str(db), None
    target = PgTarget()
    return target.url, target


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.db = work / "schedd.db"
        self.config = work / "schedd.toml"
        self.daemon = Daemon(work, self.db, self.config)
        self.stub: subprocess.Popen | None = None
        self.token = ""
        self.history_job = 0
        self.pool: list[int] = []
        self.cursor: Counter[str] = Counter()  # next org / pool index / job name per operation
        self.cells = 0
        self.pg: PgTarget | None = None

    # -- set-up ------------------------------------------------------------------------

    def start_stub(self) -> int:
        self.stub = subprocess.Popen([sys.executable, __file__, "--child-stub"], stdout=subprocess.PIPE,
                                     text=True)
        assert self.stub.stdout is not None
        line = self.stub.stdout.readline()
        if not line.startswith("PORT "):
            raise SystemExit("the service stub did not start")
        return int(line.split()[1])

    def setup(self) -> dict[str, Any]:
        args = self.args
        started = time.perf_counter()
        stub_port = self.start_stub()
        database = f"[database]\nsynchronous = \"{args.synchronous}\"\n\n" if args.synchronous else ""
        self.config.write_text(
            database + "[scheduler]\nshutdown_grace = \"5s\"\n\n"
            "[executors.maintenance]\ncommand = [\"/bin/true\"]\ntimeout = \"60s\"\n\n"
            f"[services.{SERVICE}]\nbase_url = \"http://127.0.0.1:{stub_port}/svc\"\ntimeout = \"10s\"\n")
        db, cfg = ("--db", str(self.db)), ("--config", str(self.config))
        schedd_cli("user", "add", USER, "--admin", "--create-org", "--org", LIST_ORG, "--org", HIST_ORG, "--org", CREATE_ORG,
                   "--password-stdin", *db, *cfg, stdin=PASSWORD + "\n")
        self.token = schedd_cli("token", "create", USER, "--ttl", "7d", *db, *cfg).strip()
        for i in range(CLI_ORGS):
            schedd_cli("org", "add", RUN_ORG.format(i), *db, *cfg)

        # Objects the cells read or run, made through the API as a user would.
        d = self.daemon.start()
        for _ in range(args.list_size):
            d.call("POST", f"/aggregates/maintenance/scheduler/jobs/orgId/{LIST_ORG}", self.token,
                   {"time_expression": FAR_CRON, "scheduler_type": "time-based"})
        self.history_job = d.create_job(self.token, job_body("bench-history"))
        self.pool = [d.create_job(self.token, job_body(f"bench-pool-{i}")) for i in range(args.pool_jobs)]
        d.stop()
        api_done = time.perf_counter()

        counts = bulk_insert(self.db, args.rows, self.history_job, args.run_orgs, time.time())
        self.daemon.db, self.pg = db_target(args, self.db)
        copy_s = self.pg.copy_from(self.db) if self.pg else 0.0
        inserted = time.perf_counter()
        self.daemon.start()
        ready = time.perf_counter()
        facts = {
            **counts, "stub_port": stub_port,
            "db_mb": self.pg.size_mb() if self.pg else self.db.stat().st_size / 2**20,
            "setup_api_s": api_done - started, "insert_s": inserted - api_done, "restart_s": ready - inserted,
            "copy_s": copy_s, "store": f"PostgreSQL ({self.pg.settings})" if self.pg else "SQLite",
        }
        log(f"set-up: {counts['runs']:,} runs ({counts['org_runs']:,} in org {HIST_ORG}, "
            f"{counts['job_runs']:,} of job {self.history_job}), {counts['orgs']:,} orgs, "
            f"{facts['db_mb']:.0f} MiB; CLI+API {facts['setup_api_s']:.1f} s, "
            f"bulk insert {facts['insert_s']:.1f} s, daemon restart {facts['restart_s']:.1f} s")
        return facts

    def hold(self, total: int) -> dict[str, Any]:
        """Grow the idle schedules to `total` (bulk insert), restart the daemon so its heap holds them."""
        self.daemon.stop()
        started = time.perf_counter()
        added = add_idle_schedules(self.db, total, time.time())
        inserted = time.perf_counter()
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        schedules = conn.execute("SELECT count(*) FROM schedules").fetchone()[0]
        conn.close()
        self.daemon.start()
        ready = time.perf_counter()
        facts = {"held": total, "added": added, "schedules": schedules, "insert_s": inserted - started,
                 "restart_s": ready - inserted,
                 "rss_mb": proc_rss_mb(self.daemon.pid), "db_mb": self.db.stat().st_size / 2**20}
        log(f"holding {total:,} idle schedules (+{added:,} in {facts['insert_s']:.1f} s; {schedules:,} schedules "
            f"in all, with those earlier cells created); daemon ready in "
            f"{facts['restart_s']:.1f} s, RSS {facts['rss_mb']:.0f} MB, database {facts['db_mb']:.0f} MiB")
        return facts

    def close(self) -> None:
        self.daemon.stop()
        if self.stub is not None:
            self.stub.kill()
            self.stub.wait()
        if self.pg is not None:
            self.pg.close()

    # -- cells -------------------------------------------------------------------------

    def spec(self, op: str, conns: int, warmup: float, seconds: float) -> dict[str, Any]:
        self.cells += 1
        return {
            "base": self.daemon.base, "op": op, "conns": conns, "warmup": warmup, "seconds": seconds,
            "token": self.token, "daemon_pid": self.daemon.pid, "start": self.cursor[op],
            "stub_pid": self.stub.pid if self.stub else os.getpid(),
            "prefix": f"bench-c{self.cells}", "orgs": self.args.run_orgs, "pool": self.pool,
            "history_job": self.history_job,
        }

    def cell(self, op: str, conns: int, *, seconds: float | None = None, warmup: float | None = None) -> dict:
        seconds = self.args.seconds if seconds is None else seconds
        warmup = self.args.warmup if warmup is None else warmup
        spec = self.spec(op, conns, warmup, seconds)
        if self.args.client == "wrk":
            result = self.wrk_cell(spec)
        else:
            out = subprocess.run([sys.executable, __file__, "--child-client", json.dumps(spec)],
                                 capture_output=True, text=True, timeout=warmup + seconds + 120, check=False)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"load client failed ({op}, {conns}):\n{out.stderr[-3000:]}")
            result = json.loads(line[len("RESULT "):])
        self.cursor[op] += result["issued"]
        result["drain_s"] = self.drain()
        return result

    def wrk_cell(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A cell driven by wrk (C, a few % of a CPU): a warm-up run, then the measured run."""
        conns = spec["conns"]
        threads = min(conns, 2)
        headers = ["-H", f"X-VoltMX-Authorization: {spec['token']}", "-H", "Content-Type: application/json"]

        def run(label: str, seconds: float, start: int) -> tuple[subprocess.CompletedProcess[str], int]:
            script = self.work / f"wrk-{label}.lua"
            script.write_text(wrk_script(spec, threads, start, f"{spec['prefix']}{label}"))
            out = subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), *headers, "-s", str(script),
                                  "-d", f"{max(1, round(seconds))}s", spec["base"]],
                                 capture_output=True, text=True, check=True)
            fields = next(ln for ln in out.stdout.splitlines() if ln.startswith("WRK ")).split()[1:]
            # The numbers handed out: each thread takes every `threads`-th one, and one thread may
            # have sent nearly all the requests, plus those still in flight at the end.
            return out, threads * (int(fields[0]) + conns)

        _, warm_issued = run("w", spec["warmup"], spec["start"])
        w0 = writer_totals_now(spec["base"])
        children0 = os.times()
        srv0, stub0, all0 = proc_cpu(spec["daemon_pid"]), proc_cpu(spec["stub_pid"]), machine_busy()
        out, issued = run("m", spec["seconds"], spec["start"] + warm_issued)
        srv1, stub1, all1 = proc_cpu(spec["daemon_pid"]), proc_cpu(spec["stub_pid"]), machine_busy()
        children1 = os.times()
        commits, writes, commit_s = (b - a for a, b in zip(w0, writer_totals_now(spec["base"]), strict=True))
        fields = next(ln for ln in out.stdout.splitlines() if ln.startswith("WRK ")).split()[1:]
        n, duration_us, p50, p99, worst, errors = (int(x) for x in fields)
        seconds = duration_us / 1e6
        wrk_cpu = (children1.children_user + children1.children_system) - (
            children0.children_user + children0.children_system)
        return {
            "other_cpu": (all1 - all0) - (srv1 - srv0) - (stub1 - stub0) - wrk_cpu,
            "n": n, "rps": n / seconds, "p50": p50 / 1000, "p99": p99 / 1000, "max": worst / 1000,
            "statuses": {"2xx": n - errors, **({"error": errors} if errors else {})},
            "issued": warm_issued + issued, "srv_cpu": srv1 - srv0, "seconds": seconds, "client": "wrk",
            "cli_cpu": wrk_cpu, "commits": commits, "writes": writes, "commit_s": commit_s,
        }

    def open_runs(self) -> int:
        if self.pg is not None:
            return self.pg.open_runs()
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(
                "SELECT count(*) FROM runs WHERE state IN ('queued', 'inprogress')").fetchone()[0]
        finally:
            conn.close()

    def drain(self, limit: float = 120.0) -> float:
        """Wait for the runs a cell started to finish, so the next cell starts on a quiet daemon.

        Returns how long the backlog took (0 when there was none)."""
        started = time.monotonic()
        deadline = started + limit
        while self.open_runs() and time.monotonic() < deadline:
            time.sleep(0.05)
        waited = time.monotonic() - started
        time.sleep(0.2)
        return waited if waited > 0.06 else 0.0

    # -- profile -----------------------------------------------------------------------

    def profile(self, op: str, conns: int, seconds: float) -> dict[str, Any]:
        """The cell again, with py-spy sampling the daemon through the middle of its window."""
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out = Path(tempfile.gettempdir()) / f"schedd-api-profile-{op}-{conns}.txt"
        spec = self.spec(op, conns, 1.0, seconds + 1.0)
        client = subprocess.Popen([sys.executable, __file__, "--child-client", json.dumps(spec)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        rate = 100
        spy = subprocess.run([py_spy, "record", "--pid", str(self.daemon.pid), "--duration", str(int(seconds)),
                              "--rate", str(rate), "--format", "raw", "--threads", "--full-filenames",
                              "--output", str(out)], capture_output=True, text=True, check=False)
        stdout, _ = client.communicate(timeout=seconds + 120)
        line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
        result = json.loads(line[len("RESULT "):]) if line else {}
        self.cursor[op] += result.get("issued", 0)
        self.drain()
        if spy.returncode != 0 or not out.exists():
            return {"op": op, "conns": conns, "error": (spy.stderr or spy.stdout)[-2000:]}
        return {"op": op, "conns": conns, "file": str(out), "rate": rate, "seconds": int(seconds),
                "under_profile": result, **analyse(out.read_text(), rate * int(seconds))}


# ============================================================================ profile analysis

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
_WORKER_LINES = {  # aiosqlite/core.py _connection_worker_thread: what the worker thread is doing
    "59": "aiosqlite thread: woken in tx.get, waiting for a CPU and the GIL",
    "63": "aiosqlite thread: inside sqlite3 (statement, fetch, building rows, commit)",
}

_WAKE = "aiosqlite thread: waking the event loop (call_soon_threadsafe)"

# Where a sample's time goes: the first (from the leaf up) frame that matches a bucket.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aiosqlite: queueing a call and resolving its future (event loop)", ("aiosqlite/",)),
    ("logging (one access line per request, run lines)", ("logging/",)),
    ("prometheus_client (request counters and histograms)", ("prometheus_client/",)),
    ("json encode/decode", ("json/",)),
    ("uuid4 (request ids, schedule/run uids)", ("uuid.py",)),
    ("cron parsing and next fire time", ("schedd/cron/",)),
    ("time zones and date formatting", ("zoneinfo/", "_strptime")),
    ("subprocess spawn and reaping (the run's command)", ("subprocess.py", "asyncio/unix_events.py",
                                                          "asyncio/base_subprocess.py")),
    ("aiohttp client (the run's service call)", ("aiohttp/client", "aiohttp/connector")),
    ("aiohttp server (parse, route, respond)", ("aiohttp/", "multidict/", "yarl/")),
    ("schedd's own code", ("schedd/",)),
    ("asyncio event loop (select, callbacks, tasks)", ("asyncio/", "selectors.py")),
)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", f"{ROOT}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _parse_frame(frame: str) -> tuple[str, str, str]:
    m = _FRAME.match(frame)
    if not m:
        return frame, "", ""
    return m.group("func"), _short(m.group("file")), m.group("line") or ""


def analyse(raw: str, possible_per_thread: int) -> dict[str, Any]:
    """Collapsed stacks (`thread (tid): name;frame;...;leaf count`) -> shares by thread, bucket, function."""
    total = 0
    threads: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    thread_ids: dict[str, set[str]] = defaultdict(set)
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        head, _, rest = stack.partition(";")
        tid, _, name = head.partition(": ")
        name = "event loop (MainThread)" if name == "MainThread" else re.sub(r"\d+", "N", name or "?")
        thread_ids[name].add(tid)
        parsed = [_parse_frame(f) for f in rest.split(";") if f]
        total += count
        threads[name] += count
        if not parsed:
            continue
        func, file, lineno = parsed[-1]
        leaf = None
        if name.startswith("schedd-writer"):
            if file.startswith("concurrent/futures/") or file == "threading.py":
                leaf = "writer thread: woken for the next group commit, waiting for a CPU and the GIL"
            elif file == "schedd/store/db.py" and func.startswith(("WriteConnection.", "WriteCursor.",
                                                                     "Database._run_transaction")):
                leaf = "writer thread: inside sqlite3 (statements, BEGIN/COMMIT)"
            else:
                leaf = "writer thread: Python around the statements (write ops, row objects)"
        elif name != "event loop (MainThread)":
            if file == "aiosqlite/core.py" and func.endswith("_connection_worker_thread"):
                leaf = _WORKER_LINES.get(lineno, _WAKE)
            elif any(f.endswith("_execute_fetchall") and p == "aiosqlite/core.py" for f, p, _ in parsed):
                leaf = _WORKER_LINES["63"]
            elif any(p.startswith("asyncio/") for _, p, _ in parsed):
                leaf = _WAKE
            else:
                leaf = f"{name}: {func} ({file})"
        self_time[leaf or f"{func} ({file})"] += count
        for key in {f"{f} ({p})" for f, p, _ in parsed}:
            inclusive[key] += count
        bucket = leaf or "other"
        if leaf is None:
            for func, file, _ in reversed(parsed):
                where = f"{file}:{func}"
                hit = next((b for b, needles in BUCKETS if any(n in where for n in needles)), None)
                if hit is not None:
                    bucket = hit
                    break
        buckets[bucket] += count
    return {
        "samples": total, "possible_per_thread": possible_per_thread,
        "threads": [(name, count, len(thread_ids[name])) for name, count in threads.most_common()],
        "buckets": buckets.most_common(), "self": self_time.most_common(25),
        "inclusive": inclusive.most_common(80),
    }


# ============================================================================ report

def med(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    for r in runs:
        statuses.update(r["statuses"])
    errors = sum(v for k, v in statuses.items() if not k.startswith("2"))
    writes = [r for r in runs if r.get("commits")]
    return {
        "rps": med([r["rps"] for r in runs]), "p50": med([r["p50"] for r in runs]),
        "p99": med([r["p99"] for r in runs]),
        "srv_ms": med([1000 * r["srv_cpu"] / r["n"] for r in runs if r["n"]]),
        "srv_util": med([r["srv_cpu"] / r["seconds"] for r in runs]),
        "cli_util": med([r["cli_cpu"] / r["seconds"] for r in runs]),
        "other_util": max(0.0, med([r["other_cpu"] / r["seconds"] for r in runs])),
        "batch": med([r["writes"] / r["commits"] for r in writes]),
        "commit_ms": med([1000 * r["commit_s"] / r["commits"] for r in writes]),
        "commits_s": med([r["commits"] / r["seconds"] for r in writes]),
        "drain_s": med([r.get("drain_s", 0.0) for r in runs]),
        "rps_all": [r["rps"] for r in runs], "p99_all": [r["p99"] for r in runs], "errors": errors,
        "error_kinds": {k: v for k, v in statuses.items() if not k.startswith("2")},
        "requests": sum(r["n"] for r in runs),
    }


def _cells(results: dict[tuple[str, int], list[dict[str, Any]]], ops: list[str], conns: list[int]):
    for op in ops:
        for c in conns:
            if results.get((op, c)):
                yield op, c, summarise(results[(op, c)])


def table(results: dict[tuple[str, int], list[dict[str, Any]]], ops: list[str], conns: list[int]) -> list[str]:
    lines = [
        "| operation | conns | req/s | p50 ms | p99 ms | daemon CPU ms/req | non-2xx answers |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for op, c, s in _cells(results, ops, conns):
        err = f"{s['errors']} {s['error_kinds']}" if s["errors"] else "0"
        lines.append(f"| {op} | {c} | {s['rps']:.0f} | {s['p50']:.2f} | {s['p99']:.2f} | {s['srv_ms']:.2f} | {err} |")
    return lines


def sized_tables(by_size: dict[int, dict[tuple[str, int], list[dict[str, Any]]]], held: list[dict[str, Any]],
                 args: argparse.Namespace) -> list[str]:
    """The main table per number of idle schedules held, and how each cell grows with it."""
    lines: list[str] = []
    facts = {h["held"]: h for h in held}
    for size, results in by_size.items():
        if size:
            h = facts[size]
            lines += [f"Holding {size:,} idle schedules, {h['schedules']:,} in all with those earlier create cells "
                      f"made (daemon RSS after restart {h['rss_mb']:.0f} MB, "
                      f"ready in {h['restart_s']:.1f} s, database {h['db_mb']:.0f} MiB):", ""]
        lines += [*table(results, args.ops_list, args.conns_list), ""]
    if len(by_size) > 1:
        sizes = list(by_size)
        lines += ["How each cell grows with the idle schedules held (req/s; p99 ms):", "",
                  "| operation | conns | " + " | ".join(f"{n:,} held" for n in sizes) + " |",
                  "| --- | ---: |" + " ---: |" * len(sizes)]
        for op in args.ops_list:
            for c in args.conns_list:
                cells = [summarise(by_size[n][(op, c)]) for n in sizes if by_size[n].get((op, c))]
                if len(cells) == len(sizes):
                    lines.append(f"| {op} | {c} | " + " | ".join(f"{x['rps']:.0f}; {x['p99']:.1f}" for x in cells)
                                 + " |")
        lines.append("")
    return lines


def context_table(results: dict[tuple[str, int], list[dict[str, Any]]], ops: list[str],
                  conns: list[int]) -> list[str]:
    """What else happened in each cell: CPU of each party, the writer, backlog, spread of the runs."""
    lines = [
        ("| operation | conns | daemon CPU | client CPU | others' CPU | commits/s | writes per commit "
         "| ms per commit | run backlog drained in s | req/s of each run | p99 ms of each run |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]

    def num(value: float, fmt: str) -> str:
        return "-" if math.isnan(value) else format(value, fmt)

    for op, c, s in _cells(results, ops, conns):
        lines.append(
            f"| {op} | {c} | {100 * s['srv_util']:.0f}% | {100 * s['cli_util']:.0f}% | {100 * s['other_util']:.0f}% "
            f"| {num(s['commits_s'], '.0f')} | {num(s['batch'], '.1f')} | {num(s['commit_ms'], '.2f')} "
            f"| {s['drain_s']:.1f} | {' / '.join(f'{v:.0f}' for v in s['rps_all'])} "
            f"| {' / '.join(f'{v:.1f}' for v in s['p99_all'])} |")
    return lines


def goals(results: dict[tuple[str, int], list[dict[str, Any]]], conns: list[int]) -> list[dict[str, Any]]:
    """Each goal cell with its verdict; `short` < 1 says by how much it falls short."""
    verdicts = []
    rps_goal, p99_goal = CREATE_GOAL
    for op in ("create_schedule", "create_job"):
        runs = results.get((op, GOAL_CONNS))
        if not runs:
            continue
        s = summarise(runs)
        short = min(s["rps"] / rps_goal, p99_goal / s["p99"])
        verdicts.append({
            "op": op, "conns": GOAL_CONNS, "met": s["rps"] >= rps_goal and s["p99"] <= p99_goal, "short": short,
            "text": f"{op} at {GOAL_CONNS} conns: {s['rps']:.0f} req/s (goal >= {rps_goal:.0f}: "
                    f"{100 * s['rps'] / rps_goal:.0f}%), p99 {s['p99']:.1f} ms (goal <= {p99_goal:.0f} ms: "
                    f"{s['p99'] / p99_goal:.1f}x)"})
    for op in ("history_org", "history_job"):
        for c in conns:
            runs = results.get((op, c))
            if not runs:
                continue
            s = summarise(runs)
            verdicts.append({
                "op": op, "conns": c, "met": s["p99"] <= HISTORY_GOAL, "short": HISTORY_GOAL / s["p99"],
                "text": f"{op} at {c} conns: p99 {s['p99']:.2f} ms (goal <= {HISTORY_GOAL:.0f} ms: "
                        f"{s['p99'] / HISTORY_GOAL:.2f}x), {s['rps']:.0f} req/s"})
    return verdicts


def profile_lines(p: dict[str, Any]) -> list[str]:
    if "error" in p:
        return [f"profile of {p['op']} at {p['conns']} conns failed: {p['error']}"]
    total = p["samples"] or 1
    under = p.get("under_profile") or {}
    while_sampled = f"{under['rps']:.0f} req/s while sampled; " if "rps" in under else ""
    lines = [
        (f"### py-spy: {p['op']} at {p['conns']} conns ({p['seconds']} s at {p['rate']} Hz; "
         f"{while_sampled}raw stacks in {p['file']})"),
        "",
        (f"{total} non-idle samples. Share of the sampled time each thread was runnable (running, or "
         "ready and waiting for a CPU):"),
    ]
    for name, count, n in p["threads"]:
        busy = 100 * count / (p["possible_per_thread"] * n)
        lines.append(f"- {name}{f' x{n}' if n > 1 else ''}: {count} samples, {busy:.0f}% of the time runnable")
    lines += ["", "Where the samples go (first matching frame from the leaf up):", ""]
    for name, count in p["buckets"]:
        lines.append(f"- {100 * count / total:5.1f}%  {name}")
    lines += ["", "Inclusive share of schedd's functions and the main library entry points:", ""]
    shown = 0
    for name, count in p["inclusive"]:
        if any(s in name for s in ("(schedd/", "(aiosqlite/core.py", "(logging/__init__", "(prometheus_client/",
                                   "(json/", "web_protocol.py", "(uuid.py")) and not name.startswith(
                                       ("<module>", "main (", "_serve (", "_run_module", "_run_code")):
            lines.append(f"- {100 * count / total:5.1f}%  {name}")
            shown += 1
        if shown >= 25:
            break
    lines += ["", "Top self time (leaf frames):", ""]
    for name, count in p["self"][:15]:
        lines.append(f"- {100 * count / total:5.1f}%  {name}")
    return lines


# ============================================================================ main

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: small database, short cells, one repeat")
    p.add_argument("--rows", type=int, default=None,
                   help="runs bulk-inserted for the history org, and as many for the history job (1000000)")
    p.add_argument("--conns", default=None, help="concurrent connections per cell (1,16,64)")
    p.add_argument("--seconds", type=float, default=None, help="measured window of each cell (5)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured load before each window (1)")
    p.add_argument("--repeat", type=int, default=None, help="runs of each cell; medians are printed (3)")
    p.add_argument("--ops", default=",".join(op for op in OPS if op != "run_job"),
                   help=f"operations, from {', '.join(OPS)} (all but run_job by default)")
    p.add_argument("--client", choices=("aiohttp", "wrk"), default="aiohttp",
                   help="load client: aiohttp (Python, closed loop), or wrk (C, lighter on the shared CPUs)")
    p.add_argument("--schedules", default="",
                   help="N,N,...: run every cell again with N idle schedules held (bulk-inserted, in the heap)")
    p.add_argument("--list-size", type=int, default=20, help="schedules in the org the `list` cells read")
    p.add_argument("--pool-jobs", type=int, default=None, help="jobs `run_job` cycles through (1000)")
    p.add_argument("--run-orgs", type=int, default=None, help="orgs `run_now` cycles through (60000)")
    p.add_argument("--profile", default="auto",
                   help="OP:CONNS,... to run under py-spy; `auto` = every missed goal cell; `none`")
    p.add_argument("--profile-seconds", type=float, default=None, help="sampling time per profile (8)")
    p.add_argument("--analyse", metavar="FILE", default=None,
                   help="only print the breakdown of a raw py-spy file this script wrote, then exit")
    p.add_argument("--synchronous", choices=("OFF", "NORMAL", "FULL", "EXTRA"), default=None,
                   help="the daemon's [database] synchronous (default: the config default, FULL)")
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                   help="the daemon's store: the SQLite file, or a copy of it (`schedd db copy`) in a throwaway "
                        "durable PostgreSQL cluster")
    p.add_argument("--workdir", default=None, help="where the database goes (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (database, log, profiles)")
    p.add_argument("--json", default=None, help="also write every raw result to this file")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "rows": 20_000 if quick else 1_000_000, "conns": "1,16" if quick else "1,16,64",
        "seconds": 1.0 if quick else 5.0, "warmup": 0.3 if quick else 1.0, "repeat": 1 if quick else 3,
        "pool_jobs": 200 if quick else 1000, "run_orgs": 5000 if quick else 60_000,
        "profile_seconds": 3.0 if quick else 8.0,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.conns_list = [int(c) for c in str(args.conns).split(",")]
    args.schedules_list = sorted(int(n) for n in args.schedules.split(",") if n.strip())
    args.ops_list = [o.strip() for o in args.ops.split(",") if o.strip()]
    for op in args.ops_list:
        if op not in OPS:
            p.error(f"unknown operation {op!r}")
    if args.store == "postgres" and args.schedules_list:
        p.error("--schedules grows the SQLite file in place: not with --store postgres")
    if args.client == "wrk" and shutil.which("wrk") is None:
        p.error("--client wrk: wrk is not installed (apt-get install -y wrk)")
    return args


def run_cells(bench: Bench, args: argparse.Namespace, results: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    """Every cell `--repeat` times, repeats outermost, into `results`."""
    for rep in range(args.repeat):
        for op in args.ops_list:
            for c in args.conns_list:
                r = bench.cell(op, c)
                results[(op, c)].append(r)
                bad = {k: v for k, v in r["statuses"].items() if not k.startswith("2")}
                log(f"run {rep + 1}/{args.repeat} {op:<15} conns={c:<3} {r['rps']:7.0f} req/s  "
                    f"p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  daemon CPU "
                    f"{100 * r['srv_cpu'] / r['seconds']:3.0f}%  client CPU "
                    f"{100 * r['cli_cpu'] / r['seconds']:3.0f}%  "
                    f"others {max(0.0, 100 * r['other_cpu'] / r['seconds']):3.0f}%"
                    f"{'  non-2xx ' + str(bad) if bad else ''}")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.analyse:
        found = re.search(r"schedd-api-profile-(\w+)-(\d+)\.txt$", args.analyse)
        op, conns = (found.group(1), int(found.group(2))) if found else ("?", 0)
        seconds = int(args.profile_seconds)
        print("\n".join(profile_lines({
            "op": op, "conns": conns, "file": args.analyse, "rate": 100, "seconds": seconds,
            **analyse(Path(args.analyse).read_text(), 100 * seconds)})))
        return
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="schedd-api-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, work)
    t0 = time.perf_counter()
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    profiles: list[dict[str, Any]] = []
    by_size: dict[int, dict[tuple[str, int], list[dict[str, Any]]]] = {}
    held: list[dict[str, Any]] = []
    try:
        facts = bench.setup()
        for size in args.schedules_list or [0]:
            if size:
                held.append(bench.hold(size))
            results = by_size[size] = defaultdict(list)
            run_cells(bench, args, results)
        verdicts = goals(results, args.conns_list)
        if args.profile == "auto":
            todo = []
            for v in sorted((v for v in verdicts if not v["met"]), key=lambda v: v["short"]):
                if all(v["op"] != t[0] for t in todo):  # one profile per operation: its worst cell
                    todo.append((v["op"], v["conns"]))
        elif args.profile == "none":
            todo = []
        else:
            todo = [(s.split(":")[0], int(s.split(":")[1])) for s in args.profile.split(",")]
        for op, c in todo:
            log(f"profiling {op} at {c} conns with py-spy for {args.profile_seconds:.0f} s")
            profiles.append(bench.profile(op, c, args.profile_seconds))
    finally:
        bench.close()
    elapsed = time.perf_counter() - t0

    out = [
        (f"## schedd HTTP API: {len(args.ops_list)} operations x conns {args.conns}, "
         f"{args.seconds:g} s cells after {args.warmup:g} s warm-up, median of {args.repeat}"),
        "",
        (f"Database ({facts['store']}): {facts['runs']:,} runs ({facts['org_runs']:,} in org {HIST_ORG}, "
         f"{facts['job_runs']:,} of the history job), {facts['orgs']:,} orgs, {facts['db_mb']:.0f} MiB. Load client: "
         f"{args.client}; {os.cpu_count()} CPUs shared by daemon, client and stub. Whole run {elapsed / 60:.1f} min."),
        "",
        *sized_tables(by_size, held, args),
        "Context (medians): CPU is the share of one CPU; others' = every other process on the machine.",
        "",
        *context_table(results, args.ops_list, args.conns_list),
        "",
        "Goals:",
        "",
    ]
    for v in goals(results, args.conns_list):
        out.append(f"- {'MET   ' if v['met'] else 'MISSED'} {v['text']}")
    for p in profiles:
        out += ["", *profile_lines(p)]
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": {k: v for k, v in vars(args).items()}, "facts": facts,
            "held": held, "profiles": profiles,
            "results": {f"{op}@{c}@{size}": runs for size, found in by_size.items() for (op, c), runs in found.items()},
        }, indent=1, default=str))
    if args.keep or args.workdir:
        log(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-stub":
        stub_main()
    elif len(sys.argv) > 2 and sys.argv[1] == "--child-client":
        client_main(sys.argv[2])
    else:
        main(sys.argv[1:])
