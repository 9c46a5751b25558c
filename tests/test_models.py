"""Each API shape is declared once (`families/*/shapes.py`, `api/models.py`), and so is each value.

The OpenAPI components are the models' generated schemas and nothing else; answers encode
byte for byte as the json module wrote the same dicts; a request model checks its fields
in the order it declares them; the identifier pattern, the default org, the one-of choice
and the time formats are each written in one place.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedd import config
from schedd.api import models, openapi
from schedd.errors import ValidationError
from schedd.families.cube_builds import shapes as cube_shapes
from schedd.families.org_maintenance import shapes as org_shapes
from schedd.families.service_jobs import shapes as job_shapes
from schedd import shapes

SCHEDD = Path(__file__).resolve().parent.parent / "schedd"


def sources() -> dict[str, str]:
    return {str(path.relative_to(SCHEDD.parent)): path.read_text() for path in sorted(SCHEDD.rglob("*.py"))}


def test_the_openapi_components_are_the_models_generated_schemas():
    _, generated = msgspec.json.schema_components(models.MODELS, ref_template="#/components/schemas/{name}")
    for model, required in models.REQUIRED_IN_REQUEST.items():
        generated[model.__name__]["required"] = list(required)
    assert openapi.document()["components"]["schemas"] == generated
    assert openapi.SCHEMAS is models.components()


def test_every_schema_a_route_names_is_a_model_and_every_model_is_used():
    text = json.dumps(openapi.document())
    named = set(re.findall(r'"#/components/schemas/(\w+)"', text))
    components = set(openapi.document()["components"]["schemas"])
    assert named <= components
    # every model is documented, and every documented one is reachable from a route or another model
    assert {model.__name__ for model in models.MODELS} <= components
    reachable = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(openapi.document()["paths"])))
    while True:
        more = {name for schema in reachable for name in re.findall(
            r'"#/components/schemas/(\w+)"', json.dumps(openapi.SCHEMAS[schema]))} - reachable
        if not more:
            break
        reachable |= more
    assert components - reachable == set()


def test_no_object_schema_is_written_by_hand_in_the_openapi_module():
    """The route table names models; the one object with properties it writes is an envelope's generic
    `response`/`result` narrowed to a model (`holding`)."""
    tree = ast.parse((SCHEDD / "api" / "openapi.py").read_text())
    lines = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Dict)
             for key in node.keys if isinstance(key, ast.Constant) and key.value == "properties"]
    holding = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "holding")
    assert [line for line in lines if not holding.lineno <= line <= (holding.end_lineno or 0)] == []


def test_the_identifier_pattern_and_the_default_org_are_defined_once():
    found = sources()
    pattern = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
    assert [path for path, text in found.items() if pattern in text] == ["schedd/values.py"]
    assert [path for path, text in found.items() if re.search(r"^DEFAULT_ORG\s*=", text, re.M)] == [
        "schedd/values.py"]
    assert [path for path, text in found.items() if re.search(r"^def _?choice\(", text, re.M)] == [
        "schedd/values.py"]


CONFIG_RECORDS = (config.ServerConfig, config.DatabaseConfig, config.SchedulerConfig, config.AuthConfig,
                  config.LoggingConfig, config.CommandExecutorConfig, config.MaintenanceExecutorConfig,
                  config.AggregateExecutorConfig, config.ScopeConfig, config.ServiceConfig, config.OrgQuotaConfig,
                  config.QuotasConfig)


def test_each_config_key_is_named_once_as_a_field_that_declares_its_default_and_check():
    source = (SCHEDD / "config.py").read_text()
    for record in CONFIG_RECORDS:
        for f in dataclasses.fields(record):
            if f.name in ("name", "orgs"):  # a table's own name; the [quotas.orgs.NAME] tables
                continue
            assert callable(f.metadata.get("check")), f"{record.__name__}.{f.name} declares no check"
            assert not re.search(rf"""\.get\(\s*["']{f.name}["']""", source), f"{f.name} is read by name"
    assert re.findall(r"def _(server|database|scheduler|auth|logging)\(", source) == []


def test_every_time_is_formatted_in_one_module():
    found = sources()
    formatting = re.compile(r"\.strftime\(|\.isoformat\(|time\.gmtime\(")
    assert [path for path, text in found.items() if formatting.search(text)] == ["schedd/timefmt.py"]


def test_pages_are_parsed_in_one_module():
    found = sources()
    assert [path for path, text in found.items() if re.search(r"""query_int\([^)]*["']page["']""", text)] == [
        "schedd/http/paging.py"]


TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
OPTIONAL = st.none() | TEXT


@given(TEXT, OPTIONAL, TEXT, st.booleans(), OPTIONAL, st.integers(-2**63, 2**63 - 1), st.integers(0, 2))
def test_a_model_encodes_as_the_json_module_wrote_its_dict(text, optional, trigger, active, error, code, which):
    run = org_shapes.MaintenanceRun(
        id=text, organizationId=optional, triggerType=trigger, creationTime=text, startTime=text, endTime=text,
        status="failed", errorInformation=(
            org_shapes.ErrorInformation(), org_shapes.ErrorInformation(message=text),
            org_shapes.ErrorInformation(message=text, exitCode=code, timeout=True))[which])
    schedule = cube_shapes.CubeSchedule(
        created_at=text, created_by_user=optional, cube_id=optional, full_build=active, job_id=text,
        latest_execution=cube_shapes.Execution(executedAt=text, id=trigger, jobId=text), organization_Id=optional,
        project_id=optional, time_expression=trigger, timezone=text, active=active,
        next_execution=optional)
    for value in (run, [run, run], schedule, cube_shapes.DesignEnvelope(
            response=schedule, status=cube_shapes.DesignStatus(i18n_message=text, message=error or ""))):
        assert shapes.encode(value) == json.dumps(
            msgspec.to_builtins(value), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def test_a_stored_document_is_answered_exactly_as_before_floats_and_lone_surrogates_too():
    job = job_shapes.Job(jobName="j", jobServiceInfo={"postData": {"n": 1e16, "x": 0.1, "t": "é"}},
                     jobFrequencyInfo={"frequencyType": 1, "extra": [1.5e-7]})
    assert shapes.encode(job) == json.dumps(msgspec.to_builtins(job), separators=(",", ":"),
                                            ensure_ascii=False).encode("utf-8")
    assert b'"n":1e+16' in shapes.encode(job)
    summary = models.Health(status="ok\ud800")  # type: ignore[arg-type]
    assert shapes.encode(summary) == b'{"status":"ok\\ud800"}'


@pytest.mark.parametrize(("body", "field", "reason"), [
    ({}, "userid", "is required"),
    ({"password": 5, "userid": 5}, "userid", "is required"),  # the first declared field, not the first sent
    ({"password": "", "userid": "a"}, "password", "is required"),
    ({"userid": "a", "password": ["x"]}, "password", "is required"),
])
def test_a_request_model_names_the_first_declared_field_that_fails(body, field, reason):
    with pytest.raises(ValidationError) as caught:
        shapes.read(models.Login, body)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_a_request_model_reads_the_fields_it_declares_and_ignores_others():
    assert shapes.read(models.Login, {"userid": "a", "password": "b", "extra": 1}) == models.Login(
        userid="a", password="b")
    assert shapes.read(models.Logout, {}).refresh_token is msgspec.UNSET
    assert shapes.read(models.Logout, {"refresh_token": None}).refresh_token is None
    with pytest.raises(ValidationError, match="refresh_token: must be a string"):
        shapes.read(models.Logout, {"refresh_token": 7})


async def test_login_through_http_names_the_first_declared_field(api):
    response, body = await api.call("POST", "/authService/accounts/login", None,
                                    json={"password": 1, "userid": 2})
    assert response.status == 400
    assert body == {"status": "FAIL", "result": {"field": "userid", "reason": "is required"},
                    "message": "userid is invalid", "token": None}


MAINTENANCE = "/aggregates/maintenance/scheduler/jobs/orgId/default"
CUBE = "/org/default/project/p1/cube/c1/aggregates-creation/scheduler"
CRON = "is required (a cron expression such as '0 0 4 ? * * *')"


@pytest.mark.parametrize(("body", "message"), [
    ({"scheduler_type": "x", "time_expression": 5, "timezone": 5}, "scheduler_type: must be 'time-based'"),
    ({"timezone": 5, "scheduler_type": True}, "scheduler_type: must be 'time-based'"),
    ({"timezone": 5}, f"time_expression: {CRON}"),
    ({"timezone": "UTC", "time_expression": "   "}, f"time_expression: {CRON}"),
    ({"timezone": 5, "time_expression": "0 0 4 ? * * *"}, "timezone: must be a string naming an IANA time zone"),
    ({"timezone": "Mars/Base", "time_expression": "0 0 4 ? * * *", "scheduler_type": ""},
     "timezone: unknown time zone 'Mars/Base'"),
])
async def test_a_maintenance_schedule_is_checked_by_its_shape_in_declared_order(api, body, message):
    response, answer = await api.call("POST", MAINTENANCE, json=body)
    assert (response.status, answer["status"]["code"]) == (400, 400)
    assert answer["status"]["message"].startswith(message), answer
    assert await api.core.store.schedules.list_family("maintenance") == []


@pytest.mark.parametrize(("body", "message"), [
    ({"time_expression": "0 0 4 ? * * *"}, "path: must be 'aggregate/create'"),
    ({"path": "aggregate/create", "full_build": "yes", "time_expression": 1}, "full_build: must be true or false"),
    ({"path": "aggregate/create", "full_build": 1}, "full_build: must be true or false"),
    ({"path": "aggregate/create", "full_build": "TRUE", "timezone": []}, f"time_expression: {CRON}"),
])
async def test_a_cube_schedule_is_checked_by_its_shape_in_declared_order(api, body, message):
    response, answer = await api.call("POST", CUBE, json=body)
    assert response.status == 400
    assert answer["status"]["message"].startswith(message), answer


@pytest.mark.parametrize(("sent", "kept"), [(False, False), ("false", False), ("", True), (None, True), ("True", True)])
async def test_a_cube_schedules_full_build_reads_as_before(api, sent, kept):
    body = {"path": "aggregate/create", "time_expression": "0 0 4 ? * * *", "full_build": sent}
    response, answer = await api.call("POST", CUBE, json=body)
    assert response.status == 200, answer
    assert answer["response"]["full_build"] is kept
