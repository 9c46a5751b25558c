"""Hypothesis drives every operation of /api/openapi.json with hostile input through HTTP.

Every string field of every body gets arbitrary Unicode (lone surrogates, NUL, controls,
line separators included), every path and query parameter arbitrary text, numbers or a
valid value, and some fields another JSON type. No answer may be a 5xx; every resource a
2xx created (schedules, builds, runs, jobs, windows, comments) must read back, with the
text it was given, and be listed afterwards. Examples are derandomized and bounded.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from yarl import URL

from schedd import config as config_mod
from schedd.accounts import hash_password
from schedd.api import openapi
from schedd.http.common import ACCOUNTS
from schedd.app import make_app
from schedd.clock import TestClock
from schedd.compose import build_core
from schedd.store import accounts as account_store
from tests.support.api import PASSWORD, T0

EXAMPLES = 10
LOGIN_EXAMPLES = 3  # each verifies a scrypt hash
CRON = "0 0 4 ? * * *"
JOB = {"jobName": "fuzzed", "jobFrequency": CRON, "jobStatus": "Active", "historyStrategy": "FULL",
       "description": "a job", "retentionPeriod": "30",
       "jobServiceInfo": {"serviceName": "jsonservices", "serviceType": "intSer", "operationName": "op",
                          "serviceExecutionType": "SERVER_URL", "postData": "{}", "requestheaderMap": {"X-A": "1"},
                          "version": "1.0", "objectName": "o", "operationSecurityLevel": "public"}}
WINDOW = {"scope": 1, "service": 10, "name": "fuzzed", "service_status": "down", "description": "d",
          "external_reference": "r", "external_link": "https://example.com/x",
          "scheduled_start_date": "2030-02-01T10:00", "scheduled_end_date": "2030-02-01T11:00"}
BODIES = {
    "createMaintenanceSchedule": {"time_expression": CRON, "scheduler_type": "time-based", "timezone": "UTC"},
    "createCubeSchedule": {"time_expression": CRON, "path": "aggregate/create", "full_build": True},
    "executeBuild": {"full_build": True},
    "login": {"userid": "admin", "password": PASSWORD},
    "createJob": JOB,
    "updateJob": JOB,
    "createMaintenance": WINDOW,
    "updateMaintenance": {**WINDOW, "status": "scheduled"},
    "commentMaintenance": {"comment": "fuzzed", "internal": 1},
}
NASTY = ["", " ", "\x00", "\ud800", "a\udfffb", "\u2028", "\x85", "\r\n", "\x1b[0m", "²", "٣", "../..", "%00",
         "'; DROP TABLE runs;--", "<script>", "\U0001f600", "\ufeff", "9" * 30, "-1"]
# Numbers in digits int() or str.isdigit() take that are no ASCII digits, and other near misses.
NUMERALS = ["²", "٣", "５", "১০", "-1", "+1", " 1", "1 ", "1e3", "0x10", "1_000", "1.0", "9" * 30, "\x00", "\ud800"]
TEXT = st.sampled_from(NASTY) | st.text(st.characters(codec=None, exclude_categories=()), max_size=24)
# Free text a valid body may carry in any script (surrogates and NUL are refused, the rest stored).
FREE_TEXT = frozenset({"name", "description", "external_reference", "comment", "jobName", "version", "objectName",
                       "operationSecurityLevel"})
UNICODE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=24)
# Text that breaks the input rule somewhere inside: every field of a body made with it is refused.
BREAKING = st.tuples(TEXT, st.sampled_from(["\ud800", "\udfff", "\x00"]), TEXT).map("".join)
ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6)


@dataclass
class Created:
    """What 2xx answers created and what they were last given, to read back at the end."""

    maintenance: set[str] = field(default_factory=set)
    cubes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    builds: set[str] = field(default_factory=set)
    maintenance_runs: set[str] = field(default_factory=set)
    jobs: dict[int, str] = field(default_factory=dict)
    job_runs: dict[int, set[int]] = field(default_factory=dict)
    windows: dict[int, str] = field(default_factory=dict)
    comments: dict[int, list[str]] = field(default_factory=dict)


class Server:
    """The app over a real SQLite file on a loop of its own, so hypothesis can drive it synchronously."""

    def __init__(self, tmp_path) -> None:
        self.loop = asyncio.new_event_loop()
        harmless = [sys.executable, "-c", "pass"]
        config = config_mod.from_dict({
            "executors": {"maintenance": {"command": harmless}, "aggregate": {"command": harmless}},
            "scopes": {"platform": {"id": 1}},
            "services": {"jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform",
                                          "timeout": "2s"}},
        })
        self.core = build_core(config, db_path=str(tmp_path / "fuzz.db"), clock=TestClock(T0))
        self.client = self.run(self._start(make_app(self.core, run_loop=False)))
        accounts = self.client.app[ACCOUNTS]
        self.run(self.core.store.accounts.create_user("admin", hash_password(PASSWORD), email=None,
                                           is_admin=True, orgs=(), at=T0))
        self.token = self.run(accounts.create_token("admin", ttl=None, at=T0))
        self.accounts = accounts
        self.created = Created()
        self.answers = 0

    @staticmethod
    async def _start(app) -> TestClient:
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    def fresh_token(self) -> str:
        """A token of its own for logout, which revokes the token it is called with."""
        return self.run(self.accounts.create_token("admin", ttl=None, at=T0))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def call(self, method: str, path: str, *, body: bytes | None = None, media: str | None = None,
             token: bool | str = True) -> tuple[int, dict[str, str], Any]:
        """`token`: the shared admin token (True), none (False), or this one."""
        sent = self.token if token is True else token or None
        headers = {"X-VoltMX-Authorization": sent} if sent else {}
        if media:
            headers["Content-Type"] = media

        async def go():
            response = await self.client.request(method, URL(path, encoded=True), data=body, headers=headers,
                                                 allow_redirects=False)
            raw = await response.read()
            raw.decode("utf-8")  # every answer is valid UTF-8
            try:
                parsed = json.loads(raw) if response.content_type == "application/json" else raw
            except ValueError:
                parsed = raw
            return response.status, dict(response.headers), parsed

        self.answers += 1
        return self.run(go())

    def close(self) -> None:
        self.run(self.core.runner.wait_idle())
        self.run(self.client.close())
        self.loop.close()


def encode(value: str) -> str:
    """A path segment or query value as a client would send it: UTF-8, and a lone surrogate as its 3 bytes."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def properties(schema: dict) -> dict[str, dict]:
    """The named properties of a schema, through $ref and allOf."""
    if "$ref" in schema:
        return properties(openapi.SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    found = dict(schema.get("properties", {}))
    for part in schema.get("allOf", ()):
        found.update(properties(part))
    return found


def value_strategy(name: str, schema: dict, base: dict) -> st.SearchStrategy:
    nested = properties(schema)
    choices = [TEXT, ANY]
    if name in base:
        choices.insert(0, st.just(base[name]))
        if nested and isinstance(base[name], dict):
            choices.insert(0, body_strategy(schema, base[name]))
    return st.one_of(*choices)


def body_strategy(schema: dict, base: dict) -> st.SearchStrategy:
    """The valid `base` with Unicode in its free text, or with one field changed, or with any field changed."""
    fields = {name: value_strategy(name, sub, base) for name, sub in properties(schema).items()}
    anything = st.tuples(st.fixed_dictionaries(fields), st.sets(st.sampled_from(sorted(fields)), max_size=2)).map(
        lambda drawn: {k: v for k, v in drawn[0].items() if k not in drawn[1]})
    one_field = st.tuples(st.sampled_from(sorted(fields)), TEXT | ANY).map(
        lambda drawn: {**base, drawn[0]: drawn[1]})
    valid = with_text(base, UNICODE)
    return st.one_of(valid, valid, with_text(base, BREAKING), one_field, anything)


def with_text(base: dict, text: st.SearchStrategy) -> st.SearchStrategy:
    """`base` with `text` in every free-text field, header value and the JSON text it posts."""
    fields: dict[str, st.SearchStrategy] = {}
    for key, value in base.items():
        if key in FREE_TEXT and isinstance(value, str):
            fields[key] = text
        elif key == "requestheaderMap":
            fields[key] = st.dictionaries(st.from_regex(r"X-[A-Za-z]{1,8}", fullmatch=True), text, max_size=2)
        elif key == "postData":
            fields[key] = text.map(lambda drawn: json.dumps({"text": drawn}))
        elif isinstance(value, dict):
            fields[key] = with_text(value, text)
        else:
            fields[key] = st.just(value)
    return st.fixed_dictionaries(fields)


def form_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)


def query_strategy(param: openapi.Param) -> st.SearchStrategy:
    valid = [st.just(str(v)) for v in param.schema.get("enum", ())] or [st.just("1")]
    hostile = st.sampled_from(NUMERALS) if param.schema.get("type") == "integer" else TEXT
    return st.one_of(hostile, st.none(), TEXT, st.integers(-10, 10**20).map(str), *valid)


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes | None
    media: str | None
    sent: dict[str, Any] | None
    params: dict[str, str]


def request_strategy(op: openapi.Op, ids: dict[str, list[str]]) -> st.SearchStrategy:
    names = re.findall(r"\{(\w+)\}", op.path)
    path_values = {name: st.sampled_from(ids[name]) | TEXT for name in names}
    query = {p.name: query_strategy(p) for p in op.params if p.where == "query"}
    base = BODIES.get(op.op_id.removesuffix("V1"), {})
    if op.op_id == "updateJob":
        base = {**base, "jobId": int(ids["jobId"][-1]), "jobName": "populated"}
    body = body_strategy(op.body.schema, base) if op.body else st.none()
    media = st.sampled_from(sorted(op.body.media, key=lambda m: m != openapi.JSON)) if op.body else st.none()

    def build(drawn) -> Request:
        values, params, sent, chosen = drawn
        path = op.path
        for name, value in values.items():
            path = path.replace("{" + name + "}", encode(value))
        pairs = [f"{name}={encode(value)}" for name, value in params.items() if value is not None]
        if pairs:
            path += "?" + "&".join(pairs)
        raw = None
        if sent is not None and chosen == openapi.JSON:
            raw = json.dumps(sent).encode()
        elif sent is not None:
            raw = "&".join(f"{encode(k)}={encode(form_text(v))}" for k, v in sent.items()).encode()
        return Request(path, raw, chosen, sent, {**values, **{k: v for k, v in params.items() if v is not None}})

    return st.tuples(st.fixed_dictionaries(path_values), st.fixed_dictionaries(query), body, media).map(build)


def record(server: Server, op: openapi.Op, request: Request, status: int, headers: dict[str, str],
           answer: Any) -> None:
    """Note what a successful write made, changed or removed."""
    created, op_id, sent, params = server.created, op.op_id.removesuffix("V1"), request.sent or {}, request.params
    if status not in (200, 302):
        return
    if op_id == "createMaintenanceSchedule":
        created.maintenance.add(answer["response"]["job_id"])
    elif op_id == "createCubeSchedule":
        made = answer["response"]
        created.cubes[made["job_id"]] = (made["organization_Id"], made["project_id"], made["cube_id"])
    elif op_id == "deleteCubeSchedule":
        created.cubes.pop(params["jobId"], None)
    elif op_id == "executeBuild":
        created.builds.add(answer["response"]["id"])
    elif op_id == "runMaintenanceNow":
        created.maintenance_runs.add(headers["X-Run-Id"])
    elif op_id == "createJob":
        created.jobs[int(headers["Location"].rsplit("/", 1)[1])] = sent["jobName"]
    elif op_id == "updateJob":
        created.jobs[int(str(sent["jobId"]))] = sent["jobName"]
    elif op_id in ("deleteJob", "deleteJobGlued"):
        created.jobs.pop(int(params["jobId"]), None)
        created.job_runs.pop(int(params["jobId"]), None)
    elif op_id == "runJobNow" and "Location" in headers:
        created.job_runs.setdefault(int(params["jobId"]), set()).add(int(headers["Location"].rsplit("/", 1)[1]))
    elif op_id == "createMaintenance":
        created.windows[int(headers["Location"].rsplit("/", 1)[1])] = form_text(sent["name"])
    elif op_id == "updateMaintenance":
        created.windows[int(params["id"])] = form_text(sent["name"])
    elif op_id == "deleteMaintenance":
        created.windows.pop(int(params["id"]), None)
        created.comments.pop(int(params["id"]), None)
    elif op_id == "commentMaintenance":
        created.comments.setdefault(int(params["id"]), []).append(form_text(sent["comment"]))


def populate(server: Server, name: str) -> dict[str, list[str]]:
    """A resource of each kind for path parameters to name, besides arbitrary text."""
    _, _, maint = server.call("POST", "/aggregates/maintenance/scheduler/jobs/orgId/default",
                              body=json.dumps({"time_expression": CRON}).encode(), media=openapi.JSON)
    _, _, cube = server.call("POST", "/org/default/project/p1/cube/c1/aggregates-creation/scheduler",
                             body=json.dumps(BODIES["createCubeSchedule"]).encode(), media=openapi.JSON)
    _, job_headers, _ = server.call("POST", "/admin/api/jobs/job", body=json.dumps({**JOB, "jobName": name}).encode(),
                            media=openapi.JSON)
    _, headers, _ = server.call("POST", "/api/maintenance/create", body=json.dumps({**WINDOW, "name": name}).encode(),
                                media=openapi.JSON)
    window = headers["Location"].rsplit("/", 1)[1]
    server.created.maintenance.add(maint["response"]["job_id"])
    server.created.cubes[cube["response"]["job_id"]] = ("default", "p1", "c1")
    job_id = job_headers["Location"].rsplit("/", 1)[1]
    server.created.jobs[int(job_id)] = name
    server.created.windows[int(window)] = name
    return {"orgId": ["default"], "projectId": ["p1"], "cubeId": ["c1"], "id": [window, "1", "10"],
            "jobId": [maint["response"]["job_id"], cube["response"]["job_id"], job_id], "jobRunId": ["1"]}


def read_back(server: Server) -> list[str]:
    """Every resource still expected, read by its id and found in its list: the faults found."""
    faults: list[str] = []
    created = server.created

    def get(path: str) -> Any:
        status, _, answer = server.call("GET", path)
        if status != 200:
            faults.append(f"GET {path}: {status} {answer!r:.300}")
        return answer

    listed = {s["job_id"] for s in get("/aggregates/maintenance/scheduler/jobs/orgId/default")["response"]}
    faults += [f"maintenance schedule {uid} not listed" for uid in created.maintenance - listed]
    for uid, (org, project, cube) in created.cubes.items():
        base = f"/org/{encode(org)}/project/{encode(project)}/cube/{encode(cube)}/aggregates-creation/scheduler"
        if uid not in {s["job_id"] for s in get(base)["response"]}:
            faults.append(f"cube schedule {uid} not listed")
        get(f"{base}/history/jobId/{uid}")
    builds = {b["id"] for b in get("/org/default/aggregates-creation/builds/history?limit=1000")["response"]["data"]}
    faults += [f"build {uid} not listed" for uid in created.builds - builds]
    runs = {r["id"] for r in get("/aggregates/maintenance/orgId/default/history?limit=1000")["response"]["data"]}
    faults += [f"maintenance run {uid} not listed" for uid in created.maintenance_runs - runs]
    jobs = {j["jobId"]: j["jobName"] for j in get("/admin/api/jobs/job")}
    for job_id, name in created.jobs.items():
        if jobs.get(job_id) != name or get(f"/admin/api/jobs/job/{job_id}").get("jobName") != name:
            faults.append(f"job {job_id} does not read back as {name!r}")
        history = {r["jobRunId"] for r in get(f"/admin/api/jobs/history/{job_id}?limit=1000")}
        for run_id in created.job_runs.get(job_id, ()):
            if run_id not in history:
                faults.append(f"run {run_id} of job {job_id} not listed")
            get(f"/admin/api/jobs/history/{job_id}/{run_id}")
    windows: dict[int, str] = {}
    page, pages = 1, 1
    while page <= pages:
        status, headers, answer = server.call("GET", f"/api/maintenance?per_page=50&page={page}")
        pages = int(headers["X-Total-Pages"])
        windows.update({w["id"]: w["name"] for w in answer["items"]})
        page += 1
    for window_id, name in created.windows.items():
        found = get(f"/api/maintenance/{window_id}")
        if windows.get(window_id) != name or found.get("name") != name:
            faults.append(f"window {window_id} does not read back as {name!r}")
        contents = [event["content"] for event in found.get("events", ())]
        faults += [f"comment {text!r} of window {window_id} lost" for text in created.comments.get(window_id, ())
                   if text not in contents]
        get(f"/api/maintenance/{window_id}/calendar")
    get("/api/maintenance/calendar")
    return faults


@pytest.fixture
def server(tmp_path):
    made = Server(tmp_path)
    try:
        yield made
    finally:
        made.close()


def _deletes_last(op: openapi.Op) -> bool:
    return op.method == "DELETE" or op.path.endswith("/delete")


def drive(server: Server, op: openapi.Op, ids: dict[str, list[str]], failures: list[str]) -> None:
    """Send the operation its examples; a 5xx is a failure, a 2xx is recorded."""

    @settings(max_examples=LOGIN_EXAMPLES if op.op_id == "login" else EXAMPLES, derandomize=True,
              database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(request=request_strategy(op, ids))
    def example(request: Request) -> None:
        status, headers, answer = server.call(op.method, request.path, body=request.body, media=request.media,
                                              token=server.fresh_token() if op.op_id == "logout" else True)
        if status >= 500:
            failures.append(f"{op.method} {request.path} {request.sent!r:.300}: {status} {answer!r:.300}")
            return
        record(server, op, request, status, headers, answer)

    example()


def test_every_operation_with_hostile_input_never_answers_5xx_and_what_it_made_reads_back(server):
    ids, victims = populate(server, "populated"), populate(server, "to delete")
    victims["id"] = victims["id"][:1]  # not scope 1 or service 10, which are windows ids too
    failures: list[str] = []
    for op in sorted(openapi.operations(), key=_deletes_last):
        drive(server, op, victims if _deletes_last(op) else ids, failures)
    assert not failures, "\n".join(failures[:20])
    created = server.created
    assert created.windows and created.jobs and created.maintenance and created.cubes
    faults = read_back(server)
    assert not faults, "\n".join(faults[:20])
    assert server.answers >= 400
    print(f"\n{server.answers} requests; read back {len(created.windows)} windows, {len(created.jobs)} jobs, "
          f"{len(created.maintenance)} + {len(created.cubes)} schedules, {len(created.builds)} builds, "
          f"{len(created.maintenance_runs)} maintenance runs, {sum(map(len, created.comments.values()))} comments")
