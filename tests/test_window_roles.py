"""Who may change a maintenance window, as a matrix: every window write route, form and JSON,
by every kind of caller, against a window of a granted scope and of another scope; each case
checks the status and what changed in the database. Then the reads: internal comments and
authors only for those who may write the window, and no public read names a user."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
from importlib import resources

import pytest

from schedd import cli, config, grants
from schedd.http.common import ACCOUNTS
from schedd.store import accounts as account_store
from schedd.store.db import Database
from tests.support.api import T0, password_hash
from tests.support import sql

SCOPES = {"platform": {"id": 1}, "edge": {"id": 2}}
SERVICES = {
    "jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"},
    "cdn": {"base_url": "http://127.0.0.1:9/cdn", "id": 20, "scope": "edge"},
}
BODY = {"platform": {"scope": "1", "service": "10"}, "edge": {"scope": "2", "service": "20"}}
WINDOW = {"name": "Database upgrade", "service_status": "down",
          "scheduled_start_date": "2026-02-01T03:00", "scheduled_end_date": "2026-02-01T05:00"}
PUBLIC_NOTE, SECRET_NOTE = "We start on time", "Root password is in the vault"
# Who calls: a token's owner, or None. carol (org acme) is granted the platform scope;
# alice (org acme) and bob (org other) have no grant; grace is an admin.
CALLERS = {"anonymous": None, "other org": "bob", "no grant": "alice", "granted": "carol", "admin": "grace"}
WRITERS = ("carol", "grace")  # the writers' login names: no public read may show them
ROUTES = ("create", "update", "delete", "comment")
TARGETS = ("platform", "edge")  # carol's granted scope, and another one


def allowed(caller: str, target: str) -> bool:
    return caller == "admin" or (caller == "granted" and target == "platform")


def expected_status(caller: str, target: str) -> int:
    if caller == "anonymous":
        return 401
    return 302 if allowed(caller, target) else 403


@pytest.fixture
async def api(make_api):
    api = await make_api(scopes=SCOPES, services=SERVICES)
    accounts = api.client.app[ACCOUNTS]
    for name, admin in (("carol", False), ("grace", True)):
        await api.core.store.accounts.create_user(name, password_hash(), email=None, is_admin=admin,
                                        orgs=("acme",), at=T0)
        api.tokens[name] = await accounts.create_token(name, ttl=None, at=T0)
    await grants.grant(api.core.store, "carol", grants.Scope(1, "platform"), at=T0)
    return api


async def make_window(api, scope: str, **fields: str) -> int:
    """A window of `scope` by grace (admin), with a public and an internal comment."""
    response, body = await api.call("POST", "/api/maintenance/create", "grace",
                                    data={**WINDOW, **BODY[scope], "name": f"{scope} upgrade", **fields},
                                    allow_redirects=False)
    assert response.status == 302, body
    window_id = int(response.headers["Location"].rsplit("/", 1)[1])
    for note, internal in ((PUBLIC_NOTE, "0"), (SECRET_NOTE, "1")):
        response, _ = await api.call("POST", f"/api/maintenance/{window_id}/comment", "grace",
                                     data={"comment": note, "internal": internal}, allow_redirects=False)
        assert response.status == 302
    return window_id


async def rows(api) -> dict[str, list[tuple]]:
    return {table: [tuple(row) for row in await sql.fetchall(api.core.store, f"SELECT * FROM {table} ORDER BY id")]
            for table in ("windows", "window_events")}


async def user_id(api, name: str) -> int:
    return (await api.core.store.accounts.get_user(name)).id


def request_for(route: str, window_id: int, target: str) -> tuple[str, dict[str, str]]:
    if route == "create":
        return "/api/maintenance/create", {**WINDOW, **BODY[target], "name": "New window"}
    if route == "update":
        return (f"/api/maintenance/{window_id}/update",
                {**WINDOW, **BODY[target], "name": "Renamed", "status": "scheduled"})
    if route == "comment":
        return f"/api/maintenance/{window_id}/comment", {"comment": "Looks good", "internal": "1"}
    return f"/api/maintenance/{window_id}/delete", {}


@pytest.mark.parametrize("body", ["form", "json"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("caller", CALLERS)
async def test_who_may_write_a_window(api, caller, route, target, body):
    windows = {scope: await make_window(api, scope) for scope in TARGETS}
    before = await rows(api)
    path, fields = request_for(route, windows[target], target)
    who = CALLERS[caller]
    # Prod-Manager's form with its Bearer header; JSON with the Volt MX header: both are accepted.
    kwargs = {"data": fields} if body == "form" else {"json": fields}
    header = "bearer" if body == "form" else "voltmx"
    headers = api.auth(who, header) if who else {}
    response = await api.client.post(path, headers=headers, allow_redirects=False, **kwargs)
    answer = await response.json(content_type=None) if response.status != 302 else None
    after = await rows(api)

    status = expected_status(caller, target)
    assert response.status == status, answer
    if status != 302:
        assert set(answer) == {"message", "reasons"} and answer["reasons"] == {}
        if status == 403:
            assert "grant" in answer["message"]
        assert after == before  # nothing changed
        return

    author = await user_id(api, who)
    added = [e for e in after["window_events"] if e not in before["window_events"]]
    if route == "create":
        (window,) = [w for w in after["windows"] if w not in before["windows"]]
        assert (window[1], window[6], window[7], window[8]) == ("New window", int(BODY[target]["scope"]),
                                                                int(BODY[target]["service"]), "down")
        assert [(e[3], e[5], e[6]) for e in added] == [("Maintenance created", "create", author)]
        assert after["windows"][:-1] == before["windows"]
    elif route == "update":
        changed = {w[0]: w for w in after["windows"]}[windows[target]]
        assert changed[1] == "Renamed"
        assert [(e[5], e[6]) for e in added] == [("update", author)]
        assert added[0][3] == f"Maintenance updated: name {target} upgrade -> Renamed"
        assert [w for w in after["windows"] if w[0] != windows[target]] == \
               [w for w in before["windows"] if w[0] != windows[target]]
    elif route == "delete":
        assert [w[0] for w in after["windows"]] == [w[0] for w in before["windows"] if w[0] != windows[target]]
        assert [e for e in after["window_events"] if e[1] == windows[target]] == []
        assert added == []
    else:
        assert after["windows"] == before["windows"]
        assert [(e[1], e[3], e[4], e[5], e[6]) for e in added] == [
            (windows[target], "Looks good", 1, "comment", author)]


@pytest.mark.parametrize("caller", ["anonymous", "other org", "no grant", "granted"])
async def test_a_window_cannot_be_moved_into_a_scope_the_caller_may_not_write(api, caller):
    window_id = await make_window(api, "platform")
    before = await rows(api)
    who = CALLERS[caller]
    response, body = await api.call("POST", f"/api/maintenance/{window_id}/update", who,
                                    data={**WINDOW, **BODY["edge"], "status": "scheduled"}, allow_redirects=False)
    assert response.status == (401 if who is None else 403), body
    assert await rows(api) == before


async def test_without_any_grant_a_write_is_refused_before_its_body_is_read(api):
    for path in ("/api/maintenance/create", "/api/maintenance/999/update", "/api/maintenance/999/delete"):
        response, body = await api.call("POST", path, "alice", data="{not json", allow_redirects=False,
                                        headers={"Content-Type": "application/json"})
        assert response.status == 403, body


async def test_a_granted_user_gets_404_for_a_window_that_does_not_exist(api):
    response, body = await api.call("POST", "/api/maintenance/999/delete", "carol", allow_redirects=False)
    assert response.status == 404 and body["message"] == "maintenance 999 not found"


async def test_a_service_moved_to_another_scope_takes_its_windows_along(make_api, tmp_path):
    api = await make_api(scopes=SCOPES, services=SERVICES)
    await api.core.store.accounts.create_user("carol", password_hash(), email=None, is_admin=False,
                                    orgs=(), at=T0)
    api.tokens["carol"] = await api.client.app[ACCOUNTS].create_token("carol", ttl=None, at=T0)
    await grants.grant(api.core.store, "carol", grants.Scope(1, "platform"), at=T0)
    response, _ = await api.call("POST", "/api/maintenance/create", "carol", data={**WINDOW, **BODY["platform"]},
                                 allow_redirects=False)
    window = response.headers["Location"]
    # jsonservices now belongs to edge: carol, granted platform only, no longer writes its window.
    moved = {**SERVICES, "jsonservices": {**SERVICES["jsonservices"], "scope": "edge"}}
    services = config.from_dict({"scopes": SCOPES, "services": moved}).services
    api.core.reconfigure(dataclasses.replace(api.core.config, services=services))
    response, body = await api.call("POST", f"{window}/comment", "carol", data={"comment": "still mine?"},
                                    allow_redirects=False)
    assert response.status == 403, body
    assert "edge (2)" in body["message"]


# -- reads ---------------------------------------------------------------------------------

def comments(window: dict) -> list[str]:
    return [e["content"] for e in window["events"] if e["type"] == "comment"]


@pytest.mark.parametrize("caller", CALLERS)
async def test_internal_comments_and_authors_only_for_those_who_may_write_the_window(api, caller):
    windows = {scope: await make_window(api, scope) for scope in TARGETS}
    who = CALLERS[caller]
    _, listed = await api.call("GET", "/api/maintenance", who)
    by_id = {item["id"]: item for item in listed["items"]}
    for target, window_id in windows.items():
        _, one = await api.call("GET", f"/api/maintenance/{window_id}", who)
        for window in (one, by_id[window_id]):
            if allowed(caller, target):
                assert comments(window) == [PUBLIC_NOTE, SECRET_NOTE]
                assert [e["author"] for e in window["events"]] == ["grace"] * 3
            else:
                assert comments(window) == [PUBLIC_NOTE]
                assert all("author" not in e for e in window["events"])
                assert not any(name in str(window) for name in WRITERS)


async def test_public_reads_and_the_status_page_name_no_user(api):
    for scope in TARGETS:
        window_id = await make_window(api, scope, scheduled_start_date="2025-12-31T23:00")
        response, _ = await api.call("POST", f"/api/maintenance/{window_id}/update", "grace",
                                     data={**WINDOW, **BODY[scope], "scheduled_start_date": "2025-12-31T23:00",
                                           "name": "Renamed", "status": "in-progress"}, allow_redirects=False)
        assert response.status == 302
    pages = ["/api/maintenance", f"/api/maintenance/{window_id}", "/status", f"/status/maintenance/{window_id}",
             "/api/maintenance/calendar", f"/api/maintenance/{window_id}/calendar"]
    for path in pages:
        for who in (None, "alice", "bob"):
            response, body = await api.call("GET", path, who)
            assert response.status == 200, path
            text = str(body)
            assert "Maintenance updated" in text or "calendar" in path or path == "/status", path
            assert not re.search(r"\b(grace|carol|admin)\b", text), (path, who)
            assert "vault" not in text


# -- a down window by someone without the grant cannot silence a service job -------------------

@pytest.mark.parametrize("who", ["alice", "bob", "carol"])
async def test_a_down_window_by_someone_without_the_grant_cannot_skip_the_services_jobs(make_api, upstream, who):
    services = {**SERVICES, "cdn": {**SERVICES["cdn"], "base_url": str(upstream.make_url("/api"))}}
    api = await make_api(scopes=SCOPES, services=services)
    await api.core.store.accounts.create_user("carol", password_hash(), email=None, is_admin=False,
                                    orgs=("acme",), at=T0)
    api.tokens["carol"] = await api.client.app[ACCOUNTS].create_token("carol", ttl=None, at=T0)
    await grants.grant(api.core.store, "carol", grants.Scope(1, "platform"), at=T0)
    job = {"jobName": "cdn-health", "jobFrequency": "0 0 4 * * ? *", "description": "health",
           "jobServiceInfo": {"serviceType": "intSer", "serviceName": "cdn", "operationName": "health",
                              "serviceExecutionType": "SERVER_URL", "postData": "{}"}}
    response, body = await api.call("POST", "/admin/api/jobs/job", "admin", json=job)
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])

    response, body = await api.call("POST", "/api/maintenance/create", who, allow_redirects=False, data={
        **WINDOW, **BODY["edge"], "scheduled_start_date": "2025-12-31T23:00", "scheduled_end_date": "2026-01-02T00:00"})
    assert response.status == 403, body
    assert (await sql.fetchone(api.core.store, "SELECT count(*) FROM windows"))[0] == 0

    response, body = await api.call("POST", f"/admin/api/jobs/job/run/{job_id}", "admin")
    assert response.status == 200, body
    await api.settle()
    assert upstream.calls == ["/api/health"]
    response, run = await api.call("GET", response.headers["Location"], "admin")
    assert run["executionStatus"] == "Success", run


# -- granting and revoking from the command line ---------------------------------------------------

def write_config(tmp_path) -> str:
    path = tmp_path / "schedd.toml"
    path.write_text('[scopes.platform]\nid = 1\n\n[scopes.edge]\nid = 2\n\n'
                    '[services.jsonservices]\nbase_url = "http://127.0.0.1:9/api"\nid = 10\nscope = "platform"\n\n'
                    '[services.cdn]\nbase_url = "http://127.0.0.1:9/cdn"\nid = 20\nscope = "edge"\n')
    return str(path)


async def schedd(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_grant_and_revoke_from_the_cli_count_at_the_next_request(api, tmp_path, capsys):
    where = ("--config", write_config(tmp_path), "--db", api.core.store.location)
    create = {**WINDOW, **BODY["edge"]}
    response, _ = await api.call("POST", "/api/maintenance/create", "alice", data=create, allow_redirects=False)
    assert response.status == 403

    assert await schedd(capsys, "user", "grant", "alice", "--scope", "edge", *where) == (
        0, "alice may write the windows of: edge (2)\n", "")
    response, _ = await api.call("POST", "/api/maintenance/create", "alice", data=create, allow_redirects=False)
    assert response.status == 302
    window = response.headers["Location"]

    assert await schedd(capsys, "user", "grant", "alice", "--scope", "1", *where) == (
        0, "alice may write the windows of: platform (1), edge (2)\n", "")
    assert await schedd(capsys, "user", "revoke", "alice", "--scope", "2", *where) == (
        0, "alice may write the windows of: platform (1)\n", "")
    response, body = await api.call("POST", f"{window}/delete", "alice", allow_redirects=False)
    assert response.status == 403, body
    code, out, err = await schedd(capsys, "user", "revoke", "alice", "--scope", "edge", *where)
    assert (code, out, err) == (0, "alice may write the windows of: platform (1)\n",
                                "schedd: alice had no grant of scope edge (2)\n")


async def test_a_grant_of_a_scope_the_config_no_longer_declares_can_be_revoked_by_id(api, tmp_path, capsys):
    where = ("--config", write_config(tmp_path), "--db", api.core.store.location)
    await grants.grant(api.core.store, "alice", grants.Scope(7, None), at=T0)
    assert await schedd(capsys, "user", "revoke", "alice", "--scope", "7", *where) == (
        0, "alice may write the windows of: none\n", "")


@pytest.mark.parametrize(("argv", "message"), [
    (("user", "grant", "alice", "--scope", "nosuch"), "--scope: no scope 'nosuch' in the config"),
    (("user", "grant", "alice", "--scope", "7"), "--scope: no scope '7' in the config"),
    (("user", "grant", "nobody", "--scope", "edge"), "user nobody not found"),
    (("user", "revoke", "alice", "--scope", "nosuch"), "--scope: no scope 'nosuch' in the config"),
    (("user", "revoke", "nobody", "--scope", "1"), "user nobody not found"),
])
async def test_bad_grants_are_one_line_and_exit_2_changing_nothing(api, tmp_path, capsys, argv, message):
    where = ("--config", write_config(tmp_path), "--db", api.core.store.location)
    before = [tuple(r) for r in await sql.fetchall(api.core.store, "SELECT * FROM scope_grants")]
    code, out, err = await schedd(capsys, *argv, *where)
    assert (code, out) == (2, "")
    assert err.startswith(f"schedd: {message}") and err.count("\n") == 1, err
    assert [tuple(r) for r in await sql.fetchall(api.core.store, "SELECT * FROM scope_grants")] == before


# -- events written before authors were kept ------------------------------------------------------

async def test_the_migration_moves_user_names_out_of_old_events(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for name in ("0001_initial.sql", "0002_runs_by_creation.sql"):
        conn.executescript(resources.files("schedd.store").joinpath("migrations", name).read_text("utf-8"))
    conn.executescript(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL);"
        "INSERT INTO schema_migrations VALUES (1, 'initial', 0), (2, 'runs_by_creation', 0);"
        "INSERT INTO users (id, name, password_hash, created_at) VALUES (7, 'ops:lead', 'x', 0);"
        "INSERT INTO windows (id, name, status, scope_id, service_id, service_status, creation_date,"
        " scheduled_start_date, scheduled_end_date) VALUES (1, 'w', 'scheduled', 1, 10, 'down', 0, 1, 2);"
        "INSERT INTO window_events (window_id, creation_date, content, internal, type) VALUES"
        " (1, 0, 'Maintenance created by ops:lead', 0, 'create'),"
        " (1, 1, 'Maintenance updated by ops:lead: name a -> b: c', 0, 'update'),"
        " (1, 2, 'Maintenance updated by gone: name b -> c', 0, 'update'),"
        " (1, 3, 'Status changed from scheduled to in-progress: the scheduled start was reached', 0, 'update'),"
        " (1, 4, 'Maintenance created by hand', 0, 'comment');")
    conn.commit()
    conn.close()
    db = Database(path)
    await db.open()
    try:
        events = [tuple(r) for r in await db.fetchall("SELECT content, author_id FROM window_events ORDER BY id")]
    finally:
        await db.close()
    assert events == [
        ("Maintenance created", 7),
        ("Maintenance updated: name a -> b: c", 7),
        ("Maintenance updated: name b -> c", None),
        ("Status changed from scheduled to in-progress: the scheduled start was reached", None),
        ("Maintenance created by hand", None),
    ]


def test_openapi_documents_the_403_of_every_window_write():
    from schedd.api import openapi

    writes = [op for op in openapi.operations() if op.tag == "maintenance windows" and op.method == "POST"]
    assert {op.op_id for op in writes} == {"createMaintenance", "updateMaintenance", "deleteMaintenance",
                                           "commentMaintenance"}
    for op in writes:
        assert 401 in op.answers and 403 in op.answers, op.op_id
        assert "grant" in op.description
