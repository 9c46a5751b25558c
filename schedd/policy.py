"""The rules of the runner as pure functions of their inputs and `at`.

Misfires: a fire whose due time passed by more than `grace` is missed. `fire_once` runs
the latest missed fire once (Quartz's smart policy) unless a fire within grace runs
anyway; `skip` runs none of them; `fire_all` runs the last `max_catchup` in order
(Temporal's catch-up window). Every fire that does not run is counted in one misfire
record, so each due fire is accounted for exactly once. A run queued for a run slot
longer than `grace` past its due time is a misfire too: `skip` records it skipped when
its turn comes, `fire_once` and `fire_all` run it late.

Skips: consecutive skips of one schedule with the same reason share one record (its
`fires` counts them) for up to `SKIP_RECORD_SPAN`; then a new record begins, so that
history retention, which goes by a record's creation time, drops old skips as it drops
old runs.

Clock steps: the wall clock moved more or less than the monotonic clock between two
engine turns. A step forward is handled like downtime, by the misfire rules above. A step
backward brings no fire back: armed timers keep their due times, so they wait until the
clock catches up, and a schedule whose timing is recomputed counts from `fire_floor`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from schedd.cron import CronExpr
from schedd.states import FAILED_RUN_STATES, HistoryStrategy, MisfirePolicy, OverlapPolicy, RunState, values

MISFIRE_POLICIES = values(MisfirePolicy)
OVERLAP_POLICIES = values(OverlapPolicy)
HISTORY_STRATEGIES = values(HistoryStrategy)
FAILED_STATES = FAILED_RUN_STATES

# Past this many missed fires, counting stops and the schedule jumps to its next fire.
MAX_COUNTED_MISSES = 1_000_000
# How long after its first skip a skip record still takes in the next ones (seconds).
SKIP_RECORD_SPAN = 86400.0


CLOCK_STEP_MIN = 1.0
"""Seconds of disagreement between the wall and monotonic clocks that make a step."""
CLOCK_STEP_LARGE = 3 * 3600.0
"""From this size on, cronie treats a backward step as a clock reset; schedd still keeps its floor."""


@dataclass(frozen=True, slots=True)
class FirePlan:
    run_at: tuple[float, ...]
    """Due times to run now, oldest first."""
    missed: int
    """Fires that will not run, recorded as one misfire record."""
    missed_first: float | None
    missed_last: float | None
    next_fire_at: float | None


def plan_fires(
    cron: CronExpr,
    tz: ZoneInfo,
    due: float,
    at: float,
    *,
    policy: str,
    grace: float,
    max_catchup: int,
) -> FirePlan:
    """Decide what a timer due at `due` and handled at `at` runs, misses and fires next."""
    on_time: list[float] = []
    late: deque[float] = deque(maxlen=max(1, max_catchup))
    missed = 0
    first: float | None = None
    fire: float | None = due
    for fire in _fires_from(cron, tz, due):
        if fire > at:
            break
        if at - fire > grace:
            missed += 1
            first = fire if first is None else first
            late.append(fire)
            if missed >= MAX_COUNTED_MISSES:
                fire = cron.next_after(at, tz)
                break
        else:
            on_time.append(fire)
    else:
        fire = None
    next_fire_at = fire if fire is not None and fire > at else None

    if policy == "fire_all":
        catch_up = list(late)[-max_catchup:] if max_catchup > 0 else []
    elif policy == "fire_once" and missed and not on_time:
        catch_up = [late[-1]]
    else:
        catch_up = []
    not_run = missed - len(catch_up)
    last_not_run = None
    if not_run:
        kept = set(catch_up)
        tail = [f for f in late if f not in kept]
        last_not_run = tail[-1] if tail else first
    return FirePlan(
        run_at=tuple(catch_up + on_time),
        missed=not_run,
        missed_first=first if not_run else None,
        missed_last=last_not_run,
        next_fire_at=next_fire_at,
    )


def _fires_from(cron: CronExpr, tz: ZoneInfo, due: float):
    yield due
    yield from cron.iter_after(due, tz)


def clock_step(
    wall: tuple[float, float], mono: tuple[float, float], *, threshold: float = CLOCK_STEP_MIN
) -> float:
    """Seconds the wall clock stepped between two readings (negative: back), 0.0 when it did not.

    `wall` and `mono` are (before, after) readings of the wall and monotonic clocks. The
    wall clock's advance beyond the monotonic clock's is the step: a suspended host and a
    clock set ahead look alike (the monotonic clock does not count a suspension).
    """
    step = (wall[1] - wall[0]) - (mono[1] - mono[0])
    return step if abs(step) >= threshold else 0.0


def fire_floor(at: float, handled_until: float, last_run_at: float | None = None) -> float:
    """The time a schedule's recomputed next fire counts from: `at`, or later when the clock
    stepped back behind a time already handled (by the engine, or by the schedule's last
    run), so no due time that was handled comes back."""
    return max(at, handled_until, last_run_at if last_run_at is not None else at)


def queued_too_long(due: float | None, at: float, *, policy: str, grace: float) -> bool:
    """Whether a scheduled run that waited for a run slot until `at` is skipped as a misfire."""
    return due is not None and policy == "skip" and at - due > grace


def history_level(strategy: str, state: str) -> str:
    """What a finished run keeps under its job's strategy: "none", "minimal" or "full"."""
    if strategy == HistoryStrategy.OFF:
        return "none"
    if strategy == HistoryStrategy.ERROR:
        return "minimal" if state in FAILED_STATES else "none"
    if strategy == HistoryStrategy.FULL:
        return "full"
    return "minimal"


def counts_as(state: str) -> tuple[int, int]:
    """(success, failure) increments of a job's counters for a run that ended in `state`."""
    if state == RunState.DONE:
        return 1, 0
    if state in FAILED_STATES:
        return 0, 1
    return 0, 0


def retry_delay(attempt: int) -> float:
    """Exponential backoff before retry number `attempt` (1-based): 1, 2, 4 ... 300 s."""
    return float(min(300, 2 ** (attempt - 1)))
