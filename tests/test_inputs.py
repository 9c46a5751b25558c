"""The input rule through HTTP: every bad query, form or body is a 400 in its route's envelope.

Text is valid UTF-8 without NUL or lone surrogates, numbers are ASCII digits, a form that
does not parse is a 400, nothing changes on bad input, and what is already stored never
makes a read fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from yarl import URL

from schedd import grants
from schedd.store import schedules as schedule_store
from tests.support.api import T0
from tests.support.web import JOB, SCOPES, SERVICES, WINDOW, Operator, create_window
from tests.support import sql

TABLES = ("schedules", "runs", "windows", "window_events", "tokens")
MALFORMED = [
    pytest.param({"Content-Type": "multipart/form-data"}, b"garbage", id="multipart without boundary"),
    pytest.param({"Content-Type": "multipart/form-data; boundary=xyz"}, b"garbage", id="multipart garbage"),
    pytest.param({"Content-Type": "multipart/form-data; boundary=xyz"},
                 b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xed\xa0\x80\r\n--xyz--\r\n',
                 id="multipart part not UTF-8"),
    pytest.param({"Content-Type": "multipart/form-data; boundary=xyz"},
                 b'--xyz\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nx\r\n--xyz--\r\n',
                 id="multipart file upload"),
    pytest.param({"Content-Type": "application/x-www-form-urlencoded"}, b"name=%ED%A0%80", id="urlencoded surrogate"),
    pytest.param({"Content-Type": "application/x-www-form-urlencoded"}, b"name=%FF", id="urlencoded not UTF-8"),
    pytest.param({"Content-Type": "application/x-www-form-urlencoded"}, b"name=\xff", id="urlencoded raw byte"),
    pytest.param({"Content-Type": "application/x-www-form-urlencoded"}, b"name=a%00b", id="urlencoded NUL"),
    pytest.param({"Content-Type": "application/x-www-form-urlencoded; charset=bogus"}, b"name=a",
                 id="urlencoded unknown charset"),
    pytest.param({"Content-Type": "application/x-www-form-urlencoded"}, b"name=a&name=%FF", id="repeated field not UTF-8"),
]


@pytest.fixture
async def api(make_api):
    api = await make_api(scopes=SCOPES, services=SERVICES)
    for scope in SCOPES.values():  # alice maintains every scope: she writes the windows here
        await grants.grant(api.core.store, "alice", grants.Scope(scope["id"], None), at=T0)
    return api


async def snapshot(api) -> dict[str, int]:
    return {t: (await sql.fetchone(api.core.store, f"SELECT count(*) FROM {t}"))[0] for t in TABLES}


def form_routes(api) -> list[str]:
    """Every POST and PUT route of the app, its path parameters filled in."""
    values = {"orgId": "acme", "projectId": "p1", "cubeId": "c1", "jobId": "1", "id": "1", "action": "activate"}
    found = []
    for route in api.client.app.router.routes():
        if route.method in ("POST", "PUT"):
            found.append((route.method, route.resource.canonical.format_map(values)))
    return sorted(set(found))


def envelope_of(path: str, response, text: str) -> str:
    """Which error envelope an answer is in; fails on plain text (aiohttp's own 500 page)."""
    if response.content_type == "text/html":
        assert "<title>Bad request" in text, text[:500]
        return "page"
    body = json.loads(text)
    if path.startswith(("/admin/api/jobs", "/authService")):
        assert body["status"] == "FAIL" and body["result"]["field"], body
        return "volt"
    if path.startswith("/api/maintenance"):
        assert body["message"] == "Invalid request" and body["reasons"], body
        return "prod"
    if path.startswith(("/aggregates", "/api/1.0/aggregates")):
        assert body["status"]["code"] == 400, body
        return "engine"
    assert path.startswith(("/org", "/api/1.0/org")), path
    assert body["status"]["i18n_message"] == "response.bad_request", body
    return "design"


@pytest.mark.parametrize(("headers", "raw"), MALFORMED)
async def test_a_malformed_form_is_a_400_in_the_envelope_of_every_route_that_reads_one(api, headers, raw):
    await create_window(api)
    routes = form_routes(api)
    assert ("POST", "/authService/accounts/login") in routes and ("POST", "/ui/login") in routes
    before = await snapshot(api)
    browser = Operator(api)
    for method, path in routes:
        for who in (None, "admin"):  # the login routes are called without a token
            sent = {**headers, "Origin": browser.origin, **(api.auth(who) if who else {})}
            response = await api.client.request(method, path, data=raw, headers=sent, allow_redirects=False)
            text = await response.text()
            assert response.status == 400, (method, path, who, text[:300])
            envelope_of(path, response, text)
    assert await snapshot(api) == before
    response, _ = await api.call("GET", "/api/maintenance/1", None)
    assert response.status == 200


async def test_the_web_login_form_with_a_malformed_body_is_a_400_page_not_a_plain_500(api):
    browser = Operator(api)
    token = await browser.csrf("/ui/login")
    assert token
    response = await api.client.post("/ui/login", data=b"garbage", allow_redirects=False,
                                      headers={"Content-Type": "multipart/form-data", "Origin": browser.origin})
    text = await response.text()
    assert response.status == 400 and response.content_type == "text/html", text[:300]
    assert "malformed multipart form" in text


@pytest.mark.parametrize("query", [
    "page=%C2%B2", "per_page=%C2%B2", "scope=%C2%B2", "service=%C2%B2", "page=%D9%A3", "per_page=%EF%BC%95",
    "scope=%D9%A3", "page=99999999999999999999999", "status=%00", "external_reference=%ED%A0%80",
    "external_reference=%FF", "start_after=%00",
])
async def test_windows_list_refuses_non_ascii_numbers_and_bad_text_with_a_400(api, query):
    response, body = await api.call("GET", URL("/api/maintenance?" + query, encoded=True), None)
    assert response.status == 400, body
    field = query.split("=")[0]
    assert body["message"] == "Invalid request" and field in body["reasons"], body


@pytest.mark.parametrize("path", [
    "/aggregates/maintenance/orgId/acme/history?limit=%C2%B2",
    "/aggregates/maintenance/orgId/acme/history?offset=%D9%A3",
    "/org/acme/aggregates-creation/builds/history?limit=%C2%B2",
    "/admin/api/jobs/history/1?limit=%C2%B2",
    "/aggregates/maintenance/orgId/acme/history?status=%ED%A0%80",
])
async def test_query_numbers_of_every_family_are_ascii_digits(api, path):
    response = await api.client.get(URL(path, encoded=True), headers=api.auth("admin"))
    text = await response.text()
    assert response.status == 400, text
    envelope_of(path, response, text)


@pytest.mark.parametrize("path", ["/ui?page=%C2%B2", "/ui/runs?page=%C2%B2", "/ui?page=%D9%A3",
                                  "/ui/runs?page=0", "/ui?family=%00", "/ui/runs?org=%ED%A0%80"])
async def test_operator_pages_refuse_bad_page_numbers_and_text_with_a_400_page(api, path):
    browser = Operator(api)
    response, _ = await browser.login("admin")
    assert response.status == 303
    response, text = await browser.get(URL(path, encoded=True))
    assert response.status == 400 and response.content_type == "text/html", text[:300]


async def test_a_path_number_in_other_digits_is_not_read_as_that_number(api):
    window = await create_window(api)
    arabic = "".join(chr(0x0660 + int(d)) for d in str(window))  # int("١") is 1, but it is no ASCII digit
    response = await api.client.get("/status/maintenance/" + arabic)
    assert response.status == 404
    response = await api.client.get(f"/status/maintenance/{window}")
    assert response.status == 200


@pytest.mark.parametrize("field", ["name", "description", "external_reference"])
@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", "nul\x00"])
async def test_a_window_with_a_lone_surrogate_or_nul_is_refused_as_json_and_as_a_form(api, field, bad):
    window = await create_window(api)
    before = await snapshot(api)
    for path in ("/api/maintenance/create", f"/api/maintenance/{window}/update"):
        body = {**WINDOW, "status": "scheduled", field: bad}
        response, answer = await api.call("POST", path, "admin", json=body, allow_redirects=False)
        assert response.status == 400, answer
        assert field in answer["reasons"], answer
        encoded = "&".join(f"{k}={v}" for k, v in {**body, field: "%ED%A0%80"}.items())
        response, answer = await api.call("POST", path, "admin", data=encoded.encode(), allow_redirects=False,
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status == 400, answer
        assert field in answer["reasons"], answer
    assert await snapshot(api) == before


@pytest.mark.parametrize("bad", ["\ud800", "x\x00"])
async def test_a_comment_with_a_lone_surrogate_or_nul_is_refused(api, bad):
    window = await create_window(api)
    before = await snapshot(api)
    response, answer = await api.call("POST", f"/api/maintenance/{window}/comment", "admin",
                                      json={"comment": bad}, allow_redirects=False)
    assert response.status == 400 and "comment" in answer["reasons"], answer
    assert await snapshot(api) == before


async def create_job(api, **changes):
    return await api.call("POST", "/admin/api/jobs/job", "admin", json={**JOB, **changes})


@pytest.mark.parametrize(("changes", "field"), [
    ({"jobName": "\ud800"}, "jobName"),
    ({"description": "x\udc00"}, "description"),
    ({"jobName": "a\x00"}, "jobName"),
    ({"jobServiceInfo": {**JOB["jobServiceInfo"], "requestheaderMap": {"X": "\ud800"}}},
     "jobServiceInfo.requestheaderMap.X"),
    ({"jobServiceInfo": {**JOB["jobServiceInfo"], "requestheaderMap": {"X\ud800": "v"}}},
     "jobServiceInfo.requestheaderMap"),
    ({"jobServiceInfo": {**JOB["jobServiceInfo"], "postData": '{"a": "\\ud800"}'}}, "jobServiceInfo.postData.a"),
    ({"jobServiceInfo": {**JOB["jobServiceInfo"], "postData": '{"a": "\\u0000"}'}}, "jobServiceInfo.postData.a"),
    ({"jobServiceInfo": {**JOB["jobServiceInfo"], "postData": "\ud800"}}, "jobServiceInfo.postData"),
    ({"jobServiceInfo": {**JOB["jobServiceInfo"], "postData": {"a": ["\ud800"]}}}, "jobServiceInfo.postData.a[0]"),
    ({"jobFrequencyInfo": {"frequencyType": 1, "note": "\ud800"}}, "jobFrequencyInfo.note"),
])
async def test_a_poisoned_job_is_refused_at_create_and_update(api, changes, field):
    response, created = await create_job(api)
    assert response.status == 200, created
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    before = await snapshot(api)
    response, answer = await create_job(api, **{"jobName": "second", **changes})
    assert response.status == 400, answer
    assert answer["status"] == "FAIL" and answer["result"]["field"] == field, answer
    response, answer = await api.call("PUT", "/admin/api/jobs/job", "admin", json={**JOB, **changes, "jobId": job_id})
    assert response.status == 400 and answer["result"]["field"] == field, answer
    assert await snapshot(api) == before
    response, detail = await api.call("GET", f"/admin/api/jobs/job/{job_id}")
    assert response.status == 200 and detail["jobName"] == JOB["jobName"], detail


async def test_a_job_stored_with_a_lone_surrogate_before_the_rule_never_breaks_a_read(api):
    """Data written by an older schedd: every read answers, the surrogate escaped or shown as U+FFFD."""
    response, created = await create_job(api)
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    stored = await api.core.store.schedules.get(job_id)
    poisoned = {**stored.spec, "jobServiceInfo": {**stored.spec["jobServiceInfo"],
                                                  "requestheaderMap": {"X": "\ud800"}, "postData": {"a": "\udc00"}}}
    await sql.execute(api.core.store, "UPDATE schedules SET spec = ? WHERE id = ?",
                              (json.dumps(poisoned), job_id))
    response = await api.client.get(f"/admin/api/jobs/job/{job_id}", headers=api.auth())
    raw = await response.read()
    assert response.status == 200, raw
    raw.decode("utf-8")  # valid UTF-8: the surrogate is a JSON escape
    assert json.loads(raw)["jobServiceInfo"]["requestheaderMap"] == {"X": "\ud800"}
    for path in (f"/admin/api/jobs/job{job_id}", "/admin/api/jobs/job", f"/admin/api/jobs/history/{job_id}"):
        response, _ = await api.call("GET", path)
        assert response.status == 200, path
    browser = Operator(api)
    await browser.login("admin")
    for path in ("/ui", "/ui?family=service", "/ui/runs"):
        response, text = await browser.get(path)
        assert response.status == 200, (path, text[:300])
    # A change through the operator view re-validates the stored document: refused, not a 500.
    csrf = await browser.csrf()
    response, text = await browser.post(f"/ui/schedules/{job_id}/deactivate", {"csrf": csrf})
    assert response.status == 400, text[:300]


@pytest.mark.stores("sqlite")  # PostgreSQL text cannot hold a NUL: such a row cannot exist there
async def test_a_window_stored_with_a_nul_before_the_rule_never_breaks_a_read(api):
    window = await create_window(api)
    await sql.execute(api.core.store, "UPDATE windows SET name = ?, description = ? WHERE id = ?",
                              ("a\x00b", "c\x00d", window))
    for path in (f"/api/maintenance/{window}", "/api/maintenance", f"/api/maintenance/{window}/calendar",
                 "/api/maintenance/calendar", f"/status/maintenance/{window}", "/status"):
        response = await api.client.get(path)
        assert response.status == 200, path
        (await response.read()).decode("utf-8")


async def test_the_api_login_without_a_token_refuses_bad_text_before_looking_at_the_password(api):
    for raw in (b"userid=%ED%A0%80&password=x", b"userid=admin&password=%00"):
        response, answer = await api.call("POST", "/authService/accounts/login", None, data=raw,
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status == 400 and answer["status"] == "FAIL", answer
    response, answer = await api.call("POST", "/authService/accounts/login", None,
                                      json={"userid": "admin", "password": "\ud800"})
    assert response.status == 400 and answer["result"]["field"] == "password", answer


def test_no_handler_reads_the_request_around_the_input_layer():
    """Bodies, forms and numbers are read only through schedd/http/common.py, so no route can forget the rule."""
    root = Path(__file__).resolve().parent.parent / "schedd"
    forbidden = re.compile(r"request\.(?:post|json|read|text|multipart|content)\b|\.isdigit\(\)(?!.*isascii)|"
                           r"int\(request\.query|int\(raw\)")
    offenders = []
    for path in sorted([*root.joinpath("api").glob("*.py"), *root.joinpath("web").glob("*.py")]):
        if path.name == "common.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if forbidden.search(line):
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(("raw", "message"), [
    (b"name=" + b"x" * 1_100_000, "request body is larger than the limit"),
    (b"&".join(b"f%d=1" % i for i in range(1001)), "the form has more than 1000 fields"),
])
async def test_a_form_over_the_limits_is_a_413_in_the_routes_envelope(api, raw, message):
    before = await snapshot(api)
    response, answer = await api.call("POST", "/api/maintenance/create", "admin", data=raw, allow_redirects=False,
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413, answer
    assert answer["message"] == message, answer
    assert await snapshot(api) == before


def test_the_rule_itself_names_the_path_of_what_it_refuses():
    from schedd.errors import ValidationError
    from schedd.inputs import check_tree, parse_int, scrub

    check_tree({"a": ["ok", {"b": "é\u2028"}], "n": 1})
    for document, field, reason in [
        ({"a": ["ok", {"b": "x\ud800"}]}, "a[1].b", "lone surrogate"),
        ({"a": {"k\x00": 1}}, "a", "has a key that must not contain NUL"),
        ({"\udc00": 1}, "body", "has a key"),
        ({"h": {"X-" + "y" * 100: "\x00"}}, "h.X-" + "y" * 62, "NUL"),  # a long key is shown cut at 64
    ]:
        with pytest.raises(ValidationError) as info:
            check_tree(document)
        assert (info.value.field, reason in info.value.reason) == (field, True), info.value
    assert parse_int("0042", "n", 0, 100) == 42
    for raw in ("²", "٣", "５", "-1", "+1", " 1", "1_0", "", "9" * 19, "101"):
        with pytest.raises(ValidationError):
            parse_int(raw, "n", 0, 100)
    assert scrub("a\ud800b\udfff") == "a\ufffdb\ufffd"


async def test_the_families_apply_the_rule_to_what_they_are_given_directly(api):
    from schedd.errors import ValidationError
    from schedd.families import common
    from schedd.families.service_jobs import service as jobs

    for expression, zone in (("0 0 4 ? * * *\x00", None), ("0 0 4 ? * * *", "UTC\ud800")):
        with pytest.raises(ValidationError):
            common.timing(api.core, expression, zone, at=0)
    poisoned = {**JOB, "jobServiceInfo": {**JOB["jobServiceInfo"], "requestheaderMap": {"X": "\ud800"}}}
    with pytest.raises(ValidationError) as info:
        jobs.validate(api.core, poisoned, at=0)
    assert info.value.field == "jobServiceInfo.requestheaderMap.X"


@pytest.mark.parametrize("service", [{"postData": "\ud800"}, {"requestheaderMap": {"X": "a\udfff"}}])
async def test_a_job_stored_with_a_lone_surrogate_fails_its_run_with_a_reason_and_its_history_reads(api, service):
    response, created = await create_job(api, historyStrategy="FULL")
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    stored = await api.core.store.schedules.get(job_id)
    poisoned = {**stored.spec, "jobServiceInfo": {**stored.spec["jobServiceInfo"], **service}}
    await sql.execute(api.core.store, "UPDATE schedules SET spec = ? WHERE id = ?", (json.dumps(poisoned), job_id))
    response, answer = await api.call("POST", f"/admin/api/jobs/job/run/{job_id}")
    assert response.status == 200, answer
    await api.settle()
    response, detail = await api.call("GET", response.headers["Location"])
    assert response.status == 200, detail
    assert detail["executionStatus"] == "Fail"
    assert detail["errorMessage"] == "postData or requestheaderMap is not valid UTF-8 text without NUL"
