"""The fire path: a run's start is its executor's own start, and a batch handed over ahead of
its due time is recorded before it and started at it."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone

import pytest

from schedd import config as config_mod
from schedd import metrics
from schedd.clock import TestClock
from schedd.compose import build_core
from schedd.executors import Outcome, RunContext, ServiceCall, started
from schedd.executors.command import CommandExecutor
from schedd.executors.registry import Executors
from tests.support.runner import add_schedule, finish_all, history, make_config

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def clock():
    return TestClock(T0)


@pytest.fixture
async def core(tmp_path, clock):
    c = build_core(make_config(), db_path=str(tmp_path / "f.db"), clock=clock)
    await c.start(run_loop=False)
    yield c
    if c.store.is_open:
        await c.stop()


def start_delay(family: str) -> tuple[float, float]:
    """(sum, count) of the start-delay histogram of a family."""
    return (metrics.REGISTRY.get_sample_value("schedd_start_delay_seconds_sum", {"family": family}) or 0.0,
            metrics.REGISTRY.get_sample_value("schedd_start_delay_seconds_count", {"family": family}) or 0.0)


class SlowToStart:
    """Takes `before` seconds of the test clock before its work starts (a wait for a connection,
    a slow spawn), says so unless `silent`, then ends."""

    def __init__(self, clock: TestClock, before: float, *, silent: bool = False, ok: bool = True) -> None:
        self.clock, self.before, self.silent, self.ok = clock, before, silent, ok

    async def run(self, ctx: RunContext) -> Outcome:
        self.clock.advance(self.before)
        if not self.silent:
            started(ctx)
        self.clock.advance(1.0)  # the work itself
        return Outcome(ok=self.ok, error=None if self.ok else "refused")


async def test_started_at_is_when_the_executor_started_the_work_and_the_histogram_observes_it(core, clock):
    core.executors.get = lambda ctx: SlowToStart(clock, 2.5)  # type: ignore[method-assign]
    schedule = await add_schedule(core, "0 * * * * ?")
    before_sum, before_count = start_delay("maintenance")
    clock.set(T0 + 60)
    await finish_all(core)
    [run] = await history(core, schedule)
    assert (run.state, run.due_at, run.started_at, run.ended_at) == ("done", T0 + 60, T0 + 62.5, T0 + 63.5)
    after_sum, after_count = start_delay("maintenance")
    assert (after_count - before_count, after_sum - before_sum) == (1, pytest.approx(2.5))


async def test_a_run_whose_executor_never_started_work_is_recorded_started_when_it_was_entered(core, clock):
    core.executors.get = lambda ctx: SlowToStart(clock, 2.0, silent=True, ok=False)  # type: ignore[method-assign]
    schedule = await add_schedule(core, "0 * * * * ?")
    before_sum, before_count = start_delay("maintenance")
    clock.set(T0 + 60)
    await finish_all(core)
    [run] = await history(core, schedule)
    assert (run.state, run.started_at, run.ended_at) == ("failed", T0 + 60, T0 + 63)
    after_sum, after_count = start_delay("maintenance")
    assert (after_count - before_count, after_sum - before_sum) == (1, pytest.approx(0.0))


async def test_a_run_in_progress_shows_its_start_once_the_executor_started(core, clock):
    release = asyncio.Event()

    class Holding:
        async def run(self, ctx: RunContext) -> Outcome:
            clock.advance(0.75)
            started(ctx)
            await release.wait()
            return Outcome(ok=True)

    core.executors.get = lambda ctx: Holding()  # type: ignore[method-assign]
    schedule = await add_schedule(core, "0 * * * * ?")
    clock.set(T0 + 60)
    await core.engine.run_until_idle()
    for _ in range(100):  # no time passes: the start is written in the next group commit
        [run] = await history(core, schedule)
        if run.started_at is not None:
            break
        await asyncio.sleep(0)
        await core.store.flush()
    assert (run.state, run.started_at) == ("inprogress", T0 + 60.75)
    release.set()
    await finish_all(core)
    [run] = await history(core, schedule)
    assert (run.state, run.started_at) == ("done", T0 + 60.75)


async def test_the_http_executor_starts_when_its_request_is_written(upstream):
    config = config_mod.from_dict({"services": {"svc": {"base_url": str(upstream.make_url("/api"))}}})
    executors = Executors(config)
    await executors.start()
    try:
        starts: list[int] = []
        ctx = RunContext(run_id=1, run_uid="r1", family="service", trigger="Scheduled", timeout=5,
                         call=ServiceCall("svc", "ping", "{}"),
                         on_start=lambda: starts.append(len(upstream.calls)))
        outcome = await executors.service("svc").run(ctx)
        assert outcome.ok, outcome
        assert starts == [0]  # once, before the service answered
        refused = RunContext(run_id=2, run_uid="r2", family="service", trigger="Scheduled", timeout=5,
                             call=ServiceCall("svc", "..", "{}"),
                             on_start=lambda: starts.append(-1))
        assert not (await executors.service("svc").run(refused)).ok
        assert starts == [0]  # a request refused before it left never started
    finally:
        await executors.close()


async def test_the_http_executor_keeps_each_jobs_request_apart(upstream):
    seen: list[tuple[str, str | None]] = []
    config = config_mod.from_dict({"services": {"svc": {"base_url": str(upstream.make_url("/api"))}}})
    executors = Executors(config)
    await executors.start()
    try:
        for op, header in (("a", "1"), ("a", "2"), ("b", "1"), ("a", "1")):
            ctx = RunContext(run_id=1, run_uid="r", family="service", trigger="Scheduled", timeout=5,
                             call=ServiceCall("svc", op, "{}", {"X-N": header}))
            outcome = await executors.service("svc").run(ctx)
            assert outcome.ok, outcome
            seen.append((op, header))
        assert upstream.calls == ["/api/a", "/api/a", "/api/b", "/api/a"]
    finally:
        await executors.close()


async def test_the_command_executor_starts_once_its_process_is_spawned(tmp_path):
    starts: list[str] = []
    ctx = RunContext(run_id=1, run_uid="r1", family="maintenance", trigger="Manual", timeout=5,
                     on_start=lambda: starts.append("spawned"))
    assert (await CommandExecutor((sys.executable, "-c", "pass"), "executors.maintenance.command").run(ctx)).ok
    assert starts == ["spawned"]
    missing = RunContext(run_id=2, run_uid="r2", family="maintenance", trigger="Manual", timeout=5,
                         on_start=lambda: starts.append("missing"))
    outcome = await CommandExecutor((str(tmp_path / "nope"),), "executors.maintenance.command").run(missing)
    assert not outcome.ok and starts == ["spawned"]


async def test_the_loop_records_a_batch_ahead_of_its_due_time_and_starts_it_at_that_time(tmp_path, clock):
    core = build_core(make_config(fire_lead=0.5), db_path=str(tmp_path / "lead.db"), clock=clock)
    await core.start(run_loop=True)
    entered: list[float] = []

    class Noting:
        async def run(self, ctx: RunContext) -> Outcome:
            entered.append(clock.now())
            started(ctx)
            return Outcome(ok=True)

    core.executors.get = lambda ctx: Noting()  # type: ignore[method-assign]
    try:
        schedule = await add_schedule(core, "0 * * * * ?")
        await clock.parked()  # the loop sleeps until the lead of T0 + 60
        clock.set(T0 + 59.6)
        await clock.parked(2)  # the loop, and the batch waiting for its due time
        [run] = await history(core, schedule)
        assert (run.state, run.due_at, run.started_at, run.created_at) == ("inprogress", T0 + 60, None, T0 + 59.6)
        assert entered == []
        assert core.engine.due_of(0, schedule.id) == T0 + 120
        clock.set(T0 + 60)
        await core.engine.drain()  # the batch's handler: it starts the run at its due time
        await core.runner.wait_idle()
        assert entered == [T0 + 60]
        [run] = await history(core, schedule)
        assert (run.state, run.started_at) == ("done", T0 + 60)
    finally:
        await core.stop()


async def test_a_crash_after_a_batch_was_recorded_ahead_leaves_its_runs_interrupted(tmp_path, clock):
    path = str(tmp_path / "crash.db")
    core = build_core(make_config(fire_lead=0.5), db_path=path, clock=clock)
    await core.start(run_loop=True)
    schedule = await add_schedule(core, "0 * * * * ?")
    await clock.parked()
    clock.set(T0 + 59.8)
    await clock.parked(2)
    [run] = await history(core, schedule)
    assert run.state == "inprogress"
    await core.store.close()  # as if killed before the due time: no shutdown bookkeeping
    core.engine.stop()
    for task in list(core.engine._tasks):  # the batch waiting for its due time dies with the process
        task.cancel()
    await core.engine.drain()
    await core.executors.close()

    again = build_core(make_config(), db_path=path, clock=clock)
    await again.start(run_loop=False)
    try:
        after = await again.store.runs.get_by_uid(run.uid)
        assert (after.state, after.started_at) == ("interrupted", None)
    finally:
        await again.stop()


def test_the_lead_is_bounded():
    assert config_mod.from_dict({}).scheduler.fire_lead == 0.1
    assert config_mod.from_dict({"scheduler": {"fire_lead": 0}}).scheduler.fire_lead == 0.0
    with pytest.raises(config_mod.ConfigError, match="scheduler.fire_lead"):
        config_mod.from_dict({"scheduler": {"fire_lead": 2}})


async def test_a_fire_handed_over_while_its_jobs_last_run_goes_on_is_decided_at_its_due_time(tmp_path, clock):
    core = build_core(make_config(fire_lead=0.5), db_path=str(tmp_path / "busy.db"), clock=clock)
    await core.start(run_loop=True)
    release = asyncio.Event()
    entered: list[float] = []

    class FirstHolds:
        async def run(self, ctx: RunContext) -> Outcome:
            entered.append(clock.now())
            started(ctx)
            if len(entered) == 1:
                await release.wait()
            return Outcome(ok=True)

    core.executors.get = lambda ctx: FirstHolds()  # type: ignore[method-assign]
    try:
        schedule = await add_schedule(core, "* * * * * ?")  # every second; overlap policy forbid
        await clock.parked()
        clock.set(T0 + 1)  # the first run starts and holds
        await clock.parked()
        async with asyncio.timeout(5):  # no time passes: the run's task takes its first step
            while not entered:
                await asyncio.sleep(0)
        clock.set(T0 + 1.6)  # the fire due at T0 + 2 is handed over while the first run goes on
        async with asyncio.timeout(5):
            await clock.parked(2)  # the loop, and that fire waiting for its due time
        release.set()  # the first run ends before T0 + 2
        await core.runner.wait_idle()
        clock.set(T0 + 2)
        await core.engine.drain()
        await core.runner.wait_idle()
        runs = await history(core, schedule)
        assert [(r.due_at, r.state) for r in runs] == [(T0 + 1, "done"), (T0 + 2, "done")]
        assert entered == [T0 + 1, T0 + 2]
    finally:
        await core.stop()


async def test_a_clock_stepped_back_while_a_batch_waits_for_its_due_time_holds_it_no_longer_than_the_lead(
        tmp_path, clock):
    core = build_core(make_config(fire_lead=0.5), db_path=str(tmp_path / "step.db"), clock=clock)
    await core.start(run_loop=True)
    entered: list[float] = []

    class Noting:
        async def run(self, ctx: RunContext) -> Outcome:
            entered.append(clock.now())
            started(ctx)
            return Outcome(ok=True)

    core.executors.get = lambda ctx: Noting()  # type: ignore[method-assign]
    try:
        schedule = await add_schedule(core, "0 * * * * ?")
        await clock.parked()
        clock.set(T0 + 59.6)  # the batch of T0 + 60 is recorded and waits for its due time
        async with asyncio.timeout(5):
            await clock.parked(2)
        clock.step(-1800)  # the wall clock goes 30 minutes back; no time passes
        clock.advance(0.5)  # the lead's worth of time passes: the run starts, half an hour "early"
        async with asyncio.timeout(5):
            while not entered:
                await asyncio.sleep(0)
        await core.runner.wait_idle()
        [run] = await history(core, schedule)
        assert (run.state, run.due_at) == ("done", T0 + 60)
        assert entered == [T0 + 60.1 - 1800]
    finally:
        await core.stop()
