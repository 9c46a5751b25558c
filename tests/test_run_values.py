"""What a run carries to its executor is worked out by its family: named values for a
command (placeholders and `SCHEDD_<NAME>` variables), a `ServiceCall` for an HTTP call."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from schedd import config as config_mod
from schedd.clock import TestClock
from schedd.compose import build_core, install_families
from schedd.executors import ServiceCall
from schedd.families.base import RunTarget
from schedd.families.cube_builds.family import FAMILY as CUBE_BUILDS
from schedd.families.org_maintenance.family import FAMILY as ORG_MAINTENANCE
from schedd.families.service_jobs.family import FAMILY as SERVICE_JOBS

install_families()

PROJECT = "7051865d-74a8-4aad-4904-ebf88d56880c"
CUBE = "dea39a20-9920-4a79-51f3-1ff3a399fbd3"
EXECUTE = f"/org/acme/project/{PROJECT}/cube/{CUBE}/aggregates-creation/execute"
RUN_NOW = "/api/1.0/aggregates/maintenance/orgId/acme/run-immediately"
EXPORTED = ("ORG_ID", "PROJECT_ID", "CUBE_ID", "FULL_BUILD", "RUN_ID", "TRIGGER", "FAMILY")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()


@dataclass
class Run:
    """The fields of a run a family reads (`schedd.families.base.RunFields`)."""

    schedule: Any = None
    org_id: str | None = None
    project_id: str | None = None
    cube_id: str | None = None
    full_build: bool | None = None


# --- each family's target ---------------------------------------------------------------


@pytest.mark.parametrize("full_build, shown", [(True, "true"), (False, "false")])
def test_a_cube_build_gives_its_org_project_cube_and_kind(full_build, shown):
    target = CUBE_BUILDS.target(Run(org_id="o", project_id="p", cube_id="c", full_build=full_build))
    assert target == RunTarget(values={"org_id": "o", "project_id": "p", "cube_id": "c", "full_build": shown})
    assert list(target.values) == ["org_id", "project_id", "cube_id", "full_build"]
    assert target.call is None


def test_a_cube_build_leaves_out_what_the_run_has_no_value_for():
    target = CUBE_BUILDS.target(Run(org_id="o", project_id="p", cube_id="c"))
    assert target.values == {"org_id": "o", "project_id": "p", "cube_id": "c"}


def test_org_maintenance_gives_its_org_only():
    run = Run(org_id="acme", project_id="p", cube_id="c", full_build=True)
    assert ORG_MAINTENANCE.target(run) == RunTarget(values={"org_id": "acme"})
    assert ORG_MAINTENANCE.target(Run()) == RunTarget()


@pytest.mark.parametrize("post_data, body", [
    ('{"a": 1}', '{"a": 1}'),                      # a string is sent as it is
    ({"a": [1, "é"]}, '{"a":[1,"\\u00e9"]}'),       # JSON is sent compact, ASCII
    (None, None),
])
def test_a_service_job_gives_its_call(post_data, body):
    info = {"serviceName": "svc", "operationName": "v1/items", "requestheaderMap": {"X-A": "1"}}
    if post_data is not None:
        info["postData"] = post_data
    schedule = SimpleNamespace(spec={"jobServiceInfo": info})
    target = SERVICE_JOBS.target(Run(schedule=schedule, org_id="ignored"))
    assert target == RunTarget(call=ServiceCall("svc", "v1/items", body, {"X-A": "1"}))
    assert target.values == {}


def test_a_service_job_without_its_info_calls_no_configured_service():
    target = SERVICE_JOBS.target(Run())
    assert target == RunTarget(call=ServiceCall(""))


def test_a_service_jobs_timeout_and_executor_come_from_its_calls_service():
    from schedd.executors.registry import Executors, Refuse

    config = config_mod.from_dict({"services": {"svc": {"base_url": "http://127.0.0.1:9/api", "timeout": 7}}})
    pool = Executors(config)
    call = ServiceCall("svc", "x")
    assert SERVICE_JOBS.timeout(pool, RunTarget(call=call)) == 7
    assert SERVICE_JOBS.timeout(pool, RunTarget(call=ServiceCall("unknown"))) == 30
    assert SERVICE_JOBS.timeout(pool, RunTarget()) == 30
    ctx = SimpleNamespace(call=call)
    assert SERVICE_JOBS.executor(pool, ctx) is pool.service("svc")  # type: ignore[arg-type]
    refused = SERVICE_JOBS.executor(pool, SimpleNamespace(call=None))  # type: ignore[arg-type]
    assert isinstance(refused, Refuse) and refused.error.startswith("unknown service ''")


# --- what a command of each command family gets -------------------------------------------


def recorder(out) -> list[str]:
    """A command that writes its arguments and its SCHEDD_ environment to `out`."""
    script = ("import json, os, sys; open(sys.argv[1], 'w').write(json.dumps({'argv': sys.argv[2:],"
              " 'env': {k: v for k, v in os.environ.items() if k.startswith('SCHEDD_')}}))")
    return [sys.executable, "-c", script, str(out)]


@pytest.fixture
def stale_environment(monkeypatch):
    """The daemon's own environment holds every variable schedd exports, and one it does not."""
    for name in [n for n in os.environ if n.startswith("SCHEDD_")]:  # e.g. SCHEDD_CI
        monkeypatch.delenv(name)
    for name in EXPORTED:
        monkeypatch.setenv(f"SCHEDD_{name}", "stale")
    monkeypatch.setenv("SCHEDD_TEST_INHERITED", "yes")


async def test_a_maintenance_run_gets_its_org_and_nothing_of_a_build(make_api, tmp_path, stale_environment):
    out = tmp_path / "seen.json"
    api = await make_api(executors={"maintenance": {"command": [*recorder(out), "{org_id}", "{run_id}"]}})
    response, _ = await api.call("POST", RUN_NOW, "alice")
    assert response.status == 200
    await api.settle()
    run_id = response.headers["X-Run-Id"]
    seen = json.loads(out.read_text())
    assert seen["argv"] == ["acme", run_id]
    assert seen["env"] == {"SCHEDD_TEST_INHERITED": "yes", "SCHEDD_RUN_ID": run_id,
                           "SCHEDD_TRIGGER": "ManualMaintenance", "SCHEDD_FAMILY": "maintenance",
                           "SCHEDD_ORG_ID": "acme"}


@pytest.mark.parametrize("full_build, shown", [(True, "true"), (False, "false")])
async def test_a_cube_build_gets_its_cube_and_kind(make_api, tmp_path, stale_environment, full_build, shown):
    out = tmp_path / "seen.json"
    api = await make_api(executors={"aggregate": {"command": [
        *recorder(out), "{org_id}", "{project_id}", "{cube_id}", "{full_build}", "{run_id}"]}})
    response, body = await api.call("POST", EXECUTE, "alice", json={"full_build": full_build})
    assert response.status == 200, body
    await api.settle()
    run_id = body["response"]["id"]
    seen = json.loads(out.read_text())
    assert seen["argv"] == ["acme", PROJECT, CUBE, shown, run_id]
    assert seen["env"] == {"SCHEDD_TEST_INHERITED": "yes", "SCHEDD_RUN_ID": run_id,
                           "SCHEDD_TRIGGER": "ManualBuild", "SCHEDD_FAMILY": "aggregate",
                           "SCHEDD_ORG_ID": "acme", "SCHEDD_PROJECT_ID": PROJECT,
                           "SCHEDD_CUBE_ID": CUBE, "SCHEDD_FULL_BUILD": shown}


async def test_a_value_the_run_lacks_is_neither_filled_nor_inherited(tmp_path, stale_environment):
    out = tmp_path / "seen.json"
    config = config_mod.from_dict({"database": {"synchronous": "OFF"}, "executors": {
        "aggregate": {"command": [*recorder(out), "{cube_id}"]},
        "maintenance": {"after_first_build": False}}})
    core = build_core(config, db_path=str(tmp_path / "v.db"), clock=TestClock(T0))
    await core.start(run_loop=False)
    try:
        ref = await core.runner.run_now(CUBE_BUILDS.name, "k", "ManualBuild", at=T0, org_id="o", project_id="p",
                                        cube_id="c")  # no full_build: the run has no value for it
        await core.runner.wait_idle()
        assert json.loads(out.read_text()) == {"argv": ["c"], "env": {
            "SCHEDD_TEST_INHERITED": "yes", "SCHEDD_RUN_ID": ref.uid, "SCHEDD_TRIGGER": "ManualBuild",
            "SCHEDD_FAMILY": "aggregate", "SCHEDD_ORG_ID": "o", "SCHEDD_PROJECT_ID": "p", "SCHEDD_CUBE_ID": "c"}}

        core.executors.replace_config(config_mod.from_dict({"executors": {
            "aggregate": {"command": [*recorder(out), "{full_build}"]}}}))
        ref = await core.runner.run_now(CUBE_BUILDS.name, "k", "ManualBuild", at=T0, org_id="o", project_id="p",
                                        cube_id="c")
        await core.runner.wait_idle()
        run = await core.store.runs.get_by_uid(ref.uid)
        assert (run.state, run.error) == (
            "failed", "executors.aggregate.command: placeholder {full_build} has no value for this run")
    finally:
        await core.stop()
