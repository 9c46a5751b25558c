"""Engine benchmark: schedd beside APScheduler 3.11 (the figures of issue "Core 2").

    .venv/bin/python benchmarks/engine_bench.py                     # everything, medians of 3
    .venv/bin/python benchmarks/engine_bench.py --quick             # smoke run, about a minute
    .venv/bin/python benchmarks/engine_bench.py --only ready --sizes 10000,100000,1000000
    .venv/bin/python benchmarks/engine_bench.py --only delay,durable --held 10000,100000,1000000

`--held N[,N...]` adds a "growth" table: schedd's delay and durable runs again, once per N,
with the database and the engine heap also holding N idle schedules (daily crons, the
earliest an hour ahead, as in the "ready" databases). APScheduler is not run again.

Every measurement runs in a fresh child process of this script (`--child SPEC`), so the
RSS and the caches of one configuration never leak into the next; the child prints one
`RESULT {json}` line. The parent builds the databases (set-up, not timed), starts the
HTTP stub server in its own process, interleaves schedd and APScheduler runs so that
noise on a shared machine hits both alike, and prints the median of each figure.
See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import math
import os
import pickle
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

UTC = timezone.utc
SLOT_LEAD = 60  # minutes: the earliest daily fire is an hour ahead, so nothing fires during a run
SLOTS = 1440 - SLOT_LEAD  # one daily fire time per minute, over the rest of the next 24 hours
WARMUP = 2  # seconds of fires left out of the start-delay window
HELD_PER_SECOND = 200_000  # idle schedules loaded per second at worst: the delay run's first fire waits for them
SYNCHRONOUS_ENV = "SCHEDD_BENCH_SYNCHRONOUS"  # set from --synchronous for the children
IDLE_UID_BASE = 1 << 40  # uids of the idle schedules of --held start here, clear of the firing ones
SERVICE = "stub"
OPERATION = "ping"
SERVICE_SPEC = json.dumps(
    {"jobServiceInfo": {"operationName": OPERATION, "postData": "{}", "serviceName": SERVICE}},
    separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------- process facts

def proc_status_mb(key: str) -> float:
    """A `VmRSS`/`VmHWM` line of /proc/self/status, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def memory() -> dict[str, float]:
    """RSS now and its high-water mark, in MiB."""
    return {"rss_mb": proc_status_mb("VmRSS"), "peak_mb": proc_status_mb("VmHWM")}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of an unsorted list."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# --------------------------------------------------------------------------- fire times

def slot_plan(n: int, at: float) -> tuple[list[tuple[int, int]], list[float]]:
    """Daily (hour, minute) slots for n schedules and each slot's next fire after `at`.

    The slots are the minutes from an hour after `at` to a day after it, so each slot's
    next fire is its first one (no slot comes round twice within the day). Schedule i
    gets slot i * SLOTS // n, so next fire times never decrease with i: APScheduler's
    MemoryJobStore keeps a sorted list, and adding in fire order is its cheapest case (an
    append, not an O(n) insert).
    """
    start = datetime.fromtimestamp(at + SLOT_LEAD * 60, UTC).replace(second=0, microsecond=0)
    start = start + timedelta(minutes=1)
    base = start.timestamp()
    first = start.hour * 60 + start.minute
    slots, fires = [], []
    for k in range(SLOTS):
        slots.append(divmod((first + k) % 1440, 60))
        fires.append(base + 60.0 * k)
    return slots, fires


def slot_of(i: int, n: int) -> int:
    return i * SLOTS // n


# --------------------------------------------------------------------------- schedd set-up

def build_schedd_db(path: Path | str, rows: Iterator[tuple[Any, ...]], base: str | None = None) -> None:
    """A schedd database from the packaged migrations, or a copy of `base`, plus one executemany (set-up)."""
    from schedd.store import db as store_db
    from schedd.store import schedules as schedule_store

    if is_pg(path):
        run_sync(lambda: build_pg_db(str(path), rows, base))
        return
    path = Path(path)
    if path.exists():
        path.unlink()
    if base is not None:
        shutil.copyfile(base, path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    if base is None:
        conn.execute(store_db.SQL_CREATE_MIGRATIONS)
        for m in store_db.migrations():
            conn.executescript(m.sql)
            conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                         (m.version, m.name, time.time()))
    conn.execute("BEGIN")
    conn.execute("INSERT INTO orgs (id, created_at) VALUES ('default', 0) ON CONFLICT DO NOTHING")
    conn.executemany(schedule_store.SQL_INSERT, rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def service_rows(n: int, at: float, *, cron_of: Callable[[int], str], next_of: Callable[[int], float],
                 prefix: str = "job", retention_days: int = 30, uid_base: int = 0) -> Iterator[tuple[Any, ...]]:
    """Rows of `schedules` (in schedule_store.COLUMNS order) for n service jobs."""
    from schedd.cron import parse

    for i in range(n):
        cron = cron_of(i)
        yield (
            f"00000000-0000-4000-8000-{uid_base + i:012x}", "service", "default", None, None,
            f"{prefix}-{i:07d}", None, cron, parse(cron).normalized, "UTC", None, SERVICE_SPEC, 1,
            next_of(i), "fire_once", "forbid", None, 0, "MINIMAL", retention_days, "bench", at,
            "bench", at,
        )


def daily_service_rows(n: int, at: float, *, prefix: str = "job", uid_base: int = 0) -> Iterator[tuple[Any, ...]]:
    from schedd.cron import load_zone, parse

    slots, fires = slot_plan(n, at)
    crons = ["0 {1} {0} * * ?".format(*slot) for slot in slots]
    zone = load_zone("UTC")
    if any(parse(cron).next_after(at, zone) != fire for cron, fire in zip(crons, fires, strict=True)):
        raise RuntimeError("schedd and the slot plan disagree on a next fire time")
    return service_rows(n, at, cron_of=lambda i: crons[slot_of(i, n)], next_of=lambda i: fires[slot_of(i, n)],
                        prefix=prefix, uid_base=uid_base)


def database_section() -> dict[str, Any]:
    """The [database] table of every schedd child: --synchronous reaches them through the environment."""
    mode = os.environ.get(SYNCHRONOUS_ENV)
    return {"synchronous": mode} if mode else {}


def bench_config(**scheduler: Any) -> Any:
    from schedd import config as config_mod

    return config_mod.from_dict({"scheduler": scheduler, "database": database_section()})


# --------------------------------------------------------------------------- the store of a case

CLUSTERS: list[PgCluster] = []  # --store postgres: the run's cluster, for the server's CPU and WAL flushes
PG_ENV = "SCHEDD_BENCH_PG"  # --store postgres: the admin URL of the benchmark's throwaway cluster, for the children
PG_TEMPLATE = "bench_template"  # a database migrated once per run; every case's database is made from it
_cases = iter(range(1, 1 << 30))


def is_pg(target: Path | str) -> bool:
    return str(target).startswith("postgresql://")


def case_db(workdir: str | Path, name: str) -> str:
    """Where one case's schedd database goes: a file in the work directory (SQLite), or under
    --store postgres a database of its own on the benchmark's cluster (made empty by `build_schedd_db`)."""
    admin = os.environ.get(PG_ENV)
    if not admin:
        return str(Path(workdir) / f"{name}.db")
    database = f"{name}_{os.getpid()}_{next(_cases)}".replace("-", "_").lower()
    return admin.replace("/postgres?", f"/{database}?", 1)


def pg_name(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]


async def pg_admin(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(os.environ[PG_ENV])
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def build_pg_db(url: str, rows: Iterator[tuple[Any, ...]], base: str | None) -> None:
    """The PostgreSQL twin of `build_schedd_db`: a database made from the migrated template (or
    from `base`, another case database), then the rows by COPY (set-up, not timed)."""
    import asyncpg

    from schedd.store import schedules as schedule_store

    name = pg_name(url)
    await pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                   f"CREATE DATABASE {name} TEMPLATE {pg_name(base) if base else PG_TEMPLATE}")
    columns = [c.strip() for c in schedule_store.SQL_INSERT.split("(", 1)[1].split(")", 1)[0].split(",")]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO orgs (id, created_at) VALUES ('default', 0) ON CONFLICT DO NOTHING")
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == 50_000:
                await conn.copy_records_to_table("schedules", records=batch, columns=columns)
                batch = []
        if batch:
            await conn.copy_records_to_table("schedules", records=batch, columns=columns)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def case_rows(target: Path | str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of a read of a case's database after its run (`?` placeholders, either store)."""
    if not is_pg(target):
        conn = sqlite3.connect(target)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    async def fetch() -> list[tuple[Any, ...]]:
        import asyncpg

        numbered = sql.split("?")
        text = numbered[0] + "".join(f"${i}{part}" for i, part in enumerate(numbered[1:], start=1))
        conn = await asyncpg.connect(str(target))
        try:
            return [tuple(r) for r in await conn.fetch(text, *args)]
        finally:
            await conn.close()

    result: list[tuple[Any, ...]] = run_sync(fetch)
    return result


def run_sync(make: Callable[[], Any]) -> Any:
    """asyncio.run of `make()`; in a thread of its own when the caller is inside a running loop
    (the children's set-up and read-back, outside their timed parts)."""
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def drop_case_db(target: Path | str) -> None:
    """Remove a case's database: the file and its WAL, or the PostgreSQL database."""
    if is_pg(target):
        statement = f"DROP DATABASE IF EXISTS {pg_name(str(target))} WITH (FORCE)"
        run_sync(lambda: pg_admin(statement))
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)


class PgCluster:
    """--store postgres: a throwaway durable cluster (fsync and full_page_writes on) for the whole run."""

    def __init__(self) -> None:
        from tests.support.postgres import Cluster

        cluster = Cluster.find(durable=True)
        if cluster is None:
            raise SystemExit("--store postgres: no PostgreSQL server installed (/usr/lib/postgresql/*/bin)")
        self.cluster = cluster
        cluster.start()
        os.environ[PG_ENV] = cluster.url()
        asyncio.run(self._template())
        CLUSTERS.append(self)

    def usage(self) -> dict[str, float]:
        """CPU seconds of the server's processes so far (the postmaster, its live children, and through
        the postmaster's children's times those that ended), and its WAL flushes (pg_stat_wal)."""
        tick = os.sysconf("SC_CLK_TCK")
        postmaster = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == postmaster or ppid == postmaster:
                total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        wal = run_sync(lambda: self._wal())
        return {"cpu_s": total / tick, "wal_syncs": float(wal)}

    async def _wal(self) -> int:
        import asyncpg

        conn = await asyncpg.connect(self.cluster.url())
        try:
            return int(await conn.fetchval("SELECT wal_sync FROM pg_stat_wal"))
        finally:
            await conn.close()

    async def _template(self) -> None:
        import asyncpg

        from schedd.store.postgres.db import PgDatabase

        await pg_admin(f"CREATE DATABASE {PG_TEMPLATE}")
        made = PgDatabase(self.cluster.url(PG_TEMPLATE), pool_size=1)
        await made.open()
        await made.close()
        conn = await asyncpg.connect(self.cluster.url())
        try:
            self.settings = {name: await conn.fetchval(f"SHOW {name}")
                             for name in ("server_version", "fsync", "full_page_writes", "synchronous_commit",
                                          "wal_sync_method", "shared_buffers")}
        finally:
            await conn.close()
        if (self.settings["fsync"], self.settings["full_page_writes"], self.settings["synchronous_commit"]) != (
                "on", "on", "on"):
            raise SystemExit(f"--store postgres: the cluster is not durable: {self.settings}")

    def close(self) -> None:
        os.environ.pop(PG_ENV, None)
        self.cluster.stop()


# --------------------------------------------------------------------------- APScheduler set-up

def aps_noop() -> None:
    """The job APScheduler runs where only scheduling is measured (a textual ref survives pickling)."""


async def aps_async_noop() -> None:
    """The coroutine job of the throughput run (AsyncIOExecutor runs it on the loop)."""


def aps_jobstore(path: Path) -> Any:
    """SQLAlchemyJobStore on the SQLite file, in WAL with synchronous=NORMAL like schedd."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from sqlalchemy import create_engine, event

    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return SQLAlchemyJobStore(engine=engine)


def build_aps_db(path: Path, n: int, at: float) -> None:
    """An APScheduler job table with n daily cron jobs, filled with one executemany (set-up).

    Pickling a million jobs one by one would take minutes, so one job per slot is pickled
    through APScheduler itself and copied with its fixed-length id swapped.
    """
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    if path.exists():
        path.unlink()
    store = aps_jobstore(path)
    store.jobs_t.create(store.engine, checkfirst=True)
    store.engine.dispose()
    slots, fires = slot_plan(n, at)
    templates = []
    sched = BackgroundScheduler(timezone=UTC, jobstores={"default": MemoryJobStore()})
    sched.start(paused=True)
    for k, (hour, minute) in enumerate(slots):
        placeholder = f"tpl-{k:07d}"
        job = sched.add_job(aps_noop, CronTrigger(hour=hour, minute=minute, second=0, timezone=UTC),
                            id=placeholder, misfire_grace_time=60, coalesce=True)
        state = pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL)
        if state.count(placeholder.encode()) != 1:
            raise RuntimeError("job id does not appear exactly once in the pickled job state")
        templates.append((placeholder.encode(), state, job.next_run_time.timestamp()))
    sched.shutdown(wait=False)
    if any(next_run != fire for (_, _, next_run), fire in zip(templates, fires, strict=True)):
        raise RuntimeError("APScheduler and the slot plan disagree on a next fire time")

    def rows() -> Iterator[tuple[str, float, bytes]]:
        for i in range(n):
            placeholder, state, next_run = templates[slot_of(i, n)]
            job_id = f"job-{i:07d}"
            yield job_id, next_run, state.replace(placeholder, job_id.encode())

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES (?, ?, ?)", rows())
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


class StartProbe:
    """Sets `done` when an APScheduler's first `_process_jobs` (its first look for due jobs) returns."""

    def __init__(self, sched: Any) -> None:
        self.done = asyncio.Event()
        self._inner = sched._process_jobs
        sched._process_jobs = self

    def __call__(self) -> Any:
        result = self._inner()
        self.done.set()
        return result


class NoopExecutor:
    """An in-process executor that succeeds at once (schedd's own costs, without any work)."""

    def __init__(self) -> None:
        from schedd.executors import Outcome

        self.outcome = Outcome(ok=True)

    async def run(self, ctx: Any) -> Any:
        return self.outcome


# --------------------------------------------------------------------------- child: ready

async def ready_schedd(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds from `build_core(...)` to a loaded heap and a running loop, on a populated file."""
    from schedd.compose import build_core

    base = proc_status_mb("VmRSS")
    phases: dict[str, float] = {}

    async def timed_due_index(store: Any) -> AsyncIterator[list[tuple[int, float]]]:
        """The due index as schedd reads it (in chunks), timing only the reads."""
        chunks = real_due_index(store).__aiter__()
        phases["read_s"] = 0.0
        while True:
            started = time.perf_counter()
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            finally:
                phases["read_s"] += time.perf_counter() - started
            yield chunk

    started = time.perf_counter()
    core = build_core(bench_config(), db_path=spec["db"])
    schedule_store = type(core.store.schedules)  # SQLite's or PostgreSQL's
    real_due_index = schedule_store.due_index
    schedule_store.due_index = timed_due_index  # type: ignore[method-assign]
    await core.start(run_loop=True)
    while not core.engine.loaded:
        await asyncio.sleep(0)
    seconds = time.perf_counter() - started
    mem = memory()
    timers = len(core.engine)
    await core.stop()
    if timers != spec["n"] + 1:  # every schedule plus the retention sweep
        raise RuntimeError(f"heap holds {timers} timers, expected {spec['n'] + 1}")
    return {"seconds": seconds, **mem, "base_mb": base, **phases}


async def ready_aps_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """A MemoryJobStore has no restart: the app adds its N jobs again, then starts."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    n = spec["n"]
    slots, _ = slot_plan(n, time.time())
    base = proc_status_mb("VmRSS")
    started = time.perf_counter()
    sched = AsyncIOScheduler(timezone=UTC)
    probe = StartProbe(sched)
    for i in range(n):
        hour, minute = slots[slot_of(i, n)]
        sched.add_job(aps_noop, CronTrigger(hour=hour, minute=minute, second=0, timezone=UTC),
                      id=f"job-{i:07d}", misfire_grace_time=60, coalesce=True)
    added = time.perf_counter() - started
    sched.start()
    await probe.done.wait()
    seconds = time.perf_counter() - started
    mem = memory()
    jobs = len(sched._jobstores["default"]._jobs)
    sched.shutdown(wait=False)
    if jobs != n:
        raise RuntimeError(f"store holds {jobs} jobs, expected {n}")
    return {"seconds": seconds, "add_s": added, **mem, "base_mb": base}


async def ready_aps_sqlalchemy(spec: dict[str, Any]) -> dict[str, Any]:
    """A fresh AsyncIOScheduler on a populated SQLAlchemyJobStore, until its first look for due jobs."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    base = proc_status_mb("VmRSS")
    started = time.perf_counter()
    sched = AsyncIOScheduler(timezone=UTC, jobstores={"default": aps_jobstore(Path(spec["db"]))})
    probe = StartProbe(sched)
    sched.start()
    await probe.done.wait()
    seconds = time.perf_counter() - started
    mem = memory()
    next_run = sched._jobstores["default"].get_next_run_time()
    sched.shutdown(wait=False)
    if next_run is None:
        raise RuntimeError("the job store is empty")
    return {"seconds": seconds, **mem, "base_mb": base}


# --------------------------------------------------------------------------- child: start delay

async def delay_schedd(spec: dict[str, Any]) -> dict[str, Any]:
    """A real Core on the wall clock: N service jobs every second, calling the stub server.

    With `held`, the database is a copy of `base` (that many idle schedules) plus the N.
    """
    from schedd import config as config_mod
    from schedd.compose import build_core

    n, seconds, held = spec["jobs"], spec["seconds"], spec.get("held", 0)
    db = case_db(spec["workdir"], f"delay-{os.getpid()}")
    first = math.floor(time.time()) + 2 + math.ceil(held / HELD_PER_SECOND)
    build_schedd_db(db, service_rows(n, time.time(), cron_of=lambda i: "* * * * * ?",
                                     next_of=lambda i: float(first), retention_days=0), spec.get("base"))
    config = config_mod.from_dict({
        "database": database_section(),
        "scheduler": {"max_concurrent_runs": spec["max_concurrent"],
                      **({} if spec.get("fire_lead") is None else {"fire_lead": spec["fire_lead"]})},
        # One org holds every job: its share of the run slots is all of them (the default is half).
        "quotas": {"max_concurrent_runs": spec["max_concurrent"]},
        "services": {SERVICE: {"base_url": spec["url"], "timeout": 10}},
    })
    core = build_core(config, db_path=str(db))
    await core.start(run_loop=True)
    if len(core.engine) != held + n + 1:  # every schedule plus the retention sweep
        raise RuntimeError(f"heap holds {len(core.engine)} timers, expected {held + n + 1}")
    if time.time() > first + WARMUP:
        raise RuntimeError("the engine was loaded after the warm-up fires: the window would include the load")
    entered: list[tuple[int, float]] = []
    real_get = core.executors.get
    noop = NoopExecutor()

    class Entry:
        """Notes when the executor is entered: the run's actual start."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def run(self, ctx: Any) -> Any:
            entered.append((ctx.run_id, time.time()))
            return await self.inner.run(ctx)

    if spec["executor"] == "noop":
        core.executors.get = lambda ctx: Entry(noop)  # type: ignore[method-assign]
    else:
        core.executors.get = lambda ctx: Entry(real_get(ctx))  # type: ignore[method-assign]
    window = (first + WARMUP, first + WARMUP + seconds)
    await asyncio.sleep(max(0.0, window[1] + 1.5 - time.time()))
    await core.stop()

    rows = case_rows(db, "SELECT id, due_at, started_at, state, fires FROM runs WHERE due_at >= ? AND due_at < ?",
                     *window)
    drop_case_db(db)
    entry_of = dict(entered)
    ran = [r for r in rows if r[3] in ("done", "failed")]
    actual = [(r[1], entry_of[r[0]]) for r in ran if r[0] in entry_of]
    recorded = [r[2] - r[1] for r in ran if r[2] is not None]
    expected = n * seconds
    recorded_fires = sum(r[4] for r in rows)
    return {
        **delay_stats(actual),
        "recorded_p50_ms": percentile(recorded, 50) * 1000,
        "recorded_p99_ms": percentile(recorded, 99) * 1000,
        "expected": expected,
        "ran": len(ran),
        "failed": sum(1 for r in ran if r[3] == "failed"),
        "skipped": sum(r[4] for r in rows if r[3] == "skipped"),
        "missed": expected - len(ran),
        "unrecorded": expected - recorded_fires,
        **memory(),
    }


def delay_stats(starts: list[tuple[float, float]]) -> dict[str, float]:
    """Percentiles of (actual start - due) over (due, actual start) pairs, in ms.

    `first_ms` is the median over due seconds of the earliest start of that second: the
    latency of the scheduler's own path before the first run of a batch can start.
    """
    delays = [at - due for due, at in starts]
    earliest: dict[float, float] = {}
    for due, at in starts:
        earliest[due] = min(earliest.get(due, math.inf), at - due)
    return {
        "p50_ms": percentile(delays, 50) * 1000,
        "p99_ms": percentile(delays, 99) * 1000,
        "max_ms": max(delays) * 1000 if delays else math.nan,
        "first_ms": statistics.median(earliest.values()) * 1000 if earliest else math.nan,
    }


SCHEDULED_AT: contextvars.ContextVar[float] = contextvars.ContextVar("scheduled_at")
APS_ENTRIES: list[tuple[float, float]] = []
APS_SESSION: Any = None


async def aps_call_stub(url: str | None) -> None:
    """The APScheduler job of the delay run: note the start, then the same POST schedd makes."""
    APS_ENTRIES.append((SCHEDULED_AT.get(), time.time()))
    if url is None:  # --executor noop
        return
    async with APS_SESSION.post(url, data=b"{}", headers={"Content-Type": "application/json"},
                                allow_redirects=False) as resp:
        await resp.read()


def timed_asyncio_executor() -> Any:
    """AsyncIOExecutor that hands each job its scheduled time (a task copies the context)."""
    from apscheduler.executors.asyncio import AsyncIOExecutor

    class TimedAsyncIOExecutor(AsyncIOExecutor):
        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
            token = SCHEDULED_AT.set(run_times[-1].timestamp())
            try:
                super()._do_submit_job(job, run_times)
            finally:
                SCHEDULED_AT.reset(token)

    return TimedAsyncIOExecutor()


async def delay_aps(spec: dict[str, Any]) -> dict[str, Any]:
    """AsyncIOScheduler, N jobs CronTrigger(second='*') POSTing to the stub server."""
    global APS_SESSION
    import aiohttp
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    n, seconds = spec["jobs"], spec["seconds"]
    url = spec["url"].rstrip("/") + "/" + OPERATION
    APS_SESSION = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100), cookie_jar=aiohttp.DummyCookieJar())
    dropped: list[float] = []

    def on_drop(event: Any) -> None:
        times = getattr(event, "scheduled_run_times", None) or [event.scheduled_run_time]
        dropped.extend(t.timestamp() for t in times)

    sched = AsyncIOScheduler(
        timezone=UTC, executors={"default": timed_asyncio_executor()},
        job_defaults={"misfire_grace_time": 60, "coalesce": True, "max_instances": 1})
    sched.add_listener(on_drop, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    for i in range(n):
        sched.add_job(aps_call_stub, CronTrigger(second="*", timezone=UTC),
                      args=[None if spec["executor"] == "noop" else url], id=f"job-{i}")
    sched.start()
    first = math.floor(time.time()) + 1
    window = (first + WARMUP, first + WARMUP + seconds)
    await asyncio.sleep(max(0.0, window[1] + 1.5 - time.time()))
    sched.shutdown(wait=False)
    await asyncio.sleep(0.2)
    await APS_SESSION.close()
    ran = [(due, at) for due, at in APS_ENTRIES if window[0] <= due < window[1]]
    expected = n * seconds
    return {
        **delay_stats(ran),
        "expected": expected,
        "ran": len(ran),
        "skipped": sum(1 for t in dropped if window[0] <= t < window[1]),
        "missed": expected - len(ran),
        **memory(),
    }


async def delay_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """No scheduler: at each whole second, N tasks POST to the stub server (asyncio's own floor)."""
    import aiohttp

    n, seconds = spec["jobs"], spec["seconds"]
    url = spec["url"].rstrip("/") + "/" + OPERATION
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100), cookie_jar=aiohttp.DummyCookieJar())
    starts: list[tuple[float, float]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def call(due: float) -> None:
        starts.append((due, time.time()))
        if spec["executor"] == "noop":
            return
        async with session.post(url, data=b"{}", headers={"Content-Type": "application/json"},
                                allow_redirects=False) as resp:
            await resp.read()

    first = math.floor(time.time()) + 1
    window = (first + WARMUP, first + WARMUP + seconds)
    for due in range(first, int(window[1])):
        await asyncio.sleep(max(0.0, due - time.time()))
        for _ in range(n):
            task = asyncio.create_task(call(float(due)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
    ran = [(due, at) for due, at in starts if window[0] <= due < window[1]]
    return {**delay_stats(ran), "expected": n * seconds, "ran": len(ran), "skipped": 0,
            "missed": n * seconds - len(ran), **memory()}


# --------------------------------------------------------------------------- child: durable runs

async def durable_schedd(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs recorded end to end: run_now (committed inprogress), no-op executor, outcome committed.

    With `held`, the database is a copy of `base` (that many idle schedules) plus the clients'.
    """
    from schedd import metrics
    from schedd.compose import build_core

    clients, seconds, held = spec["clients"], spec["seconds"], spec.get("held", 0)
    db = case_db(spec["workdir"], f"durable-{os.getpid()}")
    build_schedd_db(db, daily_service_rows(clients, time.time()), spec.get("base"))
    core = build_core(bench_config(max_concurrent_runs=clients), db_path=str(db))
    await core.start(run_loop=True)
    ids = list(range(held + 1, held + clients + 1))  # the held schedules come first in the file
    schedules = list((await core.store.schedules.get_many(ids)).values())
    if len(schedules) != clients or len(core.engine) != held + clients + 1:
        raise RuntimeError(f"{len(schedules)} client schedules and {len(core.engine)} timers, "
                           f"expected {clients} and {held + clients + 1}")

    noop = NoopExecutor()
    core.executors.get = lambda ctx: noop  # type: ignore[method-assign]
    waiting: dict[str, asyncio.Future[str]] = {}

    async def finished(active: Any, state: str) -> None:
        fut = waiting.pop(active.key, None)
        if fut is not None:
            fut.set_result(state)

    core.runner.after_run.append(finished)
    loop = asyncio.get_running_loop()
    completed = 0
    deadline = time.perf_counter() + seconds

    async def client(schedule: Any) -> None:
        nonlocal completed
        while time.perf_counter() < deadline:
            fut = waiting[schedule.overlap_key] = loop.create_future()
            await core.runner.run_now("service", schedule.overlap_key, "Manual", at=core.clock.now(),
                                      schedule=schedule)
            if await fut == "done":
                completed += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(s) for s in schedules))
    elapsed = time.perf_counter() - started
    batches = metrics.REGISTRY.get_sample_value("schedd_writer_batch_size_count") or 0
    batch_sum = metrics.REGISTRY.get_sample_value("schedd_writer_batch_size_sum") or 0
    await core.stop()
    stored = case_rows(db, "SELECT count(*) FROM runs WHERE state = 'done'")[0][0]
    drop_case_db(db)
    if stored != completed:
        raise RuntimeError(f"{completed} runs completed but {stored} are recorded done")
    return {"per_s": completed / elapsed, "runs": completed, "commits_per_s": batches / elapsed,
            "mean_batch": batch_sum / batches if batches else 0.0, **memory()}


async def durable_aps(spec: dict[str, Any]) -> dict[str, Any]:
    """Jobs executed per second: N one-shot jobs already due, from resume() to the last one done."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    n = spec["jobs"]
    jobstores = {}
    if spec["store"] == "sqlalchemy":
        db = Path(spec["workdir"]) / f"aps-durable-{os.getpid()}.db"
        db.unlink(missing_ok=True)
        jobstores["default"] = aps_jobstore(db)
    sched = AsyncIOScheduler(timezone=UTC, jobstores=jobstores,
                             job_defaults={"misfire_grace_time": 3600, "max_instances": 1})
    done = asyncio.Event()
    count = 0

    def on_done(event: Any) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    sched.add_listener(on_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    sched.start(paused=True)
    now = datetime.now(UTC)
    for i in range(n):
        sched.add_job(aps_async_noop, "date", run_date=now, id=f"run-{i:07d}")
    started = time.perf_counter()
    sched.resume()
    await done.wait()
    elapsed = time.perf_counter() - started
    sched.shutdown(wait=False)
    await asyncio.sleep(0)
    if spec["store"] == "sqlalchemy":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    return {"per_s": n / elapsed, "runs": n, **memory()}


# --------------------------------------------------------------------------- child: add/delete

async def adddelete_schedd(spec: dict[str, Any]) -> dict[str, Any]:
    """The API's calls: validate cron + insert + arm, then delete + disarm, one request at a time."""
    from schedd.compose import build_core
    from schedd.cron import load_zone, parse
    from schedd.store import schedules as schedule_store

    ops = spec["ops"]
    core = build_core(bench_config(), db_path=spec["db"])
    await core.start(run_loop=True)
    zone = load_zone("UTC")
    slots, _ = slot_plan(ops, time.time())
    tag = f"{os.getpid()}-{time.time_ns()}"
    added = []
    started = time.perf_counter()
    for i in range(ops):
        at = core.clock.now()
        expr = parse("0 {1} {0} * * ?".format(*slots[slot_of(i, ops)]))
        schedule = await core.store.schedules.insert(schedule_store.NewSchedule(
            uid=f"add-{tag}-{i}", family="service", org_id="default", name=f"add-{tag}-{i}",
            cron=expr.expr, cron_normalized=expr.normalized, timezone="UTC",
            spec=json.loads(SERVICE_SPEC), next_fire_at=expr.next_after(at, zone),
            created_by="bench", created_at=at))
        core.runner.arm(schedule)
        added.append(schedule.id)
    add_s = time.perf_counter() - started
    started = time.perf_counter()
    for schedule_id in added:
        await core.store.schedules.delete(schedule_id)
        core.runner.disarm(schedule_id)
    delete_s = time.perf_counter() - started
    timers = len(core.engine)
    await core.stop()
    if timers != spec["n"] + 1:
        raise RuntimeError(f"heap holds {timers} timers after add/delete, expected {spec['n'] + 1}")
    return {"add_ms": add_s / ops * 1000, "delete_ms": delete_s / ops * 1000,
            "both_ms": (add_s + delete_s) / ops * 1000}


async def adddelete_aps(spec: dict[str, Any]) -> dict[str, Any]:
    """add_job / remove_job on a running AsyncIOScheduler with a populated SQLAlchemyJobStore."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    ops = spec["ops"]
    sched = AsyncIOScheduler(timezone=UTC, jobstores={"default": aps_jobstore(Path(spec["db"]))})
    probe = StartProbe(sched)
    sched.start()
    await probe.done.wait()
    slots, _ = slot_plan(ops, time.time())
    tag = time.time_ns() % 10**9
    ids = [f"add-{tag}-{i}" for i in range(ops)]
    started = time.perf_counter()
    for i, job_id in enumerate(ids):
        hour, minute = slots[slot_of(i, ops)]
        sched.add_job(aps_noop, CronTrigger(hour=hour, minute=minute, second=0, timezone=UTC),
                      id=job_id, misfire_grace_time=60, coalesce=True)
        await asyncio.sleep(0)  # the wake-up add_job asks for runs here, as between API requests
    add_s = time.perf_counter() - started
    started = time.perf_counter()
    for job_id in ids:
        sched.remove_job(job_id)
        await asyncio.sleep(0)
    delete_s = time.perf_counter() - started
    sched.shutdown(wait=False)
    await asyncio.sleep(0)
    return {"add_ms": add_s / ops * 1000, "delete_ms": delete_s / ops * 1000,
            "both_ms": (add_s + delete_s) / ops * 1000}


CHILDREN: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ready_schedd": ready_schedd,
    "ready_aps_memory": ready_aps_memory,
    "ready_aps_sqlalchemy": ready_aps_sqlalchemy,
    "delay_schedd": delay_schedd,
    "delay_aps": delay_aps,
    "delay_floor": delay_floor,
    "durable_schedd": durable_schedd,
    "durable_aps": durable_aps,
    "adddelete_schedd": adddelete_schedd,
    "adddelete_aps": adddelete_aps,
}


def child_main(spec_text: str) -> None:
    spec = json.loads(spec_text)
    result = asyncio.run(CHILDREN[spec["kind"]](spec))
    result["load1"] = os.getloadavg()[0]  # the machine is shared: say how busy it was
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- stub server

def stub_main() -> None:
    """The HTTP service both schedulers call: 200 with a small JSON body, no access log."""
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text='{"ok":true}', content_type="application/json")

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"PORT {port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


class Stub:
    """The stub server in a process of its own, so it does not share the scheduler's loop."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--stub"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"stub server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- parent

def run_child(spec: dict[str, Any], timeout: float = 1200) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"child {spec['kind']} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


class Results:
    """Every child result by (benchmark, system, size); medians on demand."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}

    def add(self, bench: str, system: str, size: int, result: dict[str, Any]) -> None:
        self.runs.setdefault((bench, system, size), []).append(result)

    def median(self, bench: str, system: str, size: int, key: str) -> float:
        values = [r[key] for r in self.runs.get((bench, system, size), []) if key in r]
        return statistics.median(values) if values else math.nan

    def count(self, bench: str, system: str, size: int) -> int:
        return len(self.runs.get((bench, system, size), []))

    def formatter(self, bench: str, system: str, size: int) -> Callable[[str], str]:
        """`key -> formatted median` for one configuration."""
        return lambda key: fmt(self.median(bench, system, size, key))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(results: Results, bench: str, system: str, size: int, spec: dict[str, Any]) -> None:
    started = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = CLUSTERS[0].usage() if CLUSTERS else None
    result = run_child(spec)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["child_cpu_s"] = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
    if server is not None:  # what the PostgreSQL server did for this case, set-up and read-back included
        result.update({f"server_{k}": v - server[k] for k, v in CLUSTERS[0].usage().items()})
    results.add(bench, system, size, result)
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items())
    log(f"{bench} {system} n={size}: {shown} ({time.perf_counter() - started:.1f} s)")


def populate(work: Path, n: int, dbs: dict[str, str]) -> None:
    """The schedd and APScheduler databases holding n schedules, built once per run (set-up).

    Under --store postgres, schedd's alone (APScheduler is measured against SQLite only)."""
    if f"schedd-{n}" in dbs:
        return
    at, started = time.time(), time.perf_counter()
    dbs[f"schedd-{n}"] = case_db(work, f"schedd-{n}")
    build_schedd_db(dbs[f"schedd-{n}"], daily_service_rows(n, at))
    if not is_pg(dbs[f"schedd-{n}"]):
        dbs[f"aps-{n}"] = str(work / f"aps-{n}.db")
        build_aps_db(Path(dbs[f"aps-{n}"]), n, at)
    log(f"set-up: {n} schedules for schedd{'' if f'aps-{n}' not in dbs else ' and APScheduler'} "
        f"in {time.perf_counter() - started:.1f} s")


def bench_ready(args: argparse.Namespace, work: Path, results: Results, dbs: dict[str, str]) -> None:
    for n in args.sizes:
        populate(work, n, dbs)
        for _ in range(args.repeat):
            measure(results, "ready", "schedd", n, {"kind": "ready_schedd", "db": str(dbs[f"schedd-{n}"]), "n": n})
            if f"aps-{n}" not in dbs:
                continue
            if n <= args.aps_memory_cap:
                measure(results, "ready", "aps-memory", n, {"kind": "ready_aps_memory", "n": n})
            measure(results, "ready", "aps-sqlalchemy", n,
                    {"kind": "ready_aps_sqlalchemy", "db": str(dbs[f"aps-{n}"]), "n": n})


def delay_specs(args: argparse.Namespace, work: Path, url: str) -> dict[str, dict[str, Any]]:
    """The spec of each delay child, by system."""
    common = {"jobs": args.jobs, "seconds": args.seconds, "url": url, "workdir": str(work),
              "executor": args.executor}
    specs = {"schedd": {"kind": "delay_schedd", "max_concurrent": args.max_concurrent, "fire_lead": args.fire_lead,
                        **common},
             "aps-memory": {"kind": "delay_aps", **common},
             "floor": {"kind": "delay_floor", **common}}
    if args.store == "postgres":
        del specs["aps-memory"]
    return {"schedd": specs["schedd"]} if args.schedd_only else specs


def durable_specs(args: argparse.Namespace, work: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    """The size and spec of each durable child, by system."""
    specs = {"schedd": (args.clients, {"kind": "durable_schedd", "clients": args.clients,
                                       "seconds": args.durable_seconds, "workdir": str(work)}),
             "aps-memory": (args.aps_jobs, {"kind": "durable_aps", "store": "memory", "jobs": args.aps_jobs,
                                            "workdir": str(work)}),
             "aps-sqlalchemy": (args.aps_sqla_jobs, {"kind": "durable_aps", "store": "sqlalchemy",
                                                     "jobs": args.aps_sqla_jobs, "workdir": str(work)})}
    return {"schedd": specs["schedd"]} if args.schedd_only or args.store == "postgres" else specs


def bench_delay(args: argparse.Namespace, work: Path, results: Results) -> None:
    stub = Stub()
    try:
        specs = delay_specs(args, work, stub.url)
        for _ in range(args.repeat):
            for system, spec in specs.items():
                measure(results, "delay", system, args.jobs, spec)
    finally:
        stub.close()


def bench_durable(args: argparse.Namespace, work: Path, results: Results) -> None:
    specs = durable_specs(args, work)
    for _ in range(args.repeat):
        for system, (size, spec) in specs.items():
            measure(results, "durable", system, size, spec)


def bench_growth(args: argparse.Namespace, work: Path, results: Results) -> None:
    """schedd's delay and durable runs again, the database and the heap also holding N idle schedules.

    The N schedules are built once per N (set-up, like the "ready" databases, just before
    that N's runs so that none comes due), and each child runs on a copy of them.
    """
    stub = Stub() if "delay" in args.only else None
    try:
        for n in args.held:
            started = time.perf_counter()
            db = case_db(work, f"held-{n}")
            build_schedd_db(db, daily_service_rows(n, time.time(), prefix="idle", uid_base=IDLE_UID_BASE))
            log(f"set-up: {n} idle schedules for schedd in {time.perf_counter() - started:.1f} s")
            held = {"held": n, "base": str(db)}
            for _ in range(args.repeat):
                if "durable" in args.only:
                    spec = durable_specs(args, work)["schedd"][1]
                    measure(results, "durable-held", "schedd", n, {**spec, **held})
                if stub is not None:
                    spec = delay_specs(args, work, stub.url)["schedd"]
                    measure(results, "delay-held", "schedd", n, {**spec, **held})
    finally:
        if stub is not None:
            stub.close()


def bench_adddelete(args: argparse.Namespace, work: Path, results: Results, dbs: dict[str, str]) -> None:
    for n in (min(args.sizes), max(args.sizes)):
        populate(work, n, dbs)
        for _ in range(args.repeat):
            measure(results, "adddelete", "schedd", n,
                    {"kind": "adddelete_schedd", "db": str(dbs[f"schedd-{n}"]), "n": n, "ops": args.ops})
            if f"aps-{n}" not in dbs:
                continue
            measure(results, "adddelete", "aps-sqlalchemy", n,
                    {"kind": "adddelete_aps", "db": str(dbs[f"aps-{n}"]), "n": n, "ops": args.ops})


# --------------------------------------------------------------------------- the table

SYSTEMS = {
    "schedd": "schedd (SQLite)",
    "aps-memory": "APScheduler MemoryJobStore",
    "aps-sqlalchemy": "APScheduler SQLAlchemyJobStore (SQLite)",
}


def fmt(value: float, digits: int = 3) -> str:
    """Three significant digits, thousands grouped; "-" for a figure not measured."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, columns padded so it reads as well in a terminal as in README.md."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def ready_section(args: argparse.Namespace, r: Results) -> list[str]:
    notes = {"aps-memory": "no restart: N x add_job, then start()",
             "aps-sqlalchemy": "loads no job at start (reads the table at every wake-up)"}
    rows = []
    for n in args.sizes:
        for system in ("schedd", "aps-memory", "aps-sqlalchemy"):
            m = r.formatter("ready", system, n)
            if not r.count("ready", system, n):
                if system == "aps-memory" and args.store == "sqlite":
                    rows.append([f"{n:,}", SYSTEMS[system], "-", "-", "-",
                                 f"not run (over --aps-memory-cap {args.aps_memory_cap:,})"])
                continue
            note = f"{m('read_s')} s of it reading the due index" if system == "schedd" else notes[system]
            rows.append([f"{n:,}", SYSTEMS[system], m("seconds"), m("rss_mb"), m("peak_mb"), note])
    return ["Ready after restart (database already populated)",
            table(["schedules", "scheduler", "seconds to ready", "RSS MB", "peak RSS MB", "note"], rows)]


def delay_section(args: argparse.Namespace, r: Results) -> list[str]:
    names = {"schedd": f"{SYSTEMS['schedd'][:-1]}, max_concurrent_runs {args.max_concurrent})",
             "aps-memory": "APScheduler AsyncIOScheduler (MemoryJobStore)",
             "floor": "no scheduler: N tasks created at each second"}
    n, rows = args.jobs, []
    for system in ("schedd", "aps-memory", "floor"):
        if not r.count("delay", system, n):
            continue
        m = r.formatter("delay", system, n)
        recorded = f"{m('recorded_p50_ms')} / {m('recorded_p99_ms')}" if system == "schedd" else "-"
        rows.append([names[system], m("first_ms"), m("p50_ms"), m("p99_ms"), m("max_ms"), recorded,
                     m("expected"), m("ran"), m("skipped"), m("missed"), m("rss_mb")])
    work = ("an HTTP POST to a stub server in another process" if args.executor == "http"
            else "nothing (no-op executor)")
    return [f"Start delay (actual start - due), {n:,} jobs every second for {args.seconds} s, each {work}; ms",
            table(["scheduler", "first of second", "p50", "p99", "max", "runs.started_at p50 / p99",
                   "expected fires", "ran", "skipped", "not run", "RSS MB"], rows)]


def durable_section(args: argparse.Namespace, r: Results) -> list[str]:
    one_shot = "jobs executed/s ({:,} one-shot jobs already due); no run record"
    cases = (("schedd", args.clients, f"runs/s recorded end to end ({args.clients} concurrent run-now clients)"),
             ("aps-memory", args.aps_jobs, one_shot.format(args.aps_jobs)),
             ("aps-sqlalchemy", args.aps_sqla_jobs, one_shot.format(args.aps_sqla_jobs)))
    rows = []
    for system, size, what in cases:
        if not r.count("durable", system, size):
            continue
        m = r.formatter("durable", system, size)
        writer = f"{m('commits_per_s')} commits/s, {m('mean_batch')} writes each" if system == "schedd" else ""
        rows.append([SYSTEMS[system], m("per_s"), what, writer])
    return ["Runs per second, end to end", table(["scheduler", "per second", "what is counted", "writer"], rows)]


def adddelete_section(args: argparse.Namespace, r: Results) -> list[str]:
    small, large = min(args.sizes), max(args.sizes)
    rows = []
    for system in ("schedd", "aps-sqlalchemy"):
        if not r.count("adddelete", system, small):
            continue
        at_small, at_large = r.formatter("adddelete", system, small), r.formatter("adddelete", system, large)
        both_small = r.median("adddelete", system, small, "both_ms")
        ratio = r.median("adddelete", system, large, "both_ms") / both_small if both_small else math.nan
        rows.append([SYSTEMS[system], at_small("add_ms"), at_large("add_ms"), at_small("delete_ms"),
                     at_large("delete_ms"), fmt(ratio)])
    return [f"Add then delete {args.ops:,} schedules, one at a time; ms per operation",
            table(["scheduler", f"add @{small:,}", f"add @{large:,}", f"delete @{small:,}", f"delete @{large:,}",
                   f"add+delete ratio {large:,} / {small:,}"], rows)]


def growth_section(args: argparse.Namespace, r: Results) -> list[str]:
    cases = [(0, ("delay", "schedd", args.jobs), ("durable", "schedd", args.clients))]
    cases += [(n, ("delay-held", "schedd", n), ("durable-held", "schedd", n)) for n in args.held]
    rows = []
    for n, delay, durable in cases:
        d, u = r.formatter(*delay), r.formatter(*durable)
        rss = d("rss_mb") if r.count(*delay) else u("rss_mb")
        rows.append([f"{n:,}", d("first_ms"), d("p50_ms"), d("p99_ms"), d("max_ms"), d("missed"), u("per_s"), rss])
    return [f"Growth: schedd with N idle schedules also in the database and the heap; delay as above "
            f"({args.jobs:,} jobs every second, ms), durable as above ({args.clients} run-now clients); "
            f"RSS at the end of the delay run (of the durable run without one)",
            table(["idle schedules held", "delay first of second", "p50", "p99", "max", "fires not run",
                   "durable runs/s", "RSS MB"], rows)]


SECTIONS = {"ready": ready_section, "delay": delay_section, "durable": durable_section,
            "adddelete": adddelete_section, "growth": growth_section}


def report(args: argparse.Namespace, results: Results) -> str:
    loads = [run["load1"] for runs in results.runs.values() for run in runs if "load1" in run]
    out = [f"Medians of {args.repeat} run(s), each in a fresh process; {os.cpu_count()} CPUs; "
           f"Python {sys.version.split()[0]}; 1-minute load average at the end of the runs "
           f"{fmt(min(loads, default=math.nan))} to {fmt(max(loads, default=math.nan))}.", ""]
    shown = [*args.only, "growth"] if args.held else args.only
    for name, section in SECTIONS.items():
        if name in shown:
            out += [*section(args, results), ""]
    return "\n".join(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="ready,delay,durable,adddelete",
                   help="comma-separated: ready, delay, durable, adddelete")
    p.add_argument("--sizes", default="10000,100000,1000000",
                   help="schedules held for 'ready'; add/delete uses the smallest and the largest")
    p.add_argument("--seconds", type=int, default=30, help="length of the start-delay window")
    p.add_argument("--repeat", type=int, default=3, help="runs per configuration (medians are reported)")
    p.add_argument("--quick", action="store_true", help="small sizes, short windows, one run each")
    p.add_argument("--jobs", type=int, default=1000, help="jobs firing every second in the delay run")
    p.add_argument("--max-concurrent", type=int, default=1000,
                   help="schedd max_concurrent_runs in the delay run (the config default is 64)")
    p.add_argument("--executor", choices=("http", "noop"), default="http",
                   help="what each fire of the delay run does: POST to the stub server, or nothing")
    p.add_argument("--clients", type=int, default=256, help="concurrent run-now clients in the durable run")
    p.add_argument("--durable-seconds", type=float, default=10)
    p.add_argument("--aps-jobs", type=int, default=20000, help="one-shot jobs, APScheduler MemoryJobStore")
    p.add_argument("--aps-sqla-jobs", type=int, default=5000, help="one-shot jobs, APScheduler SQLAlchemyJobStore")
    p.add_argument("--aps-memory-cap", type=int, default=100_000,
                   help="largest size the MemoryJobStore ready run adds job by job")
    p.add_argument("--ops", type=int, default=1000, help="schedules added then deleted in the add/delete run")
    p.add_argument("--held", default="", metavar="N[,N...]",
                   help="comma-separated N: also run schedd's delay and durable figures with N idle schedules "
                        "in the database and the heap, once per N (the growth table; default: none)")
    p.add_argument("--fire-lead", type=float, default=None,
                   help="schedd's [scheduler] fire_lead in the delay run (default: the config default)")
    p.add_argument("--synchronous", choices=("OFF", "NORMAL", "FULL", "EXTRA"), default=None,
                   help="schedd's [database] synchronous (default: the config default, FULL)")
    p.add_argument("--schedd-only", action="store_true",
                   help="delay and durable: schedd alone, without APScheduler and the no-scheduler floor")
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                   help="schedd's store: SQLite files, or a throwaway durable PostgreSQL cluster with one database "
                        "per case (schedd and the no-scheduler floor only: APScheduler is not run)")
    p.add_argument("--workdir", default=None, help="where the databases go (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", default=None, help="also write every raw result to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.seconds, args.repeat = "1000,10000", 5, 1
        args.durable_seconds, args.aps_jobs, args.aps_sqla_jobs, args.ops = 2, 2000, 500, 200
    args.sizes = sorted(int(s) for s in str(args.sizes).split(","))
    args.held = sorted({int(s) for s in args.held.split(",")}) if args.held else []
    args.only = [s.strip() for s in args.only.split(",")]
    unknown = set(args.only) - {"ready", "delay", "durable", "adddelete"}
    if unknown:
        p.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")
    if args.held and (min(args.held) < 1 or not {"delay", "durable"} & set(args.only)):
        p.error("--held: positive sizes, with delay or durable in --only")
    return args


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        child_main(argv[1])
        return
    if argv[:1] == ["--stub"]:
        stub_main()
        return
    args = parse_args(argv)
    if args.synchronous:
        os.environ[SYNCHRONOUS_ENV] = args.synchronous
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="schedd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = Results()
    dbs: dict[str, str] = {}
    started = time.perf_counter()
    cluster = PgCluster() if args.store == "postgres" else None
    try:
        if "ready" in args.only:
            bench_ready(args, work, results, dbs)
        if "adddelete" in args.only:
            bench_adddelete(args, work, results, dbs)
        if "durable" in args.only:
            bench_durable(args, work, results)
        if "delay" in args.only:
            bench_delay(args, work, results)
        if args.held:
            bench_growth(args, work, results)
    finally:
        if cluster is not None:
            cluster.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"bench": b, "system": s, "size": n, "runs": runs} for (b, s, n), runs in results.runs.items()],
            indent=1))
    if cluster is not None:  # the same tables, schedd on PostgreSQL
        SYSTEMS["schedd"] = "schedd (PostgreSQL)"
        settings = ", ".join(f"{k} {v}" for k, v in cluster.settings.items())
        print(f"schedd on PostgreSQL ({settings}), one database per case.")
    print(report(args, results))
    log(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
