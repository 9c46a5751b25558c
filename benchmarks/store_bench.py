"""The store alone, SQLite against PostgreSQL: durable runs/s and a batch of fire writes.

    .venv/bin/python benchmarks/store_bench.py --backend sqlite,postgres --repeat 3

A durable run is the runner's three transactions, each committed (durable) before the
next: the run recorded and its start noted on its schedule, the run marked started, its
end recorded with the schedule's counters. `--clients` runs go round at once, for
`--seconds`. A fire batch is one transaction recording `--batch` due fires (a run each,
and each schedule's next fire time), as the engine's due batch does. Each figure is the
median of `--repeat` runs, each on a new database.

SQLite: a file in a temporary directory, `synchronous=FULL`. PostgreSQL: a throwaway
cluster started for the benchmark (as the tests start one: tests/support/postgres.py),
with fsync on, on the same disk, reached over its Unix socket; `--pg-url` uses an
existing server instead (the database must be new and empty).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schedd.compose import install_families  # noqa: E402
from schedd.store.postgres import PgStore  # noqa: E402
from schedd.store.protocol import Store  # noqa: E402
from schedd.store.runs import Finish, Fired, NewRun, Outcome  # noqa: E402
from schedd.store.schedules import NewSchedule, Schedule  # noqa: E402
from schedd.store.sqlite import SqliteStore  # noqa: E402

T0 = 1_767_225_600.0


def job(n: int) -> NewSchedule:
    return NewSchedule(uid=f"bench-{n}", family="service", cron="0 0 4 ? * * *", cron_normalized="0 0 4 ? * * *",
                       timezone="UTC", created_at=T0, name=f"bench-{n}", next_fire_at=T0 + 60)


def new_run(schedule: Schedule, state: str, at: float) -> NewRun:
    return NewRun(uid=uuid.uuid4().hex, family=schedule.family, overlap_key=schedule.overlap_key,
                  trigger="Scheduled", state=state, created_at=at, schedule_id=schedule.id, due_at=at)


class Ops:
    """The runner's writes of a run, and a due batch, through the store's Protocol (`store.fires`)."""

    def __init__(self, store: Store) -> None:
        self.fires = store.fires

    async def record(self, schedule: Schedule, at: float) -> tuple[int, str]:
        row = new_run(schedule, "queued", at)
        return await self.fires.start_now(row, schedule.id), row.uid

    async def start(self, run_id: int, at: float) -> None:
        if not await self.fires.mark_started(run_id, at):
            raise RuntimeError(f"run {run_id} was not queued")

    async def finish(self, schedule: Schedule, run_id: int, uid: str, at: float) -> None:
        await self.fires.finish(run_id, Finish(state="done", ended_at=at),
                                Outcome(schedule_id=schedule.id, ok=True, counted=True, status="done", run_uid=uid,
                                        at=at))

    async def fire_batch(self, schedules: list[Schedule], at: float) -> None:
        rows = [new_run(s, "queued", at) for s in schedules]
        fired = [Fired(s.id, at + 86400, (row.uid, "queued")) for s, row in zip(schedules, rows, strict=True)]
        await self.fires.record_fires([(row, None) for row in rows], fired, skip_since=at - 86400, at=at)


async def one(backend: str, where: str, args: argparse.Namespace) -> dict[str, float]:
    install_families()
    store: Store = PgStore.at(where, pool_size=args.pool_size) if backend == "postgres" else SqliteStore.at(where)
    await store.open()
    try:
        ops = Ops(store)
        schedules = [await store.schedules.insert(job(n)) for n in range(max(args.clients, args.batch))]
        completed = 0
        deadline = time.perf_counter() + args.seconds

        async def client(schedule: Schedule) -> None:
            nonlocal completed
            while time.perf_counter() < deadline:
                at = time.time()
                run_id, uid = await ops.record(schedule, at)
                await ops.start(run_id, at)
                await ops.finish(schedule, run_id, uid, at)
                completed += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(s) for s in schedules[:args.clients]))
        runs_per_s = completed / (time.perf_counter() - started)
        batch_ms = []
        for _ in range(5):
            began = time.perf_counter()
            await ops.fire_batch(schedules[:args.batch], time.time())
            batch_ms.append((time.perf_counter() - began) * 1000)
        done = sum((await store.runs.fires_by_schedule()).values())
        if done != completed + 5 * args.batch:
            raise RuntimeError(f"{completed} runs and {5 * args.batch} fires made, {done} recorded")
        return {"runs_per_s": runs_per_s, "batch_ms": statistics.median(batch_ms)}
    finally:
        await store.close()


async def measure(backend: str, args: argparse.Namespace, work: Path, n: int) -> dict[str, float]:
    if backend == "sqlite":
        return await one(backend, str(work / f"bench-{n}.db"), args)
    if args.pg_url:
        return await one(backend, args.pg_url, args)
    from tests.support.postgres import Cluster

    cluster = Cluster.find(durable=True)
    if cluster is None:
        raise SystemExit("no PostgreSQL server installed (/usr/lib/postgresql/*/bin)")
    cluster.start()
    try:
        return await one(backend, await cluster.new_database(migrated=False), args)
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite,postgres", help="sqlite, postgres or both (comma-separated)")
    parser.add_argument("--clients", type=int, default=256, help="runs going round at once (default 256)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long runs go round (default 5)")
    parser.add_argument("--batch", type=int, default=1000, help="fires in one batch (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is shown (default 3)")
    parser.add_argument("--pool-size", type=int, default=10, help="PostgreSQL connections (default 10)")
    parser.add_argument("--pg-url", help="an existing, new and empty PostgreSQL database instead of a throwaway one")
    args = parser.parse_args()
    print(f"{'backend':<10} {'durable runs/s':>15} {'fire batch ms':>14}  (clients {args.clients}, "
          f"batch {args.batch}, pool {args.pool_size}, median of {args.repeat})")
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        for backend in args.backend.split(","):
            figures = [asyncio.run(measure(backend, args, Path(tmp), n)) for n in range(args.repeat)]
            runs = statistics.median(f["runs_per_s"] for f in figures)
            batch = statistics.median(f["batch_ms"] for f in figures)
            print(f"{backend:<10} {runs:>15,.0f} {batch:>14.1f}", flush=True)


if __name__ == "__main__":
    main()
