"""A real login during a burst of bad logins: how long the user waits, and how long the loop stalls.

Starts `schedd serve` on a fresh database, adds one user, then sends BURST logins with random
user ids and wrong passwords at once from 127.0.0.2 (the attacker), and while they are being
answered, a login with the right password from 127.0.0.3 (the user), plus `/healthz` probes
every 50 ms from 127.0.0.4 to see how long the event loop takes to answer anything. Prints:
the user's login time, the burst's total time and statuses, the longest `/healthz` answer.

    .venv/bin/python benchmarks/login_bench.py [--burst 400] [--repeat 3] [--hash-concurrency N] [--source DIR]

`--source DIR` runs the daemon from another source tree (e.g. an export of an older commit)
with this interpreter, to compare before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

PASSWORD = "a long password for the bench"
ATTACKER, USER, PROBE = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def schedd_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "schedd", *args], input=stdin, capture_output=True, text=True,
                         env=env, check=False, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"schedd {' '.join(args)}: {out.stderr}")
    return out.stdout


def start(work: Path, env: dict[str, str], config: list[str]) -> tuple[subprocess.Popen, int]:
    log = work / "daemon.log"
    with open(log, "a") as err:
        proc = subprocess.Popen([sys.executable, "-m", "schedd", "serve", "--port", "0", "--db", str(work / "b.db"),
                                 *config], stdout=subprocess.DEVNULL, stderr=err, cwd=work, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"action=listening .*port=(\d+)", log.read_text())
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            raise SystemExit("schedd serve exited:\n" + log.read_text()[-4000:])
        time.sleep(0.05)
    raise SystemExit("schedd serve did not start")


async def login(session: aiohttp.ClientSession, url: str, userid: str, password: str) -> tuple[int, float]:
    started = time.perf_counter()
    async with session.post(url, data={"userid": userid, "password": password}) as response:
        await response.read()
        return response.status, time.perf_counter() - started


async def probe(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> float:
    worst = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
        worst = max(worst, time.perf_counter() - started)
        await asyncio.sleep(0.05)
    return worst


async def one_round(port: int, burst: int) -> dict[str, object]:
    base = f"http://127.0.0.1:{port}"

    def session(address: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=(address, 0)),
                                     timeout=aiohttp.ClientTimeout(total=600))

    async with session(ATTACKER) as attacker, session(USER) as user, session(PROBE) as prober:
        stop = asyncio.Event()
        probing = asyncio.create_task(probe(prober, base + "/healthz", stop))
        started = time.perf_counter()
        attack = [asyncio.create_task(login(attacker, base + "/authService/accounts/login",
                                            f"u{uuid.uuid4().hex[:12]}", "wrong password"))
                  for _ in range(burst)]
        await asyncio.sleep(0.2)  # the burst is in the daemon before the user arrives
        status, waited = await login(user, base + "/authService/accounts/login", "bench", PASSWORD)
        results = await asyncio.gather(*attack)
        burst_time = time.perf_counter() - started
        stop.set()
        worst = await probing
    statuses: dict[int, int] = {}
    for code, _ in results:
        statuses[code] = statuses.get(code, 0) + 1
    return {"user_status": status, "user_s": waited, "burst_s": burst_time, "statuses": statuses,
            "healthz_worst_s": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burst", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source", help="source tree to run the daemon from (default: this one)")
    parser.add_argument("--hash-concurrency", type=int, help="[auth] login_hash_concurrency (default: the default)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.source:
        env["PYTHONPATH"] = os.path.abspath(args.source)
    rounds = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="schedd-login-bench-") as tmp:
            work = Path(tmp)
            schedd_cli(env, "user", "add", "bench", "--password-stdin", "--db", str(work / "b.db"),
                       stdin=PASSWORD + "\n")
            config = []
            if args.hash_concurrency:
                (work / "b.toml").write_text(f"[auth]\nlogin_hash_concurrency = {args.hash_concurrency}\n")
                config = ["--config", str(work / "b.toml")]
            proc, port = start(work, env, config)
            try:
                result = asyncio.run(one_round(port, args.burst))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            print(f"user login {result['user_status']} in {result['user_s']:.2f} s; burst of {args.burst}: "
                  f"{result['burst_s']:.2f} s {result['statuses']}; worst /healthz {result['healthz_worst_s']:.3f} s",
                  flush=True)
            rounds.append(result)
    for key in ("user_s", "burst_s", "healthz_worst_s"):
        print(f"median {key}: {statistics.median(float(r[key]) for r in rounds):.3f}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
