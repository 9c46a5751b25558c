"""Every Prometheus instrument of schedd, defined once, in one registry.

No instrument is labelled by job id: 100k jobs must not mean 100k series. Every label
combination of the counters exists from the start at 0, so `increase()` sees the first
event; the `_created` series prometheus-client would add are not exported (no rule or
panel reads them). `etc/prometheus/schedd-rules.yml` alerts on these series.
"""

from __future__ import annotations

import os

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from schedd import __version__
from schedd.states import ENDED_RUN_STATES

prometheus_client.disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_start_time_seconds tells restarts apart

RUN_STATES = tuple(state.value for state in ENDED_RUN_STATES)
RUN_KINDS = ("scheduled", "manual")
SKIP_REASONS = ("overlap", "misfire", "maintenance")

BUILD_INFO = Gauge(
    "schedd_build_info", "Always 1; the version of schedd in its label.", ["version"], registry=REGISTRY,
)
RUNS = Counter(
    "schedd_runs", "Runs finished, by job family, outcome state and kind (scheduled fire or run now).",
    ["family", "state", "kind"], registry=REGISTRY,
)
FIRES = Counter(
    "schedd_fires", "Schedule fires handled (each due fire counts once), by family.",
    ["family"], registry=REGISTRY,
)
MISFIRES = Counter(
    "schedd_misfires", "Fires missed by more than the misfire grace, by family.",
    ["family"], registry=REGISTRY,
)
SKIPS = Counter(
    "schedd_skips", "Fires or runs skipped, by family and reason (overlap, misfire, maintenance).",
    ["family", "reason"], registry=REGISTRY,
)
START_DELAY = Histogram(
    "schedd_start_delay_seconds", "Actual start of a scheduled run minus its due time.",
    ["family"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "schedd_run_duration_seconds", "Duration of finished runs, by family.",
    ["family"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
HEAP_SIZE = Gauge("schedd_heap_timers", "Live timers in the engine heap.", registry=REGISTRY)
IN_FLIGHT = Gauge("schedd_runs_in_flight", "Runs executing now.", registry=REGISTRY)
QUEUED = Gauge("schedd_runs_queued", "Runs waiting for a concurrency slot.", registry=REGISTRY)
WRITER_BATCH = Histogram(
    "schedd_writer_batch_size", "Writes committed together in one transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=REGISTRY,
)
COMMIT_LATENCY = Histogram(
    "schedd_writer_commit_seconds", "Time to run and commit one group of writes.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "schedd_http_requests", "HTTP requests answered, by route and status code.",
    ["method", "route", "status"], registry=REGISTRY,
)
LIMITS = Counter(
    "schedd_limit_reached",
    "Times a configured limit was reached, by its config key: a create or run-now refused"
    " (quotas.max_schedules, quotas.max_jobs, quotas.min_interval, quotas.max_queued_runs),"
    " a fire skipped (quotas.max_queued_runs), or a run waiting for a slot"
    " (quotas.max_concurrent_runs: its org holds its share; scheduler.max_concurrent_runs: all are held);"
    " connections (server.max_connections: a connection waited for a slot; server.header_timeout,"
    " server.body_timeout: a slow client was closed; server.reserved_fds: accept() found no descriptor),"
    " logins (auth.login_max_failures: a 429; auth.login_budget: a login delayed) and bodies"
    " (server.max_body: a 413).",
    ["limit"], registry=REGISTRY,
)
SKIPS_COALESCED = Counter(
    "schedd_skips_coalesced",
    "Skips folded into the skip record just before them (same schedule and reason) instead of a new row.",
    ["family"], registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "schedd_http_request_seconds", "HTTP request handling time, by route.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)

CLOCK_JUMPS = Counter(
    "schedd_clock_jumps", "Wall-clock steps seen by the engine (the wall clock moved more or less"
    " than the monotonic clock between two turns), by direction.",
    ["direction"], registry=REGISTRY,
)
for _direction in ("forward", "backward"):
    CLOCK_JUMPS.labels(_direction)
CLOCK_LAST_JUMP = Gauge(
    "schedd_clock_last_jump_seconds", "Size of the last wall-clock step, signed (negative: back).",
    registry=REGISTRY,
)
HEAP_ENTRIES = Gauge(
    "schedd_heap_entries", "Entries in the engine heap, stale ones included (its memory).",
    registry=REGISTRY,
)
TASKS = Gauge("schedd_asyncio_tasks", "asyncio tasks alive in the daemon's event loop.", registry=REGISTRY)


LAST_SUCCESS = Gauge(
    "schedd_last_success_timestamp_seconds",
    "End of the latest successful run of the family (known from the database at start).",
    ["family"], registry=REGISTRY,
)
READY = Gauge("schedd_ready", "1 when /readyz answers ready (database, timers, engine loop), else 0.",
              registry=REGISTRY)
MAX_CONCURRENT = Gauge("schedd_max_concurrent_runs", "Concurrency slots ([scheduler] max_concurrent_runs).",
                       registry=REGISTRY)
DATABASE_SIZE = Gauge("schedd_database_size_bytes", "Size of the SQLite database file and its WAL.",
                      registry=REGISTRY)
FILESYSTEM_AVAIL = Gauge(
    "schedd_database_filesystem_avail_bytes",
    "Bytes available to schedd on the filesystem of the database.", registry=REGISTRY,
)
FILESYSTEM_SIZE = Gauge(
    "schedd_database_filesystem_size_bytes", "Size of the filesystem of the database.", registry=REGISTRY,
)
LEADER = Gauge(
    "schedd_leader", "1 while this instance holds the firing lease and fires the schedules, else 0 (a standby).",
    registry=REGISTRY,
)
LEASE_EPOCH = Gauge(
    "schedd_lease_epoch", "Epoch of the firing lease this instance holds or last held; it grows at every takeover.",
    registry=REGISTRY,
)
LEASE_RENEWALS = Counter(
    "schedd_lease_renewals", "Renewals of the firing lease by this instance, by outcome (ok, lost, error).",
    ["outcome"], registry=REGISTRY,
)
LEASE_TAKEOVERS = Counter(
    "schedd_lease_takeovers", "Times this instance took the firing lease and began to fire.", registry=REGISTRY,
)
for _outcome in ("ok", "lost", "error"):
    LEASE_RENEWALS.labels(_outcome)

BUILD_INFO.labels(__version__).set(1)


def declare_family(family: str) -> None:
    """Create a job family's series at 0 (the composition root calls it for each family it installs)."""
    FIRES.labels(family)
    MISFIRES.labels(family)
    for state in RUN_STATES:
        for kind in RUN_KINDS:
            RUNS.labels(family, state, kind)
    for reason in SKIP_REASONS:
        SKIPS.labels(family, reason)


def run_kind(due_at: float | None) -> str:
    """`scheduled` for a run of a due fire, `manual` for a run now."""
    return "manual" if due_at is None else "scheduled"


def observe_database(path: str) -> None:
    """Sizes of the database file (with its WAL) and of its filesystem, read at scrape time."""
    size = 0
    for name in (path, path + "-wal"):
        try:
            size += os.stat(name).st_size
        except OSError:
            pass
    DATABASE_SIZE.set(size)
    try:
        fs = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return
    FILESYSTEM_AVAIL.set(fs.f_bavail * fs.f_frsize)
    FILESYSTEM_SIZE.set(fs.f_blocks * fs.f_frsize)


def observe_commit(batch: int, seconds: float) -> None:
    WRITER_BATCH.observe(batch)
    COMMIT_LATENCY.observe(seconds)
