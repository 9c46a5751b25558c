"""Service job and maintenance window requests are checked by the models that document them.

Each bound the API enforces is the one the model declares (read here from the generated
schema, then sent one over through HTTP); Prod-Manager answers every field's reasons at
once in the model's check order, Volt MX the first fault in its own order; forms send
numbers as text and "" for absent. `schedd.shapes.check` is tested on its own below.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import pytest
from msgspec import UNSET, Meta, UnsetType

from schedd import grants, shapes
from schedd.api import openapi
from schedd.errors import ValidationError
from schedd.families.maintenance_windows import shapes as window_shapes
from schedd.families.maintenance_windows.service import Windows
from schedd.families.service_jobs import shapes as job_shapes
from tests.support.api import T0
from tests.support.jobs import JOBS, job, services

SCHEMAS = openapi.document()["components"]["schemas"]
SCHEDD = Path(__file__).resolve().parent.parent / "schedd"


def bound(model: str, field: str, keyword: str) -> int:
    """A keyword (maxLength, maximum...) of a field of a model's generated schema, through anyOf."""
    schema = SCHEMAS[model]["properties"][field]
    for option in (schema, *schema.get("anyOf", ())):
        if keyword in option:
            return option[keyword]
    raise AssertionError(f"{model}.{field} declares no {keyword}")


# -- service jobs (Volt MX): one over each declared bound is a 400 naming the field -------------

@pytest.fixture
async def jobs_api(make_api, service):
    return await make_api(services=services(service))


def _service(**changes: Any) -> dict[str, Any]:
    return {f"jobServiceInfo__{key}": value for key, value in changes.items()}


def _text(limit: int) -> str:
    return "a" * limit


JOB_BOUNDS = [
    # (model, field, keyword, the field the API names, the body at a given value)
    ("Job", "jobName", "maxLength", "jobName", lambda n: job(jobName=_text(n))),
    ("Job", "description", "maxLength", "description", lambda n: job(description=_text(n))),
    ("Job", "retentionPeriod", "maximum", "retentionPeriod", lambda n: job(retentionPeriod=n)),
    ("Job", "retentionPeriod", "maximum", "retentionPeriod", lambda n: job(retentionPeriod=str(n))),
    ("JobServiceInfo", "version", "maxLength", "jobServiceInfo.version", lambda n: job(**_service(version=_text(n)))),
    ("JobServiceInfo", "objectName", "maxLength", "jobServiceInfo.objectName",
     lambda n: job(**_service(objectName=_text(n)))),
    ("JobServiceInfo", "operationSecurityLevel", "maxLength", "jobServiceInfo.operationSecurityLevel",
     lambda n: job(**_service(operationSecurityLevel=_text(n)))),
    ("JobServiceInfo", "requestheaderMap", "maxProperties", "jobServiceInfo.requestheaderMap",
     lambda n: job(**_service(requestheaderMap={f"X-H{i}": "v" for i in range(n)}))),
]


@pytest.mark.parametrize(("model", "field", "keyword", "named", "body"), JOB_BOUNDS,
                         ids=[f"{m}.{f}.{k}" for m, f, k, _, _ in JOB_BOUNDS])
async def test_each_job_bound_the_api_enforces_is_the_one_its_model_declares(
        jobs_api, model, field, keyword, named, body):
    limit = bound(model, field, keyword)
    response, answer = await jobs_api.call("POST", JOBS, json=body(limit))
    assert response.status == 200, answer
    response, answer = await jobs_api.call("POST", JOBS, json=body(limit + 1))
    assert response.status == 400, answer
    assert answer["status"] == "FAIL" and answer["result"]["field"] == named, answer
    assert answer["message"] == f"{named} is invalid"


def _header_bounds() -> tuple[int, int]:
    """The header name and value bounds, from the declaration of `requestheaderMap`."""
    declared = {f.encode_name: f for f in msgspec.structs.fields(job_shapes.JobServiceInfo)}
    headers = msgspec.inspect.type_info(declared["requestheaderMap"].type)
    found = next(t for t in headers.types if isinstance(t, msgspec.inspect.DictType))
    return found.key_type.max_length, found.value_type.max_length


async def test_the_header_bounds_are_the_declared_ones_and_worded_as_volt_mx_words_them(jobs_api):
    name_limit, value_limit = _header_bounds()
    assert (name_limit, value_limit) == (job_shapes.MAX_HEADER_NAME, job_shapes.MAX_HEADER_VALUE)
    ok = {"X-" + "n" * (name_limit - 2): "v" * value_limit}
    response, answer = await jobs_api.call("POST", JOBS, json=job(**_service(requestheaderMap=ok)))
    assert response.status == 200, answer
    cases = [
        ({"X-" + "n" * (name_limit - 1): "v"}, f"header names must be at most {name_limit} characters"),
        ({"X-A": "v", "X-B": "v" * (value_limit + 1)}, f"header 'X-B': the value must be at most {value_limit} characters"),
        ({"X-A": 5}, "header 'X-A': the value must be a string"),
    ]
    for headers, reason in cases:
        response, answer = await jobs_api.call("POST", JOBS, json=job(jobName="h", **_service(requestheaderMap=headers)))
        assert response.status == 400
        assert answer["result"] == {"field": "jobServiceInfo.requestheaderMap", "reason": reason}


@pytest.mark.parametrize(("changes", "field", "reason"), [
    # several faults: the first in Volt MX's order is answered, model and family checks interleaved
    ({"jobName": 7, "description": 5, "jobStatus": "x"}, "jobName", "must be a string"),
    ({"jobName": "   ", "retentionPeriod": 0}, "jobName", "must be 1-100 characters, not only spaces"),
    ({"jobName": "a\nb"}, "jobName", "must not contain control characters"),
    ({"jobName": ""}, "jobName", "is required"),
    ({"description": "a\x01", "jobFrequency": 5}, "description", "must not contain control characters"),
    ({"jobFrequency": "every hour", "jobServiceInfo__serviceType": "x", "jobStatus": 1}, "jobFrequency", None),
    ({"jobServiceInfo__serviceName": 5, "jobServiceInfo__serviceType": "x"}, "jobServiceInfo.serviceName",
     "must name a [services.NAME] of the config (jsonservices)"),
    ({"jobServiceInfo__serviceName": "", "jobServiceInfo__serviceType": "x"}, "jobServiceInfo.serviceName",
     "is required"),
    ({"jobServiceInfo__serviceType": "x", "jobServiceInfo__operationName": "../x"}, "jobServiceInfo.serviceType",
     "must be one of intSer, objSer, orchSer"),
    ({"jobServiceInfo__operationName": "a?b", "jobServiceInfo__requestheaderMap": 5},
     "jobServiceInfo.operationName", "operationName 'a?b': must be 1-200 characters of A-Z a-z 0-9 . _ ~ / -"),
    ({"jobServiceInfo__requestheaderMap": {"Host": "x"}, "jobServiceInfo__version": 5},
     "jobServiceInfo.requestheaderMap", "header 'Host' may not be set"),
    ({"jobServiceInfo__version": [1], "jobStatus": "Paused"}, "jobServiceInfo.version", "must be a string"),
    ({"jobStatus": "active", "historyStrategy": "ALL"}, "jobStatus", "must be one of Active, Inactive"),
    ({"historyStrategy": 5, "retentionPeriod": "x"}, "historyStrategy", None),
    ({"retentionPeriod": "0000000030"}, "retentionPeriod", "must be a whole number of days (1-3650)"),
    ({"retentionPeriod": " 3651 "}, "retentionPeriod", "3651 is out of range 1-3650 days"),
    ({"retentionPeriod": True}, "retentionPeriod", "must be a whole number of days (1-3650)"),
])
async def test_a_job_answers_its_first_fault_in_volt_mx_order(jobs_api, changes, field, reason):
    response, answer = await jobs_api.call("POST", JOBS, json=job(**changes))
    assert response.status == 400, answer
    assert answer["result"]["field"] == field, answer
    if reason is not None:
        assert answer["result"]["reason"] == reason


@pytest.mark.parametrize(("changes", "kept"), [
    ({"retentionPeriod": " 7 "}, ("7", "Active", "OFF")),
    ({"retentionPeriod": "", "jobStatus": "", "historyStrategy": None}, ("30", "Active", "MINIMAL")),
    ({"retentionPeriod": 3650, "jobStatus": "Inactive"}, ("3650", "Inactive", "OFF")),
])
async def test_a_job_reads_text_numbers_and_blank_fields_as_before(jobs_api, changes, kept):
    response, answer = await jobs_api.call("POST", JOBS, json=job(**changes))
    assert response.status == 200, answer
    response, body = await jobs_api.call("GET", response.headers["Location"])
    assert (body["retentionPeriod"], body["jobStatus"], body["historyStrategy"]) == kept


def test_the_families_state_no_bound_of_their_own():
    """The limits and their wording live in the models; the body validators name none of them."""
    source = (SCHEDD / "families" / "service_jobs" / "service.py").read_text()
    for name in ("MAX_NAME", "MAX_DESCRIPTION", "MAX_TEXT", "MAX_HEADER", "RETENTION_RANGE", "SERVICE_TYPES",
                 "EXECUTION_TYPE", "HISTORY_STRATEGIES", "must be a string", "must be one of"):
        assert name not in source, name
    source = inspect.getsource(Windows.validate) + inspect.getsource(Windows.comment)
    for name in ("LIMITS[", "10_000", "must be an integer id", "Must be a string", "Value must be one of",
                 "Must be 0 or 1"):
        assert name not in source, name


# -- maintenance windows (Prod-Manager): every field's reasons at once -------------------------

SCOPES = {"platform": {"id": 1}}
SERVICE_CONFIG = {"jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"}}
FORM = {"scope": "1", "service": "10", "name": "Upgrade", "service_status": "down",
        "scheduled_start_date": "2026-01-01T03:00", "scheduled_end_date": "2026-01-01T05:00"}


@pytest.fixture
async def windows_api(make_api):
    api = await make_api(scheduler={"timezone": "UTC"}, scopes=SCOPES, services=SERVICE_CONFIG)
    await grants.grant(api.core.store, "alice", grants.Scope(1, None), at=T0)
    return api


async def _create(api, body: dict[str, Any], *, form: bool = True):
    kwargs = {"data": body} if form else {"json": body}
    return await api.call("POST", "/api/maintenance/create", "alice", allow_redirects=False, **kwargs)


@pytest.mark.parametrize("field", list(window_shapes.LIMITS))
async def test_each_window_bound_the_api_enforces_is_the_one_its_model_declares(windows_api, field):
    limit = bound("MaintenanceInput", field, "maxLength")
    text = "https://x.example/" + "a" * (limit - 18) if field == "external_link" else "a" * limit
    response, answer = await _create(windows_api, {**FORM, field: text})
    assert response.status == 302, answer
    response, answer = await _create(windows_api, {**FORM, field: text + "a"})
    assert response.status == 400
    assert answer == {"message": "Invalid request", "reasons": {field: [f"Must be at most {limit} characters."]}}


async def test_a_comment_bound_is_the_one_its_model_declares(windows_api):
    response, _ = await _create(windows_api, FORM)
    path = response.headers["Location"]
    limit = bound("Comment", "comment", "maxLength")
    response, answer = await windows_api.call("POST", f"{path}/comment", "alice", data={"comment": "a" * limit},
                                              allow_redirects=False)
    assert response.status == 302, answer
    for body, reasons in [
        ({"comment": "a" * (limit + 1)}, {"comment": [f"Must be at most {limit} characters."]}),
        ({"comment": " " * (limit + 1)}, {"comment": ["This field is required."]}),
        ({"comment": "", "internal": "2"}, {"comment": ["This field is required."]}),
        ({"comment": "ok", "internal": "2"}, {"internal": ["Must be 0 or 1."]}),
    ]:
        response, answer = await windows_api.call("POST", f"{path}/comment", "alice", json=body)
        assert response.status == 400
        assert answer == {"message": "Invalid request", "reasons": reasons}


@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
async def test_a_window_answers_every_fields_reasons_at_once_in_the_models_order(windows_api, form):
    body = {"scope": "x", "service": "", "name": "", "description": "a" * 10_001, "external_link": "ftp://x",
            "service_status": "off", "status": "done", "scheduled_start_date": "2026-01-01T05:00",
            "scheduled_end_date": "2026-01-01T03:00", "end_date": "2026-13-01T00:00"}
    response, answer = await _create(windows_api, body, form=form)
    assert response.status == 400
    reasons = answer["reasons"]
    # each field's reasons in the model's order, then the relations between fields
    assert list(reasons) == ["name", "description", "external_link", "scope", "service", "service_status",
                             "status", "end_date", "scheduled_end_date"]
    fields = list(reasons)[:-1]
    assert fields == [name for name in window_shapes.MaintenanceInput.CHECK_ORDER if name in fields]
    assert reasons == {
        "name": ["This field is required."],
        "description": ["Must be at most 10000 characters."],
        "external_link": ["Must be a valid http(s) URL."],
        "scope": ["This field is required and must be an integer id."],
        "service": ["This field is required and must be an integer id."],
        "service_status": ["Value must be one of: up, degraded, down."],
        "status": [f"Value must be one of: {', '.join(window_shapes.WINDOW_STATUSES)}."],
        "scheduled_end_date": ["Must be after scheduled_start_date."],
        "end_date": ["'2026-13-01T00:00' is not a valid date"],
    }
    response, body = await windows_api.call("GET", "/api/maintenance", None)
    assert body == {"items": []}


async def test_a_window_form_sends_ids_as_text_and_blanks_for_absent(windows_api):
    response, answer = await _create(windows_api, {**FORM, "scope": " 1 ", "description": "", "status": ""})
    assert response.status == 302, answer
    response, body = await windows_api.call("GET", response.headers["Location"], None)
    assert (body["scope"], body["service"], body["description"], body["status"]) == (1, 10, None, "scheduled")
    response, answer = await _create(windows_api, {**FORM, "scope": "٣", "service": "99"})
    assert answer["reasons"] == {"scope": ["This field is required and must be an integer id."],
                                 "service": ["No service with id 99."]}


# -- the reader on its own -------------------------------------------------------------------

def _upper(fault: shapes.Fault) -> str:
    return f"{fault.key!r} is too long"


class Probe(shapes.Model, kw_only=True):
    REASONS: ClassVar[Any] = {"count": {"range": lambda fault: f"{fault.value} is too many"},
                              "tags": {"value.length": _upper}, "kind": "must be a or b"}
    CHECK_ORDER: ClassVar[tuple[str, ...]] = ("kind", "count", "tags", "note")
    BLANK: ClassVar[frozenset[str]] = frozenset({"count"})

    note: Annotated[str, Meta(max_length=3)] | None | UnsetType = UNSET
    count: Annotated[int, Meta(le=9)] | Annotated[str, shapes.digits(2)] | UnsetType = UNSET
    tags: dict[str, Annotated[str, Meta(max_length=2)]] | UnsetType = UNSET
    kind: Annotated[str, shapes.one_of(["a", "b"])]
    ignored: Literal[0] | UnsetType = UNSET


def test_check_reads_a_form_and_words_every_fault_in_check_order():
    form, found = shapes.check(Probe, {"kind": "a", "count": " 7 ", "note": None, "ignored": "not read"})
    assert (form.kind, form.count, form.note, form.ignored, found) == ("a", 7, None, UNSET, {})
    form, found = shapes.check(Probe, {"kind": "a\n", "count": "10", "tags": {"x": "abc"}, "note": "long"})
    assert found == {"kind": "must be a or b", "count": "10 is too many", "tags": "'x' is too long",
                     "note": "Expected `str` of length <= 3"}
    assert (form.kind, form.count, form.tags, form.note) == (UNSET, UNSET, UNSET, UNSET)
    assert shapes.check(Probe, {"kind": "b", "count": ""})[1] == {}
    assert shapes.check(Probe, {"kind": "b", "count": "123"})[1] == {
        "count": f"Expected `str` matching regex {shapes.digits(2).pattern!r}"}
    assert shapes.check(Probe, {"kind": None}, prefix="p.")[1] == {"p.kind": "must be a or b"}
    assert shapes.faults(Probe, {"kind": "\ud800", "note": 5}) == {
        "kind": ["must be a or b"], "note": ["Expected `str | null`, got `int`"]}


def test_read_raises_the_first_fault_in_check_order():
    with pytest.raises(ValidationError) as caught:
        shapes.read(Probe, {"note": "long", "count": 10, "kind": "c"})
    assert (caught.value.field, caught.value.reason) == ("kind", "must be a or b")


def test_a_choice_is_anchored_at_the_end_of_the_text():
    pattern = re.compile(shapes.one_of(["Active", "Inactive"]).pattern)
    assert pattern.search("Active") and not pattern.search("Active\n") and not pattern.search("Activex")


# -- the list filters of /api/maintenance: one declaration for the check and the document ---------

def test_the_documented_list_filters_are_the_filter_model():
    op = next(o for o in openapi.operations() if o.method == "GET" and o.path == "/api/maintenance")
    documented = {p.name: p.schema for p in op.params if p.name not in ("page", "per_page")}
    assert list(documented) == list(window_shapes.MaintenanceFilters.CHECK_ORDER)
    assert documented["status"]["enum"] == window_shapes.WINDOW_STATUSES
    assert documented["scope"]["type"] == "integer" and documented["scope"]["maximum"] == 10**18 - 1
    assert documented["start_before"]["pattern"].startswith("^[0-9]{4}")


@pytest.mark.parametrize(("query", "field", "reason"), [
    ("status=Scheduled", "status", "Value must be one of: scheduled, in-progress, succeed, failed, canceled."),
    ("status=scheduled%0A", "status", "Value must be one of: scheduled, in-progress, succeed, failed, canceled."),
    ("service_status=sideways", "service_status", "Value must be one of: up, degraded, down."),
    ("scope=%203", "scope", "Must be an integer id."),
    ("scope=1e3", "scope", "Must be an integer id."),
    ("service=" + "9" * 19, "service", "Must be an integer id."),
    ("start_after=2026-01-01", "start_after", window_shapes.DATE_RULE),
    ("end_before=2026-13-01T00:00", "end_before", "'2026-13-01T00:00' is not a valid date"),
    ("status=bogus&scope=x", "status", None),  # the first fault, in the model's order
])
async def test_a_bad_list_filter_is_answered_as_the_model_words_it(windows_api, query, field, reason):
    response, body = await windows_api.call("GET", f"/api/maintenance?{query}", None)
    assert response.status == 400
    assert list(body["reasons"]) == [field]
    if reason is not None:
        assert body["reasons"][field] == [reason]


async def test_good_list_filters_narrow_the_list(windows_api):
    for query in ("status=scheduled", "scope=1&service=10", "service_status=down", "external_reference=" + "x" * 300,
                  "start_after=2026-01-01T00:00&end_before=2030-01-01T00:00", "status=&scope="):
        response, body = await windows_api.call("GET", f"/api/maintenance?{query}", None)
        assert response.status == 200, (query, body)


def test_an_id_filter_reaches_the_family_as_a_number():
    form, faults = shapes.check(window_shapes.MaintenanceFilters, {"scope": "12", "service": "007"})
    assert faults == {} and (form.scope, form.service) == (12, 7)


def test_a_window_id_sent_as_text_is_read_as_the_number_within_its_bounds():
    base = {"name": "x", "service_status": "up", "scheduled_start_date": "2026-01-01T00:00",
            "scheduled_end_date": "2026-01-01T01:00"}
    form, faults = shapes.check(window_shapes.MaintenanceInput, {**base, "scope": "3", "service": " 10 "})
    assert faults == {} and (form.scope, form.service) == (3, 10)
    _, faults = shapes.check(window_shapes.MaintenanceInput, {**base, "scope": "9" * 19, "service": "1"})
    assert list(faults) == ["scope"]
