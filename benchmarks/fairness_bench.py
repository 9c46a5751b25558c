"""Fair share benchmark: a quiet org's start delay beside an org with thousands of every-second schedules.

    .venv/bin/python benchmarks/fairness_bench.py                       # the three cases, 60 s each
    .venv/bin/python benchmarks/fairness_bench.py --seconds 20 --repeat 1  # a quicker look

Real time, the real engine loop, a real SQLite file, in a fresh child process per case:

- `alone`: org B, 10 build schedules firing every second (`* * * * * ?`);
- `shared`: the same beside org A, 2,000 build schedules firing every second, each run of
  A holding its slot for `--a-run` seconds (a backlog that never clears), with the
  default [quotas] (A's share: 32 of 64 slots, 1,000 waiting at most);
- `nocap`: as `shared`, but A's share is every slot (`[quotas] max_concurrent_runs = 64`),
  to show what the share buys.

The executor is in-process (a run of B takes 50 ms, one of A `--a-run` s): what is measured
is the scheduler, not a child process. B's start delay is the executor's start (wall
clock) minus the run's due time, over B's runs due after `--warmup` seconds. B's ten runs
of one second start together, so p99 over a minute is about its slowest second. Database
growth is the rows of `runs` and the database's bytes (`page_count * page_size`), from the
end of the warm-up to the end, per minute. The parent prints a table: per case the
median over `--repeat` runs of each figure, and B's p99 beside its p99 alone.

`--pythonpath DIR` runs the children against another checkout of schedd (for a figure
from before the change: `git archive bae4a8c | tar -x -C /tmp/schedd-before`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = ("alone", "shared", "nocap")
B_SCHEDULES = 10
B_RUN = 0.05


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of an unsorted list."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# --------------------------------------------------------------------------- the child

async def child(spec: dict[str, Any]) -> dict[str, Any]:
    from schedd import config as config_mod
    from schedd.compose import build_core
    from schedd.cron import load_zone, parse
    from schedd.executors import Outcome
    from schedd.store import schedules as schedule_store

    sections: dict[str, Any] = {"executors": {"maintenance": {"after_first_build": False}}}
    if spec["case"] == "nocap":
        sections["quotas"] = {"max_concurrent_runs": 64}
    core = build_core(config_mod.from_dict(sections), db_path=spec["db"])
    started: dict[str, float] = {}

    class Executor:
        async def run(self, ctx: Any) -> Any:
            started[ctx.run_uid] = time.time()
            await asyncio.sleep(spec["a_run"] if ctx.values.get("org_id") == "a" else B_RUN)
            return Outcome(ok=True)

    executor = Executor()
    core.executors.get = lambda ctx: executor  # type: ignore[method-assign]
    await core.start(run_loop=False)
    for org in ("a", "b"):
        await core.store.db.execute("INSERT INTO orgs (id, created_at) VALUES (?, 0)", (org,))

    cron = parse("* * * * * ?")
    begin = math.floor(time.time()) + 2  # the first fire, once every schedule is armed
    counts = {"a": spec["a_schedules"] if spec["case"] != "alone" else 0, "b": B_SCHEDULES}
    made = []
    for org, count in counts.items():
        made += await asyncio.gather(*(core.store.schedules.insert(schedule_store.NewSchedule(
            uid=str(uuid.uuid4()), family="aggregate", org_id=org, project_id="p", cube_id=f"{org}{i}",
            cron=cron.expr, cron_normalized=cron.normalized, timezone="UTC", full_build=True,
            created_at=time.time(), next_fire_at=float(begin))) for i in range(count)))
    for schedule in made:
        core.runner.arm(schedule)
    assert cron.next_after(begin - 1, load_zone("UTC")) == begin

    loop_task = asyncio.create_task(core.engine.run())
    warm_end = begin + spec["warmup"]
    end = begin + spec["warmup"] + spec["seconds"]
    await asyncio.sleep(max(0.0, warm_end - time.time()))
    rows0, bytes0 = await db_size(core)
    await asyncio.sleep(max(0.0, end - time.time()))
    rows1, bytes1 = await db_size(core)
    core.engine.stop()
    await loop_task

    b_runs = await core.store.db.fetchall(
        "SELECT uid, due_at FROM runs WHERE org_id = 'b' AND state != 'skipped' AND due_at >= ? AND due_at < ?",
        (warm_end, end))
    delays = [(started[r["uid"]] - r["due_at"]) * 1000 for r in b_runs if r["uid"] in started]
    expected = B_SCHEDULES * spec["seconds"]
    states = await core.store.db.fetchall(
        "SELECT org_id, state, count(*) AS n, sum(fires) AS fires FROM runs GROUP BY org_id, state")
    await core.runner.shutdown(0.0)
    await core.executors.close()
    await core.store.db.close()
    minutes = spec["seconds"] / 60
    return {
        "case": spec["case"],
        "b_runs": len(delays), "b_expected": expected, "b_not_started": expected - len(delays),
        "b_p50_ms": percentile(delays, 50), "b_p95_ms": percentile(delays, 95), "b_p99_ms": percentile(delays, 99),
        "b_max_ms": max(delays, default=math.nan),
        "rows_per_min": (rows1 - rows0) / minutes, "kb_per_min": (bytes1 - bytes0) / 1024 / minutes,
        "states": {f"{r['org_id']}:{r['state']}": [r["n"], r["fires"]] for r in states},
    }


async def db_size(core: Any) -> tuple[int, int]:
    rows = (await core.store.db.fetchone("SELECT count(*) FROM runs"))[0]
    pages = (await core.store.db.fetchone("PRAGMA page_count"))[0]
    size = (await core.store.db.fetchone("PRAGMA page_size"))[0]
    return rows, pages * size


# --------------------------------------------------------------------------- the parent

def run_child(case: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    db = workdir / f"{case}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    spec = {"case": case, "db": str(db), "seconds": args.seconds, "warmup": args.warmup,
            "a_schedules": args.a_schedules, "a_run": args.a_run}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (args.pythonpath or str(ROOT), env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                         capture_output=True, text=True, check=False,
                         timeout=args.seconds + args.warmup + 600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        sys.exit(f"{case} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="measured seconds per case")
    parser.add_argument("--warmup", type=int, default=5, help="seconds left out after the first fire")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (medians are printed)")
    parser.add_argument("--a-schedules", type=int, default=2000)
    parser.add_argument("--a-run", type=float, default=30.0, help="seconds each run of A holds its slot")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--pythonpath", help="run the children against schedd in this directory")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(asyncio.run(child(json.loads(args.child)))), flush=True)
        return

    cases = [c for c in args.cases.split(",") if c]
    workdir = Path(tempfile.mkdtemp(prefix="fairness-bench-"))
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in cases}
    try:
        for round_ in range(args.repeat):
            for case in cases:  # interleaved, so noise on a shared machine hits every case alike
                result = run_child(case, args, workdir)
                results[case].append(result)
                print(f"# round {round_ + 1} {case}: " + json.dumps(result), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def med(case: str, key: str) -> float:
        return statistics.median(r[key] for r in results[case])

    alone = med("alone", "b_p99_ms") if "alone" in results else math.nan
    print(f"\nB: {B_SCHEDULES} every-second schedules; A: {args.a_schedules} every-second schedules, "
          f"runs of {args.a_run:g} s; {args.seconds} s measured after {args.warmup} s; median of {args.repeat}")
    print("| case | B runs started / due | B start delay p50 / p95 / p99 / max, ms | p99 / p99 alone "
          "| runs rows per min | database KB per min |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        print(f"| {case} | {med(case, 'b_runs'):.0f} / {med(case, 'b_expected'):.0f} "
              f"| {med(case, 'b_p50_ms'):.1f} / {med(case, 'b_p95_ms'):.1f} / {med(case, 'b_p99_ms'):.1f}"
              f" / {med(case, 'b_max_ms'):.1f} "
              f"| {med(case, 'b_p99_ms') / alone:.2f} | {med(case, 'rows_per_min'):,.0f} "
              f"| {med(case, 'kb_per_min'):,.0f} |")


if __name__ == "__main__":
    main()
