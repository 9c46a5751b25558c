"""Turns due timers and run-now requests into runs, and runs into durable records.

A run is committed (`inprogress`, or `queued` when it must wait) before its executor is
called, and its outcome is committed after; its `started_at` is the moment its executor
reports that the work started (the request written, the process spawned), or the moment
the executor was entered when it ended without starting any work. A fire that does not
run is committed as a `skipped` record with its reason, joined to the record of the skip
just before it when that was of the same kind (one record with a count, not one row per
fire). The policies
themselves live in `schedd.policy`; run slots are shared between orgs by `schedd.slots`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from schedd import metrics
from schedd.clock import Clock
from schedd.config import QuotasConfig
from schedd.cron import load_zone, parse
from schedd.engine import CRON, Engine
from schedd.errors import Conflict
from schedd.executors import Outcome, RunContext
from schedd.executors.registry import Executors
from schedd.families.base import FAMILIES, RunTarget
from schedd.ids import new_uid
from schedd.pages import PageCache, job_history, run_histories
from schedd.policy import SKIP_RECORD_SPAN, counts_as, history_level, plan_fires, queued_too_long, retry_delay
from schedd.quotas import QuotaExceeded, reached
from schedd.slots import Grant, SlotPool
from schedd.store import runs as run_store
from schedd.store.protocol import LeaseLost, Store
from schedd.store.runs import Fired
from schedd.store.schedules import Schedule
from schedd.timefmt import utc_precise

log = logging.getLogger("schedd.runner")

INTERRUPTED_BY_CRASH = "schedd stopped while the run was in progress (crash or kill); it did not finish"
INTERRUPTED_BY_SHUTDOWN = "schedd shut down before the run finished (shutdown_grace elapsed)"
LEASE_LOST = "not started: this instance lost the firing lease to another, which fires from now on"

Gate = Callable[[Schedule, float], int | None]
"""Returns the id of a maintenance window that blocks this job's runs at a time, or None."""
AfterRun = Callable[["Active", str], Awaitable[None]]
SkipRow = tuple[run_store.NewRun, run_store.SkipText]
"""A skip to record, with how its message reads once several fires share the record."""



@dataclass(eq=False)
class Active:
    """A run the runner is responsible for, from its record to its end."""

    uid: str
    family: str
    key: str
    trigger: str
    schedule: Schedule | None
    timeout: float
    org_id: str | None = None
    project_id: str | None = None
    cube_id: str | None = None
    full_build: bool | None = None
    due_at: float | None = None
    run_id: int = 0
    queued: bool = False
    slot: bool = False
    recorded: bool = False
    task: asyncio.Task[None] | None = None
    cancel_state: str | None = None
    cancel_reason: str | None = None
    started_at: float | None = None
    """When the executor started the work (its first attempt), once it said so."""
    state: str = "inprogress"
    extra: dict[str, object] = field(default_factory=dict)
    target: RunTarget = field(default_factory=RunTarget)
    """What the run carries to its executor, as its family worked it out (`Runner._new_active`)."""

    @property
    def strategy(self) -> str:
        return self.schedule.history_strategy if self.schedule else "MINIMAL"

    @property
    def tenant(self) -> str:
        """Whose share of the run slots this run takes: its org; "" for service jobs."""
        return self.org_id or ""

    def context(self, on_start: Callable[[], None] | None = None) -> RunContext:
        return RunContext(
            run_id=self.run_id, run_uid=self.uid, family=self.family, trigger=self.trigger,
            timeout=self.timeout, values=self.target.values, call=self.target.call, on_start=on_start,
        )


@dataclass(frozen=True, slots=True)
class RunRef:
    """What a run-now request answers: the new record's ids and first state."""

    id: int
    uid: str
    state: str
    window_id: int | None = None


class Runner:
    """Run lifecycle: policies, concurrency, timeouts, history strategies."""

    def __init__(
        self,
        store: Store,
        engine: Engine,
        executors: Executors,
        clock: Clock,
        *,
        max_concurrent: int = 64,
        misfire_grace: float = 60.0,
        misfire_max: int = 10,
        quotas: QuotasConfig | None = None,
        pages: PageCache | None = None,
    ) -> None:
        self.store = store
        self.pages = pages if pages is not None else PageCache()
        """Encoded history pages: every write to a run drops those of its histories."""
        self.engine = engine
        self.executors = executors
        self.clock = clock
        self.quotas = quotas or QuotasConfig()
        self.pool: SlotPool[Active] = SlotPool(max_concurrent, self._org_cap, self._org_line)
        self.misfire_grace = misfire_grace
        self.misfire_max = misfire_max
        self.gate: Gate | None = None
        self.after_run: list[AfterRun] = []
        self._active: dict[str, list[Active]] = {}
        self._waiting: dict[str, deque[Active]] = {}  # per overlap key, runs waiting their turn
        self._deferred: dict[int, str] = {}  # schedule id -> org, of orgs at their share of run slots
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = True
        self._starts: list[tuple[float, Active]] = []  # (started_at, run) not yet written
        self._start_writes: set[asyncio.Task[None]] = set()
        self.firing = True
        """Whether this instance fires the schedules (it holds the firing lease); API runs start either way."""
        self.may_fire: Callable[[], bool] = lambda: True
        """Whether the lease is still held by this instance's own reckoning, checked before a fire starts."""
        engine.on(CRON, self.on_cron_due)

    # -- start-up --------------------------------------------------------------------

    async def take_over(self, at: float, previous: str | None = None) -> int:
        """Start firing: close the runs left open by a crash (or by `previous`, the instance that fired
        before, and by instances that stopped) as interrupted, and arm every schedule from the store;
        returns how many runs were closed."""
        closed = await self.store.fires.interrupt_open(at, INTERRUPTED_BY_CRASH, previous=previous)
        for run_id, _, uid in closed:
            log.warning("action=run_interrupted run_id=%d run=%s reason=crash", run_id, uid)
        self.engine.clear(CRON)
        async for chunk in self.store.schedules.due_index():
            self.engine.add_unordered(CRON, chunk)
        self.engine.restore_order()
        self.firing = True
        metrics.HEAP_SIZE.set(len(self.engine))
        return len(closed)

    def step_down(self) -> None:
        """Stop firing (another instance holds the lease): every schedule's timer is disarmed here; runs
        already started finish, and API runs still start."""
        self.firing = False
        self.engine.clear(CRON)
        self._deferred.clear()
        metrics.HEAP_SIZE.set(len(self.engine))

    # -- scheduled fires -------------------------------------------------------------

    def arm(self, schedule: Schedule) -> None:
        """Keep the engine in step with a schedule that was created or changed."""
        if not self.firing:
            return  # the instance that fires hears of the change from the store
        if schedule.active and schedule.next_fire_at is not None:
            self.engine.set(CRON, schedule.id, schedule.next_fire_at)
        else:
            self.engine.cancel(CRON, schedule.id)
        metrics.HEAP_SIZE.set(len(self.engine))

    def disarm(self, schedule_id: int) -> None:
        """Stop a schedule's timer at once (deactivated or deleted: its runs may go with it)."""
        self.engine.cancel(CRON, schedule_id)
        self.pages.changed(job_history(schedule_id))
        self._deferred.pop(schedule_id, None)
        metrics.HEAP_SIZE.set(len(self.engine))

    async def on_cron_due(self, items: list[tuple[int, float]], at: float) -> None:
        """Fire a due batch: first the schedules of orgs below their share of run slots, then
        those of orgs at it (whose fires mostly wait or are skipped), so that an org with
        thousands of due schedules does not hold up the start of another org's few."""
        if not self._accepting or not self.firing:
            return
        first, later = self._lanes(items)
        if first:
            await self._fire(first, at)
        if later and self._accepting:
            await asyncio.sleep(0)  # the first lane's runs reach their executors before the rest is read
            await self._fire(later, at)

    def _lanes(self, items: list[tuple[int, float]]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        if not self._deferred:
            return items, []
        first: list[tuple[int, float]] = []
        later: list[tuple[int, float]] = []
        deferred = self._deferred
        at_share: dict[str, bool] = {}
        for item in items:
            tenant = deferred.get(item[0])
            if tenant is None:
                first.append(item)
                continue
            late = at_share.get(tenant)
            if late is None:
                late = at_share[tenant] = self._at_share(tenant)
            (later if late else first).append(item)
        return first, later

    def _at_share(self, tenant: str) -> bool:
        return self.pool.held(tenant) >= self.pool.cap(tenant)

    def _note_tenants(self, schedules: list[Schedule]) -> None:
        """Remember the schedules of orgs at their share once a batch is admitted (only those),
        to fire them after the rest next time."""
        at_share: dict[str, bool] = {}
        for schedule in schedules:
            tenant = schedule.org_id or ""
            late = at_share.get(tenant)
            if late is None:
                late = at_share[tenant] = self._at_share(tenant)
            if late:
                self._deferred[schedule.id] = tenant
            else:
                self._deferred.pop(schedule.id, None)

    async def _fire(self, items: list[tuple[int, float]], at: float) -> None:
        schedules = await self.store.schedules.get_many([ident for ident, _ in items])
        new_rows: list[tuple[run_store.NewRun, run_store.SkipText | None]] = []
        starts: list[tuple[int, Active]] = []  # (index into new_rows, run)
        next_fires: list[tuple[Schedule, float | None]] = []
        later: list[tuple[int, float]] = []  # handed over ahead while their job's previous run goes on
        for ident, due in items:
            schedule = schedules.get(ident)
            if schedule is None or not schedule.active:
                continue
            if due > at and self.busy(schedule.overlap_key):
                # Its overlap policy is applied at its due time, when that run may have ended.
                later.append((ident, due))
                continue
            # A batch handed over ahead of its due time (the engine's lead) is planned as of that time.
            plan = plan_fires(
                parse(schedule.cron), load_zone(schedule.timezone), due, max(at, due),
                policy=schedule.misfire_policy, grace=self.misfire_grace, max_catchup=self.misfire_max)
            next_fires.append((schedule, plan.next_fire_at))
            metrics.FIRES.labels(schedule.family).inc(len(plan.run_at) + plan.missed)
            if plan.missed:
                metrics.MISFIRES.labels(schedule.family).inc(plan.missed)
                metrics.SKIPS.labels(schedule.family, "misfire").inc()
                new_rows.append(self._skip_row(
                    schedule, plan.missed_first, at, "misfire", _misfire_text(schedule, self.misfire_grace),
                    fires=plan.missed, last_due=plan.missed_last))
            catch_up = len(plan.run_at) > 1
            for fire_at in plan.run_at:
                row, active = self._admit(
                    schedule, fire_at, at, FAMILIES.get(schedule.family).scheduled_trigger, in_order=catch_up)
                if row is not None:
                    if active is not None:
                        starts.append((len(new_rows), active))
                    new_rows.append(row)
        self._note_tenants([schedule for schedule, _ in next_fires])

        # The last run each schedule started in this batch, written with its next fire time.
        started = {a.schedule.id: (a.uid, a.state) for _, a in starts if a.schedule is not None}
        fired = [Fired(schedule.id, next_fire_at, started.get(schedule.id)) for schedule, next_fire_at in next_fires]

        try:
            ids, joined = await self.store.fires.record_fires(new_rows, fired, skip_since=at - SKIP_RECORD_SPAN, at=at)
            self._changed(*(row for row, _ in new_rows))
        except LeaseLost:
            # Another instance fires now and arms these schedules from the store: nothing was recorded.
            for _, active in starts:
                self._release(active)
            log.warning("action=fire_fenced schedules=%d", len(items))
            return
        except Exception as exc:
            # Nothing was recorded: release what was admitted, retry the fires shortly.
            for _, active in starts:
                self._release(active)
            log.error("action=fire_not_recorded schedules=%d error=%r", len(items), str(exc))
            await self.clock.sleep(1.0)
            for ident, due in items:
                if ident in schedules and schedules[ident].active:
                    self.engine.set(CRON, ident, due)
            return
        for family in joined:
            metrics.SKIPS_COALESCED.labels(family).inc()
        for index, active in starts:
            active.run_id = ids[index]
        for schedule, next_fire_at in next_fires:
            if next_fire_at is not None:
                self.engine.set(CRON, schedule.id, next_fire_at)
        metrics.HEAP_SIZE.set(len(self.engine))
        # A batch is handed over at most the lead before it is due: never wait longer than that,
        # whatever the wall clock does meanwhile (a step back would otherwise hold the runs).
        deadline = self.clock.monotonic() + self.engine.lead
        await self._dispatch_on_time([active for _, active in starts], deadline)
        if later:
            wait = min(max(due for _, due in later) - self.clock.now(), deadline - self.clock.monotonic())
            if wait > 0:
                await self.clock.sleep(wait)
            if self._accepting:
                await self._fire(later, max(self.clock.now(), max(due for _, due in later)))

    async def _dispatch_on_time(self, runs: list[Active], deadline: float) -> None:
        """Start recorded runs at their due time: at once for those already due (a batch
        handed over ahead of its due time waits for it here, already recorded), and all of
        them once the monotonic clock reaches `deadline`."""
        runs.sort(key=lambda active: active.due_at or 0.0)
        index, count = 0, len(runs)
        while index < count:
            wait = min((runs[index].due_at or 0.0) - self.clock.now(), deadline - self.clock.monotonic())
            if wait > 0:
                await self.clock.sleep(wait)
            now, late = self.clock.now(), self.clock.monotonic() >= deadline
            while index < count and ((runs[index].due_at or 0.0) <= now or late):
                self._dispatch(runs[index])
                index += 1

    def _skip_row(
        self, schedule: Schedule, due: float | None, at: float, reason: str, text: run_store.SkipText,
        *, fires: int = 1, last_due: float | None = None, window_id: int | None = None,
    ) -> SkipRow:
        first = due if due is not None else at
        last = last_due if last_due is not None else first
        row = run_store.NewRun(
            uid=new_uid(), family=schedule.family, overlap_key=schedule.overlap_key,
            trigger=FAMILIES.get(schedule.family).scheduled_trigger, state="skipped", created_at=at,
            schedule_id=schedule.id, org_id=schedule.org_id, project_id=schedule.project_id,
            cube_id=schedule.cube_id, full_build=schedule.full_build, cron=schedule.cron,
            due_at=due, fires=fires, ended_at=at, error=text(fires, first, last), skip_reason=reason,
            window_id=window_id, last_due_at=last_due)
        return row, text

    def _gated(self, schedule: Schedule, at: float) -> int | None:
        """The maintenance window blocking this job's runs at `at`, when the gate applies to its family."""
        if self.gate is None or not FAMILIES.get(schedule.family).gated:
            return None
        return self.gate(schedule, at)

    def _gate_skip(self, schedule: Schedule, due: float | None, at: float, window_id: int) -> SkipRow:
        """The skip of a fire (or run-now) the gate blocked; counted at once, recorded per history strategy."""
        metrics.SKIPS.labels(schedule.family, "maintenance").inc()
        return self._skip_row(
            schedule, due, at, "maintenance", _skip_text(f"service under maintenance window {window_id}"),
            window_id=window_id)

    def _new_active(
        self, family: str, key: str, trigger: str, *, schedule: Schedule | None, org_id: str | None,
        project_id: str | None, cube_id: str | None, full_build: bool | None,
        due_at: float | None = None, timeout: float | None = None,
    ) -> Active:
        """A new run, its target worked out by its family, with its timeout: the caller's, else
        its job's, else its executor's default."""
        active = Active(
            uid=new_uid(), family=family, key=key, trigger=trigger, schedule=schedule, timeout=0.0,
            org_id=org_id, project_id=project_id, cube_id=cube_id, full_build=full_build, due_at=due_at)
        active.target = FAMILIES.get(family).target(active)
        active.timeout = (timeout or (schedule.timeout if schedule else None)
                          or self.executors.timeout_for(family, active.target))
        return active

    def _admit(
        self, schedule: Schedule, due: float, at: float, trigger: str, *, in_order: bool = False
    ) -> tuple[tuple[run_store.NewRun, run_store.SkipText | None] | None, Active | None]:
        """Apply the gate and the overlap policy to one fire; returns its record and run.

        `in_order` marks fires of one catch-up (several due fires handled at once): they
        wait for each other instead of being skipped as overlaps.
        """
        family = schedule.family
        window_id = self._gated(schedule, at)
        if window_id is not None:
            skip = self._gate_skip(schedule, due, at, window_id)
            if history_level(schedule.history_strategy, "skipped") == "none":
                return None, None
            return skip, None
        key = schedule.overlap_key
        busy = self.busy(key)
        policy = "buffer_all" if in_order else schedule.overlap_policy
        if busy and (policy == "forbid" or (policy == "buffer_one" and self._waiting.get(key))):
            metrics.SKIPS.labels(family, "overlap").inc()
            if history_level(schedule.history_strategy, "skipped") == "none":
                return None, None
            return self._skip_row(
                schedule, due, at, "overlap",
                _skip_text(f"previous run still in progress (overlap_policy {policy})")), None
        replaced = list(self._active.get(key, ())) if busy and policy == "replace" else []
        active = self._new_active(
            family, key, trigger, schedule=schedule, org_id=schedule.org_id, project_id=schedule.project_id,
            cube_id=schedule.cube_id, full_build=schedule.full_build, due_at=due)
        if self._reserve(active, at, waits=busy and policy in ("buffer_one", "buffer_all")) is Grant.FULL:
            metrics.SKIPS.labels(family, "queue_full").inc()
            text = self._line_full(active, at)
            if history_level(schedule.history_strategy, "skipped") == "none":
                return None, None
            return self._skip_row(schedule, due, at, "queue_full", _skip_text(text)), None
        for running in replaced:
            self.cancel(running, "canceled", "replaced by a newer run (overlap_policy replace)")
        return (run_row(active, at), None), active

    # -- run now ---------------------------------------------------------------------

    async def run_now(
        self,
        family: str,
        key: str,
        trigger: str,
        *,
        at: float,
        schedule: Schedule | None = None,
        org_id: str | None = None,
        project_id: str | None = None,
        cube_id: str | None = None,
        full_build: bool | None = None,
        timeout: float | None = None,
    ) -> RunRef:
        """Start a run now; Conflict when a run for the same job is queued or in progress (on any
        instance, where several share the store)."""
        if self.busy(key) or (self.store.lease.shared and await self.store.runs.open_for_key(key)):
            raise Conflict("a run is already in progress for this job")
        if schedule is not None:
            org_id, project_id, cube_id = schedule.org_id, schedule.project_id, schedule.cube_id
            if full_build is None:
                full_build = schedule.full_build
            window_id = self._gated(schedule, at)
            if window_id is not None:
                return await self._record_skip_now(schedule, at, trigger, window_id)
        active = self._new_active(
            family, key, trigger, schedule=schedule, org_id=org_id, project_id=project_id,
            cube_id=cube_id, full_build=full_build, timeout=timeout)
        if self._reserve(active, at, waits=False) is Grant.FULL:
            raise QuotaExceeded("quotas.max_queued_runs", self._line_full(active, at) + "; try again later")
        row = run_row(active, at)

        try:
            active.run_id = await self.store.fires.start_now(row, schedule.id if schedule is not None else None)
        except BaseException:
            self._release(active)
            raise
        finally:
            self._changed(row)
        self._dispatch(active)
        return RunRef(active.run_id, active.uid, active.state)

    async def _record_skip_now(self, schedule: Schedule, at: float, trigger: str, window_id: int) -> RunRef:
        row, text = self._gate_skip(schedule, None, at, window_id)
        row = dataclasses.replace(row, trigger=trigger)
        if history_level(schedule.history_strategy, "skipped") == "none":
            return RunRef(0, row.uid, "skipped", window_id)

        try:
            run_id, joined = await self.store.fires.record_skip(row, text, since=at - SKIP_RECORD_SPAN)
        finally:
            self._changed(row)
        if joined:
            metrics.SKIPS_COALESCED.labels(schedule.family).inc()
        return RunRef(run_id, row.uid, "skipped", window_id)

    def _changed(self, *runs: Active | run_store.NewRun) -> None:
        """Runs were written: drop the kept history pages they appear in."""
        for run in runs:
            if isinstance(run, Active):
                schedule_id = run.schedule.id if run.schedule is not None else None
            else:
                schedule_id = run.schedule_id
            self.pages.changed(*run_histories(schedule_id, run.family, run.org_id))

    # -- concurrency -----------------------------------------------------------------

    def busy(self, key: str) -> bool:
        return bool(self._active.get(key)) or bool(self._waiting.get(key))

    @property
    def max_concurrent(self) -> int:
        return self.pool.total

    @max_concurrent.setter
    def max_concurrent(self, total: int) -> None:
        """A new limit on all runs (a reload); also re-reads the caps of `quotas`."""
        self._start_granted(self.pool.resize(total))

    def _org_cap(self, tenant: str) -> int:
        share = self.quotas.for_org(tenant or None).max_concurrent_runs
        return share if share is not None else max(1, self.pool.total // 2)

    def _org_line(self, tenant: str) -> int:
        return self.quotas.for_org(tenant or None).max_queued_runs

    def _reserve(self, active: Active, at: float, *, waits: bool) -> Grant | None:
        """Claim the overlap slot and a run slot or a place in line (synchronously).

        `waits`: the run waits for the run of its own job first (buffered overlap), None.
        Else what the pool granted; FULL leaves nothing claimed.
        """
        if waits:
            self._waiting.setdefault(active.key, deque()).append(active)
            active.queued, active.state = True, "queued"
            metrics.QUEUED.set(self.queued)
            return None
        grant = self.pool.acquire(active.tenant, active)
        if grant is Grant.FULL:
            return grant
        self._active.setdefault(active.key, []).append(active)
        if grant is Grant.SLOT:
            active.slot = True
        else:
            active.queued, active.state = True, "queued"
            self._held_back(active, grant, at)
        metrics.IN_FLIGHT.set(self.pool.in_use)
        metrics.QUEUED.set(self.queued)
        return grant

    def _held_back(self, active: Active, grant: Grant, at: float) -> None:
        if grant is Grant.WAIT_TENANT:
            reached("quotas.max_concurrent_runs", at,
                    f"{_tenant_name(active.tenant)} holds {self.pool.held(active.tenant)} run slots, its share")
        else:
            reached("scheduler.max_concurrent_runs", at, f"all {self.pool.total} run slots are held")

    def _line_full(self, active: Active, at: float) -> str:
        text = (f"{_tenant_name(active.tenant)} already has {self.pool.line(active.tenant)} runs waiting"
                f" for a run slot, the most [quotas] max_queued_runs allows")
        reached("quotas.max_queued_runs", at, text)
        return text

    def _release(self, active: Active) -> None:
        line = self._waiting.get(active.key)
        if line and active in line:
            line.remove(active)
            if not line:
                del self._waiting[active.key]
            return
        group = self._active.get(active.key)
        if group and active in group:
            group.remove(active)
            if not group:
                del self._active[active.key]
        if active.slot:
            active.slot = False
            self._start_granted(self.pool.release(active.tenant))
        else:
            self.pool.remove(active.tenant, active)
        metrics.IN_FLIGHT.set(self.pool.in_use)
        metrics.QUEUED.set(self.queued)

    def _start_granted(self, granted: list[Active]) -> None:
        """Waiting runs the pool gave a slot: start those recorded (the rest start when they are)."""
        for active in granted:
            active.slot = True
            if active.recorded:
                self._spawn(active, promoted=True)
        if granted:
            metrics.IN_FLIGHT.set(self.pool.in_use)
            metrics.QUEUED.set(self.queued)

    def _dispatch(self, active: Active) -> None:
        """Start a recorded run, or leave it waiting for its overlap or run slot."""
        active.recorded = True
        if active in self._waiting.get(active.key, ()):
            return
        if not active.queued:
            self._spawn(active)
        elif active.slot:
            self._spawn(active, promoted=True)

    def _spawn(self, active: Active, *, promoted: bool = False) -> None:
        """Run a recorded run in its own task; `promoted`: it waited, and records its start first."""
        body = self._promote(active) if promoted else self._execute(active)
        task = asyncio.create_task(body, name=f"run-{active.uid}")
        active.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _promote(self, active: Active) -> None:
        """A waiting run got its slot: record it started (or skipped, per its misfire policy), then run it."""
        at = self.clock.now()
        schedule = active.schedule
        if schedule is not None and queued_too_long(
                active.due_at, at, policy=schedule.misfire_policy, grace=self.misfire_grace):
            metrics.MISFIRES.labels(active.family).inc()
            error = (f"waited {at - (active.due_at or at):.0f} s for a run slot, more than misfire_grace"
                     f" {self.misfire_grace:g} s (misfire_policy skip)")
            await self._finish(active, Outcome(ok=False, error=error), "skipped", skip_reason="misfire")
            return
        try:
            started = await self.store.fires.mark_started(active.run_id, at)
            self._changed(active)
        except LeaseLost:
            started = False
        except Exception as exc:
            await self._finish(active, Outcome(ok=False, error=f"could not record the start: {exc}"), "failed")
            return
        if not started:  # closed by the instance that took over firing, which counted it
            await self._finish(active, Outcome(ok=False, error=LEASE_LOST), "interrupted")
            return
        active.queued, active.state = False, "inprogress"
        await self._execute(active)

    def _after_release(self, key: str) -> None:
        """The next run waiting for `key`'s previous run takes its place, and a run slot or a place in line."""
        line = self._waiting.get(key)
        if not line or self._active.get(key) or not self._accepting:
            return
        waiting = line.popleft()
        if not line:
            del self._waiting[key]
        self._active.setdefault(key, []).append(waiting)
        # Already recorded as queued: it takes its place in line even past the line's bound.
        if self.pool.acquire(waiting.tenant, waiting, force=True) is Grant.SLOT:
            self._start_granted([waiting])
        metrics.IN_FLIGHT.set(self.pool.in_use)
        metrics.QUEUED.set(self.queued)

    def cancel(self, active: Active, state: str, reason: str) -> None:
        active.cancel_state, active.cancel_reason = state, reason
        if active.task is not None:
            active.task.cancel()

    # -- executing -------------------------------------------------------------------

    async def _execute(self, active: Active) -> None:
        if active.due_at is not None and not self.may_fire():
            log.warning("action=fire_not_started run=%s reason=lease_lost", active.uid)
            await self._finish(active, Outcome(ok=False, error=LEASE_LOST), "interrupted")
            return
        started = self.clock.now()
        log.info("action=run_start run=%s family=%s trigger=%s", active.uid, active.family, active.trigger)
        attempt = 1
        retries = active.schedule.retries if active.schedule else 0
        while True:
            outcome, state = await self._attempt(active)
            if state != "failed" or attempt > retries or active.cancel_state is not None:
                break
            await self.clock.sleep(retry_delay(attempt))
            attempt += 1
        if active.started_at is None:  # the executor ended without starting any work
            self._note_start(active, started)
        metrics.RUN_DURATION.labels(active.family).observe(max(0.0, self.clock.now() - started))
        await self._finish(active, outcome, state, attempt=attempt)

    def _note_start(self, active: Active, at: float | None = None) -> None:
        """The executor started the run's work: its `started_at` and start delay, written
        with the other starts of this loop turn (one write for all of them)."""
        if active.started_at is not None:  # a retry: the first attempt's start counts
            return
        at = self.clock.now() if at is None else at
        active.started_at = at
        if active.due_at is not None:
            metrics.START_DELAY.labels(active.family).observe(max(0.0, at - active.due_at))
        if not active.run_id:
            return
        self._starts.append((at, active))
        if len(self._starts) == 1:
            task = asyncio.create_task(self._write_starts(), name="schedd-run-starts")
            self._start_writes.add(task)
            task.add_done_callback(self._start_writes.discard)

    async def _write_starts(self) -> None:
        rows, self._starts = self._starts, []
        try:
            await self.store.fires.record_starts([(at, active.run_id) for at, active in rows])
        except Exception as exc:  # the outcome's write records each start again
            log.error("action=starts_not_recorded runs=%d error=%r", len(rows), str(exc))
        finally:
            self._changed(*(active for _, active in rows))

    async def _attempt(self, active: Active) -> tuple[Outcome, str]:
        ctx = active.context(lambda: self._note_start(active))
        executor = self.executors.get(ctx)
        try:
            async with asyncio.timeout(active.timeout):
                outcome = await executor.run(ctx)
        except TimeoutError:
            return Outcome(ok=False, error=f"timeout after {active.timeout:g} s", timed_out=True), "failed"
        except asyncio.CancelledError:
            if active.cancel_state is None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return Outcome(ok=False, error=active.cancel_reason), active.cancel_state
        except Exception as exc:
            log.exception("action=executor_crashed run=%s", active.uid)
            return Outcome(ok=False, error=f"executor failed: {exc}"), "failed"
        return outcome, "done" if outcome.ok else "failed"

    async def _finish(
        self, active: Active, outcome: Outcome, state: str, *, attempt: int = 1, skip_reason: str | None = None
    ) -> None:
        at = self.clock.now()
        level = history_level(active.strategy, state)
        finish = run_store.Finish(
            state=state, started_at=active.started_at, ended_at=at, attempt=attempt, error=outcome.error,
            exit_code=outcome.exit_code, timed_out=outcome.timed_out,
            request_payload=outcome.request_payload if level == "full" else None,
            response_status=outcome.response_status,
            response_body=outcome.response_body if level == "full" else None,
            complete=level == "full", skip_reason=skip_reason)
        ok, failed = counts_as(state)
        schedule_id = active.schedule.id if active.schedule else None

        outcome_row = None if schedule_id is None else run_store.Outcome(
            schedule_id, ok=bool(ok), counted=bool(ok or failed), status=state, run_uid=active.uid, at=at)
        try:
            await self.store.fires.finish(active.run_id, None if level == "none" else finish, outcome_row)
        except Exception as exc:
            # The run stays open in the database and is closed as interrupted at start-up.
            log.error("action=finish_not_recorded run=%s state=%s error=%r", active.uid, state, str(exc))
        finally:
            self._changed(active)
        active.state = state
        if skip_reason is not None:
            metrics.SKIPS.labels(active.family, skip_reason).inc()
        else:
            metrics.RUNS.labels(active.family, state, metrics.run_kind(active.due_at)).inc()
        log.info(
            "action=run_end run=%s family=%s state=%s error=%r", active.uid, active.family, state,
            outcome.error or "")
        self._release(active)
        self._after_release(active.key)
        for hook in self.after_run:
            try:
                await hook(active, state)
            except Exception:
                log.exception("action=after_run_failed run=%s", active.uid)

    # -- shutdown --------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self.pool.in_use

    @property
    def queued(self) -> int:
        return self.pool.waiting + sum(len(line) for line in self._waiting.values())

    async def wait_idle(self) -> None:
        """Wait until no run is executing or waiting, and their starts are written (tests)."""
        while self._tasks or self._start_writes:
            await asyncio.gather(*self._tasks, *self._start_writes, return_exceptions=True)

    async def shutdown(self, grace: float) -> tuple[int, int]:
        """Stop starting runs, let running ones finish within `grace`, interrupt the rest.

        Returns (finished, interrupted).
        """
        self._accepting = False
        waiting = self.pool.drain() + [a for line in self._waiting.values() for a in line]
        self._waiting.clear()
        running = [t for t in self._tasks if not t.done()]
        finished = interrupted = 0
        if running:
            done, pending = await asyncio.wait(running, timeout=grace)
            finished = len(done)
            for group in list(self._active.values()):
                for active in list(group):
                    if active.task in pending:
                        self.cancel(active, "interrupted", INTERRUPTED_BY_SHUTDOWN)
                        interrupted += 1
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for active in waiting:
            if active.run_id:
                await self._finish(active, Outcome(ok=False, error=INTERRUPTED_BY_SHUTDOWN), "interrupted")
                interrupted += 1
        return finished, interrupted


def run_row(active: Active, at: float) -> run_store.NewRun:
    """The record of a run admitted at `at`, tied to its job if any; `started_at` comes when its
    executor starts the work."""
    schedule = active.schedule
    return run_store.NewRun(
        uid=active.uid, family=active.family, overlap_key=active.key, trigger=active.trigger,
        state=active.state, created_at=at, schedule_id=schedule.id if schedule else None,
        org_id=active.org_id, project_id=active.project_id, cube_id=active.cube_id,
        full_build=active.full_build, cron=schedule.cron if schedule else None, due_at=active.due_at)


def _tenant_name(tenant: str) -> str:
    return f"organization {tenant}" if tenant else "service jobs"


def _skip_text(reason: str) -> run_store.SkipText:
    """A skip's message: its reason, and how many fires the record holds once it holds several."""

    def text(fires: int, first: float, last: float) -> str:
        if fires == 1:
            return reason
        return f"{reason}; {fires} fires skipped, due {utc_precise(first)} to {utc_precise(last)}"

    return text


def _misfire_text(schedule: Schedule, grace: float) -> run_store.SkipText:
    def text(fires: int, first: float, last: float) -> str:
        return (f"missed {fires} fire(s) due {utc_precise(first)} to {utc_precise(last)}"
                f" (misfire_policy {schedule.misfire_policy}, grace {grace:g} s)")

    return text
