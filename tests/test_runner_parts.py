"""The runner's pure parts: the run-row builder, the gate check and the retention arithmetic."""

from __future__ import annotations

import pytest

from schedd import config as config_mod
from schedd.clock import TestClock
from schedd.compose import build_core
from schedd.retention import first_sweep_at, retention_cutoff
from schedd.runner import Active, run_row
from schedd.store.schedules import Schedule
from tests.support.api import T0


@pytest.fixture
async def core(tmp_path):
    c = build_core(config_mod.from_dict({}), db_path=str(tmp_path / "parts.db"), clock=TestClock(T0))
    await c.start(run_loop=False)
    yield c
    await c.stop()


def schedule(family: str = "service", **kw) -> Schedule:
    fields = dict(
        id=7, uid="s7", family=family, org_id=None, project_id=None, cube_id=None, name="job",
        description=None, cron="0 * * * * ?", cron_normalized="0 * * * * ?", timezone="UTC",
        full_build=None, spec={}, active=True, next_fire_at=None, misfire_policy="skip",
        overlap_policy="forbid", timeout=None, retries=0, history_strategy="MINIMAL", retention_days=30,
        success_count=0, fail_count=0, last_run_uid=None, last_run_at=None, last_run_status=None,
        created_by=None, created_at=T0, updated_by=None, updated_at=T0)
    fields.update(kw)
    return Schedule(**fields)


def test_a_run_that_starts_at_once_is_recorded_in_progress_and_tied_to_its_job_its_start_left_to_its_executor():
    job = schedule("aggregate", org_id="acme", project_id="p", cube_id="c", full_build=True)
    active = Active(uid="u1", family="aggregate", key="aggregate:acme:p:c", trigger="TimeBasedBuild",
                    schedule=job, timeout=60.0, org_id="acme", project_id="p", cube_id="c",
                    full_build=True, due_at=T0 - 5)
    row = run_row(active, T0)
    assert (row.uid, row.family, row.overlap_key, row.trigger, row.state) == (
        "u1", "aggregate", "aggregate:acme:p:c", "TimeBasedBuild", "inprogress")
    assert (row.schedule_id, row.cron, row.due_at, row.created_at, row.started_at) == (
        7, "0 * * * * ?", T0 - 5, T0, None)
    assert (row.org_id, row.project_id, row.cube_id, row.full_build) == ("acme", "p", "c", True)


def test_a_run_that_waits_is_recorded_queued_without_a_start():
    active = Active(uid="u2", family="service", key="service:7", trigger="Scheduled", schedule=schedule(),
                    timeout=60.0, due_at=T0)
    active.queued, active.state = True, "queued"
    row = run_row(active, T0 + 1)
    assert (row.state, row.started_at, row.created_at) == ("queued", None, T0 + 1)


def test_a_run_without_a_job_has_no_job_id_nor_cron():
    active = Active(uid="u3", family="maintenance", key="maintenance:acme", trigger="Manual", schedule=None,
                    timeout=60.0, org_id="acme")
    row = run_row(active, T0)
    assert (row.schedule_id, row.cron, row.due_at, row.org_id, row.started_at) == (None, None, None, "acme", None)


def test_the_gate_is_asked_only_for_the_families_it_applies_to(core):
    asked: list[int] = []

    def gate(job: Schedule, at: float) -> int | None:
        asked.append(job.id)
        return 3

    core.runner.gate = gate
    assert core.runner._gated(schedule("service"), T0) == 3
    assert core.runner._gated(schedule("aggregate", id=8), T0) is None
    assert core.runner._gated(schedule("maintenance", id=9), T0) is None
    assert asked == [7]
    core.runner.gate = None
    assert core.runner._gated(schedule("service"), T0) is None


def test_the_first_sweep_comes_a_minute_in_or_sooner_when_the_interval_is_shorter():
    assert first_sweep_at(T0, 3600.0) == T0 + 60
    assert first_sweep_at(T0, 30.0) == T0 + 30


def test_the_retention_cutoff_is_whole_days_back():
    assert retention_cutoff(T0, 1) == T0 - 86400
    assert retention_cutoff(T0, 30) == T0 - 30 * 86400
