"""Schemathesis against the real daemon's /api/openapi.json: no 5xx, every answer as documented.

Every operation gets one request aimed at real data (made just before), then generated valid
and invalid requests, and valid ones whose path names that real data. Each answer must have a
documented status, content type, headers and body; none may be a server error. The examples
are derandomized and bounded for CI; SCHEDD_FUZZ_EXAMPLES raises them for a longer local run.
"""

from __future__ import annotations

import collections
import os
import re
import sys

import pytest
import tomli_w

from schedd.api import openapi
from tests.support.daemon import PASSWORD, Daemon, schedd

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")
requests = pytest.importorskip("requests")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402  (after the skip)
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("SCHEDD_FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
CRON = "0 0 4 ? * * *"
JOB = {"jobName": "fuzzed", "jobFrequency": CRON, "jobStatus": "Active", "historyStrategy": "FULL",
       "jobServiceInfo": {"serviceName": "jsonservices", "serviceType": "intSer", "operationName": "op",
                          "serviceExecutionType": "SERVER_URL", "postData": "{}"}}
WINDOW = {"scope": 1, "service": 10, "name": "fuzzed", "service_status": "down",
          "scheduled_start_date": "2030-02-01T10:00", "scheduled_end_date": "2030-02-01T11:00"}
VALID_BODIES = {
    "createMaintenanceSchedule": {"time_expression": CRON, "scheduler_type": "time-based"},
    "createCubeSchedule": {"time_expression": CRON, "path": "aggregate/create"},
    "executeBuild": {"full_build": True},
    "login": {"userid": "ops", "password": PASSWORD},
    "createJob": JOB,
    "createMaintenance": WINDOW,
    "updateMaintenance": {**WINDOW, "status": "canceled"},
    "commentMaintenance": {"comment": "fuzzed", "internal": 1},
}

totals: collections.Counter[str] = collections.Counter()


class Target:
    """The daemon under test, an admin token, and a way to make fresh data to aim at."""

    def __init__(self, daemon: Daemon, token: str) -> None:
        self.daemon = daemon
        self.token = token
        self.base = f"http://127.0.0.1:{daemon.port}"
        self.session = requests.Session()
        self.made = 0
        self.schema = schemathesis.openapi.from_url(self.base + "/api/openapi.json")

    def call(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        return self.session.request(method, self.base + path, json=body, allow_redirects=False, timeout=10,
                                    headers={"X-VoltMX-Authorization": self.token})

    def fresh_ids(self) -> dict[str, object]:
        """A schedule of each family, a job with a run and a window, made now: their path ids."""
        maint = self.call("POST", "/aggregates/maintenance/scheduler/jobs/orgId/default",
                          {"time_expression": CRON}).json()["response"]["job_id"]
        cube = self.call("POST", "/org/default/project/p1/cube/c1/aggregates-creation/scheduler",
                         VALID_BODIES["createCubeSchedule"]).json()["response"]["job_id"]
        self.made += 1
        made = self.call("POST", "/admin/api/jobs/job", {**JOB, "jobName": f"fuzzed {self.made}"})
        job = made.headers["Location"].rsplit("/", 1)[1]
        run = self.call("POST", f"/admin/api/jobs/job/run/{job}").headers["Location"].rsplit("/", 1)[1]
        window = self.call("POST", "/api/maintenance/create", WINDOW).headers["Location"].rsplit("/", 1)[1]
        return {"orgId": "default", "projectId": "p1", "cubeId": "c1", "maintenanceJob": maint, "cubeJob": cube,
                "adminJob": job, "jobRunId": run, "id": int(window)}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    harmless = [sys.executable, "-c", "pass"]
    daemon = Daemon(tmp, harmless)
    daemon.config.write_bytes(tomli_w.dumps({
        "scheduler": {"shutdown_grace": "2s"},
        "executors": {"maintenance": {"command": harmless, "timeout": "60s"},
                      "aggregate": {"command": harmless, "timeout": "60s"}},
        "scopes": {"platform": {"id": 1}},
        # Port 9 (discard) refuses the connection: service calls fail at once, as recorded runs.
        "services": {"jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform",
                                      "timeout": "2s"}},
    }).encode())
    out = schedd("user", "add", "ops", "--admin", "--password-stdin", "--db", daemon.db,
                 "--config", str(daemon.config), stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    daemon.start()
    try:
        yield Target(daemon, daemon.login())
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop()


def _path_ids(op: openapi.Op, ids: dict[str, object]) -> dict[str, object]:
    names = re.findall(r"\{(\w+)\}", op.path)
    known = {name: ids[name] for name in names if name in ids}
    if "id" in names and not op.path.startswith("/api/maintenance"):
        known["id"] = 1 if op.path.startswith("/api/scope") else 10  # the config's scope and service
    if "jobId" in names:
        family = "adminJob" if op.tag == "jobs" else "maintenanceJob" if "maintenance" in op.path else "cubeJob"
        known["jobId"] = ids[family]
    return known


def _deletes_last(op: openapi.Op) -> bool:
    return op.method == "DELETE" or op.path.endswith("/delete")


def _generate(strategy, check) -> None:
    """Call `check` on EXAMPLES cases drawn from `strategy`, the same ones on every run."""

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case) -> None:
        check(case)

    try:
        run()
    except Unsatisfiable:
        pass  # nothing to make invalid: no parameter and no body


OPERATIONS = sorted(openapi.operations(), key=_deletes_last)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_every_operation_answers_as_documented_and_never_5xx(target, op):
    operation = target.schema[op.path][op.method]
    failures: dict[str, str] = {}
    # Logout revokes the token it is called with: it gets one of its own.
    token = target.daemon.login() if op.op_id == "logout" else target.token

    def check(case, label: str) -> int | None:
        totals["examples"] += 1
        try:
            response = case.call_and_validate(base_url=target.base, session=target.session, checks=CHECKS,
                                              headers={"X-VoltMX-Authorization": token}, timeout=10)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis groups distinct failures
            totals["failures"] += 1
            failures.setdefault(f"{label}: {str(exc).splitlines()[0]}", str(exc))
            return None
        return response.status_code

    ids = _path_ids(op, target.fresh_ids())
    valid = VALID_BODIES.get(op.op_id.removesuffix("V1"))
    if op.op_id == "updateJob":
        valid = {**JOB, "jobName": "fuzzed, updated", "jobId": target.fresh_ids()["adminJob"]}
    media = "application/x-www-form-urlencoded" if op.op_id == "login" else "application/json"
    aimed = operation.Case(path_parameters=ids, **({"body": valid, "media_type": media} if valid else {}))
    status = check(aimed, "aimed at real data")
    assert status is None or status < 400 or status == 409, f"{op.method} {op.path} with real data: {status}"

    strategies = [("valid", operation.as_strategy(GenerationMode.POSITIVE)),
                  ("invalid", operation.as_strategy(GenerationMode.NEGATIVE))]
    if ids:
        strategies.append(("valid, real ids", operation.as_strategy(GenerationMode.POSITIVE, path_parameters=ids)))
    for label, strategy in strategies:
        _generate(strategy, lambda case, label=label: check(case, label))
    totals["operations"] += 1
    assert not failures, "\n\n".join(failures.values())


def test_the_daemon_survived_and_logged_no_internal_error(target):
    response = target.call("GET", "/healthz")
    assert response.status_code == 200
    log = target.daemon.log.read_text()
    assert "action=request_failed" not in log and "Traceback" not in log, log[-5000:]
    print(f"\nfuzzed {totals['operations']} operations with {totals['examples']} requests, "
          f"{totals['failures']} failing")
