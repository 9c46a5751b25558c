"""Crash loop: start `schedd serve`, write through the API, `kill -9` at a random moment, restart.

After every restart the database must hold every acknowledged write, no run may be left
`queued`/`inprogress`, every due fire of every live schedule must be accounted for exactly
once (a run, a skip or a misfire record), and `PRAGMA integrity_check` must say `ok`.

    .venv/bin/python benchmarks/crashloop.py --rounds 100

prints one line per round and a summary; exit status 1 if anything was lost, missing or
duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from schedd.cron import load_zone, parse

ROOT = Path(__file__).resolve().parent.parent

PASSWORD = "crash loop password"
CRONS = ("* * * * * ?", "*/2 * * * * ?", "0/3 * * * * ?", "* * * * * ? *")
ORGS = ("default", "acme", "globex")
MAX_LIVE = 40  # live second-level schedules: enough to keep runs in flight, not a flood


@dataclass
class Round:
    number: int
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    open_runs: int = 0
    missing: int = 0
    duplicated: int = 0
    integrity: str = ""
    runs: int = 0
    fires: int = 0
    misfires: int = 0


class Crashloop:
    def __init__(self, workdir: Path, seed: int) -> None:
        self.dir = workdir
        self.db = workdir / "schedd.db"
        self.config = workdir / "schedd.toml"
        self.log = workdir / "daemon.log"
        self.rng = random.Random(seed)
        self.created: dict[str, str] = {}  # acknowledged schedule job_id -> org
        self.deleted: set[str] = set()      # acknowledged deletes
        self.started_runs: set[str] = set()  # acknowledged run-now run ids
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.killed_at = 0.0

    def setup(self) -> None:
        self.config.write_text(
            "[scheduler]\nshutdown_grace = \"1s\"\nmisfire_grace = \"2s\"\n\n"
            "[executors.maintenance]\n"
            f"command = [{json.dumps(sys.executable)}, \"-c\", \"import time, random; time.sleep(random.random() * 0.8)\"]\n")
        for org in ORGS[1:]:
            self._cli("org", "add", org)
        out = self._cli("user", "add", "ops", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
        self.token = ""
        assert out.returncode == 0, out.stderr

    def _cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "schedd", *args, "--db", str(self.db), "--config", str(self.config)],
            input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT)

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "schedd", "serve", "--port", "0", "--db", str(self.db),
                 "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                f.seek(offset)
                found = re.search(rb"action=listening .*port=(\d+)", f.read())
            if found:
                self.port = int(found.group(1))
                return
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited:\n" + self.log.read_text()[-3000:])
            time.sleep(0.02)
        raise RuntimeError("daemon did not start")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.killed_at = time.time()
        self.proc.wait()

    async def login(self, session: aiohttp.ClientSession) -> str:
        async with session.post(f"http://127.0.0.1:{self.port}/authService/accounts/login",
                                data={"userid": "ops", "password": PASSWORD}) as r:
            return (await r.json())["claims_token"]["value"]

    async def client(self, session: aiohttp.ClientSession, token: str, rng: random.Random) -> None:
        base = f"http://127.0.0.1:{self.port}"
        headers = {"X-VoltMX-Authorization": token}
        while True:
            await asyncio.sleep(rng.uniform(0, 0.01))
            action = rng.random()
            org = rng.choice(ORGS)
            live = [job for job in self.created if job not in self.deleted]
            if action < 0.3 and len(live) >= MAX_LIVE:
                action = 1.0  # at the cap a create becomes a run-now, so schedules live long
            if action < 0.3:
                body = {"time_expression": rng.choice(CRONS), "scheduler_type": "time-based"}
                async with session.post(f"{base}/aggregates/maintenance/scheduler/jobs/orgId/{org}",
                                        json=body, headers=headers) as r:
                    if r.status == 200:
                        self.created[(await r.json())["response"]["job_id"]] = org
            elif action < 0.305 and live:
                job = rng.choice(live)
                async with session.delete(
                        f"{base}/api/1.0/aggregates/maintenance-schedule/jobs/orgId/{self.created[job]}/jobId/{job}",
                        headers=headers) as r:
                    if r.status == 200:
                        self.deleted.add(job)
            else:
                async with session.post(f"{base}/api/1.0/aggregates/maintenance/orgId/{org}/run-immediately",
                                        headers=headers) as r:
                    if r.status == 200:
                        self.started_runs.add(r.headers["X-Run-Id"])

    async def drive(self, seconds: float) -> None:
        async with aiohttp.ClientSession() as session:
            token = await self.login(session)
            tasks = [asyncio.create_task(self.client(session, token, random.Random(self.rng.random())))
                     for _ in range(4)]
            await asyncio.sleep(seconds)
            self.kill()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def check(self, number: int) -> Round:
        """Checks that hold once the daemon has restarted (and recovered) after a kill."""
        result = Round(number, acknowledged=len(self.created) + len(self.deleted) + len(self.started_runs))
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None)
        try:
            db.execute("BEGIN")  # one snapshot: the daemon keeps writing while this reads
            result.integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
            schedules = {row[0]: row for row in db.execute(
                "SELECT uid, id, active, cron, timezone, created_at, next_fire_at FROM schedules")}
            for job in self.created:
                if job not in schedules:
                    result.lost.append(f"schedule {job}")
            for job in self.deleted:
                if job in schedules and schedules[job][2]:
                    result.lost.append(f"delete {job}")
            run_ids = {row[0] for row in db.execute("SELECT uid FROM runs")}
            result.lost += [f"run {uid}" for uid in self.started_runs - run_ids]
            result.open_runs = db.execute(  # runs of the restarted daemon may be running; older may not
                "SELECT count(*) FROM runs WHERE state IN ('queued', 'inprogress') AND created_at <= ?",
                (self.killed_at,)).fetchone()[0]
            result.runs = len(run_ids)
            for uid, sid, active, cron, tz, created_at, next_fire_at in schedules.values():
                records = db.execute(
                    "SELECT due_at, fires, skip_reason FROM runs WHERE schedule_id = ?", (sid,)).fetchall()
                dues = Counter(due for due, _, reason in records if reason != "misfire")
                result.duplicated += sum(n - 1 for n in dues.values() if n > 1)
                if not active or next_fire_at is None:
                    continue  # a deleted schedule's last fires are not known from here
                expected = 0
                for fire in parse(cron).iter_after(created_at, load_zone(tz)):
                    if fire >= next_fire_at:
                        break
                    expected += 1
                accounted = sum(fires for _, fires, _ in records)
                result.misfires += sum(fires for _, fires, reason in records if reason == "misfire")
                result.fires += accounted
                result.missing += max(0, expected - accounted)
                result.duplicated += max(0, accounted - expected)
        finally:
            db.close()
        return result


def run(rounds: int, seed: int, workdir: Path, *, min_seconds: float = 0.3, max_seconds: float = 2.0,
        max_down: float = 4.0, echo=print) -> list[Round]:
    loop = Crashloop(workdir, seed)
    loop.setup()
    results = []
    for number in range(1, rounds + 1):
        loop.start()
        if number > 1:
            results.append(loop.check(number - 1))
            echo(format_round(results[-1]))
        asyncio.run(loop.drive(loop.rng.uniform(min_seconds, max_seconds)))
        time.sleep(loop.rng.uniform(0, max_down))  # downtime: fires past misfire_grace are misfires
    loop.start()
    results.append(loop.check(rounds))
    echo(format_round(results[-1]))
    os.kill(loop.proc.pid, signal.SIGTERM)
    loop.proc.wait(timeout=30)
    return results


def format_round(r: Round) -> str:
    return (f"round {r.number:3d}: acknowledged={r.acknowledged} runs={r.runs} fires={r.fires} misfired={r.misfires} "
            f"lost={len(r.lost)} open={r.open_runs} missing={r.missing} duplicated={r.duplicated} "
            f"integrity={r.integrity}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="work in this directory (kept) instead of a temporary one")
    args = parser.parse_args()
    started = time.monotonic()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        results = run(args.rounds, args.seed, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = run(args.rounds, args.seed, Path(tmp))
    last = results[-1]
    lost = sum(len(r.lost) for r in results)
    missing = sum(r.missing for r in results)
    duplicated = sum(r.duplicated for r in results)
    open_runs = sum(r.open_runs for r in results)
    bad = [r.number for r in results if r.integrity != "ok"]
    print(f"\n{args.rounds} rounds in {time.monotonic() - started:.0f} s: acknowledged writes {last.acknowledged}, "
          f"runs {last.runs}, fires accounted {last.fires} (of which misfired {last.misfires})")
    print(f"lost {lost}, missing {missing}, duplicated {duplicated}, left open {open_runs}, "
          f"integrity failures {len(bad)}")
    return 1 if lost or missing or duplicated or open_runs or bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
