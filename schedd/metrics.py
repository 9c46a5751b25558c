"""Every Prometheus instrument of schedd, defined once, in one registry.

No instrument is labelled by job id: 100k jobs must not mean 100k series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

FAMILIES = ("maintenance", "aggregate", "service")

RUNS = Counter(
    "schedd_runs", "Runs finished, by job family and outcome state.",
    ["family", "state"], registry=REGISTRY,
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
    " (quotas.max_concurrent_runs: its org holds its share; scheduler.max_concurrent_runs: all are held).",
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


def observe_commit(batch: int, seconds: float) -> None:
    WRITER_BATCH.observe(batch)
    COMMIT_LATENCY.observe(seconds)
