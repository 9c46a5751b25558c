# ruff: noqa: S101, S310, S603, S607, S608 - a benchmark: it runs its own daemon, CLI and curl on a
# throwaway database with a throwaway password, and calls 127.0.0.1 only.
"""Bounded responses: a real `schedd serve` holding 50k schedules in one org, whose complete
schedule list (org maintenance, no paging) is fetched by 24 concurrent clients while `/healthz`
is polled. Prints /healthz latency (p50/p99/max) during the load and the daemon's peak RSS
growth over its RSS before the load. Goals: healthz p99 <= 50 ms, RSS growth <= 100 MB.

    .venv/bin/python benchmarks/bounded_bench.py                       # 50k rows, 24 clients, 3 lists each
    .venv/bin/python benchmarks/bounded_bench.py --rows 5000 --rounds 1  # a quick run
    .venv/bin/python benchmarks/bounded_bench.py --path /admin/api/jobs/job   # the service job list instead

The lists are fetched by curl (C, one process per client) so that the clients' own CPU
stays small; /healthz is polled over one keep-alive connection from a thread of this
process every 5 ms, and the daemon's RSS is read from /proc every 20 ms. Set-up (not
timed): the schema by `schedd db migrate`, the rows bulk-inserted with sqlite3, an admin
user and a token through the CLI. Figures only: nothing here asserts but that each list
was complete.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bounded bench password"
ORG = "default"
FAR_CRON = "0 0 4 1 1 ? *"  # 1 January at 04:00: nothing fires during the run


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def cli(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "schedd", *args], input=stdin, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return out.stdout.strip()


def populate(db: str, rows: int, family: str) -> None:
    cli("db", "migrate", "--db", db)
    now = time.time()
    next_fire = time.mktime((time.gmtime(now).tm_year + 1, 1, 1, 4, 0, 0, 0, 0, 0))
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO schedules (uid, family, org_id, name, cron, cron_normalized, timezone, full_build, spec,"
            " active, next_fire_at, history_strategy, retention_days, created_by, created_at, updated_by,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, 'MINIMAL', 30, 'bench', ?, 'bench', ?)",
            ((str(uuid.uuid4()), family, ORG if family == "maintenance" else None,
              f"job {n}" if family == "service" else None, FAR_CRON, FAR_CRON, "Europe/Berlin", 0,
              json.dumps({"jobServiceInfo": {"serviceName": "stub", "operationName": "op"}})
              if family == "service" else None, next_fire, now + n * 1e-3, now + n * 1e-3)
             for n in range(rows)))
    conn.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))


class Poller(threading.Thread):
    """GET /healthz every `interval` s on one keep-alive connection; keeps each latency (ms)."""

    def __init__(self, port: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stop.is_set():
            started = time.perf_counter()
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            self.latencies.append((time.perf_counter() - started) * 1000)
            self.stop.wait(self.interval)
        conn.close()


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self.stop.wait(0.02)


def run(args: argparse.Namespace) -> dict[str, float]:
    family = "service" if args.path.startswith("/admin/api/jobs") else "maintenance"
    with tempfile.TemporaryDirectory(prefix="schedd-bounded-") as tmp:
        db, config = os.path.join(tmp, "bench.db"), os.path.join(tmp, "bench.toml")
        Path(config).write_text('[services.stub]\nbase_url = "http://127.0.0.1:9/stub"\n'
                                '[scheduler]\nshutdown_grace = "2s"\n')
        log(f"populating {args.rows} {family} schedules")
        populate(db, args.rows, family)
        cli("user", "add", "bench", "--admin", "--password-stdin", "--db", db, "--config", config,
            stdin=PASSWORD + "\n")
        token = cli("token", "create", "bench", "--db", db, "--config", config)
        daemon_log = open(os.path.join(tmp, "daemon.log"), "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "schedd", "serve", "--port", "0", "--db", db,
                                 "--config", config], stderr=daemon_log, stdout=subprocess.DEVNULL, cwd=ROOT)
        try:
            port = 0
            for _ in range(400):
                found = re.search(r"action=listening .*port=(\d+)", Path(daemon_log.name).read_text())
                if found:
                    port = int(found.group(1))
                    break
                time.sleep(0.05)
            assert port, Path(daemon_log.name).read_text()
            url = f"http://127.0.0.1:{port}{args.path}"
            curl = ["curl", "-s", "-o", "-", "-H", f"X-VoltMX-Authorization: {token}", url]
            body = subprocess.run(curl, capture_output=True, check=True).stdout  # warm-up, and the size
            answer = json.loads(body)
            items = answer if isinstance(answer, list) else answer["response"]
            assert len(items) == args.rows, len(items)
            del answer, items
            time.sleep(1.0)
            base = rss_kib(proc.pid)
            poller, sampler = Poller(port, 0.005), Sampler(proc.pid)
            sampler.start()
            poller.start()
            time.sleep(0.5)
            quiet = len(poller.latencies)
            started = time.perf_counter()
            fetch = ["curl", "-s", "-w", "%{http_code} %{size_download} %{time_total}\\n",
                     "-H", f"X-VoltMX-Authorization: {token}"] + ["-o", "/dev/null", url] * args.rounds
            clients = [subprocess.Popen(fetch, stdout=subprocess.PIPE, text=True) for _ in range(args.clients)]
            results = [line.split() for client in clients for line in client.communicate()[0].splitlines()]
            elapsed = time.perf_counter() - started
            poller.stop.set()
            sampler.stop.set()
            poller.join()
            sampler.join()
            under_load = poller.latencies[quiet:]
            assert all(code == "200" and int(size) == len(body) for code, size, _ in results), results[:3]
            list_times = [float(t) for _, _, t in results]
            return {
                "rows": args.rows, "clients": args.clients, "lists": len(results),
                "list_mb": len(body) / 1e6, "seconds": elapsed,
                "list_s_p50": statistics.median(list_times), "list_s_max": max(list_times),
                "healthz": len(under_load), "healthz_p50_ms": percentile(under_load, 50),
                "healthz_p99_ms": percentile(under_load, 99), "healthz_max_ms": max(under_load),
                "rss_base_mb": base / 1024, "rss_peak_mb": sampler.peak / 1024,
                "rss_growth_mb": (sampler.peak - base) / 1024,
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            daemon_log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3, help="lists each client fetches, one after another")
    parser.add_argument("--path", default=f"/aggregates/maintenance/scheduler/jobs/orgId/{ORG}")
    args = parser.parse_args()
    figures = run(args)
    print(f"{figures['rows']} rows, {figures['list_mb']:.1f} MB a list; {figures['clients']} clients fetched "
          f"{figures['lists']} complete lists in {figures['seconds']:.1f} s "
          f"(each {figures['list_s_p50']:.2f} s median, {figures['list_s_max']:.2f} s max)")
    print(f"/healthz under load ({figures['healthz']} polls): p50 {figures['healthz_p50_ms']:.1f} ms, "
          f"p99 {figures['healthz_p99_ms']:.1f} ms, max {figures['healthz_max_ms']:.1f} ms (goal p99 <= 50 ms)")
    print(f"daemon RSS: {figures['rss_base_mb']:.0f} MB before, peak {figures['rss_peak_mb']:.0f} MB, "
          f"growth {figures['rss_growth_mb']:.1f} MB (goal <= 100 MB)")


if __name__ == "__main__":
    main()
