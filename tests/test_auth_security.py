"""Auth as an attacker sees it: secrets at rest and in logs, dead tokens, throttling, org isolation."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tomli_w

import schedd.accounts
from schedd.api import openapi
from schedd.http.common import ACCOUNTS
from tests.support.api import PASSWORD, T0
from tests.support.daemon import Daemon
from tests.support.daemon import schedd as run_cli
from tests.support import sql

SCOPES = {"platform": {"id": 1}}
SERVICES = {"jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"}}
JOBS = "/admin/api/jobs/job"
JOB = {"jobName": "nightly", "jobFrequency": "0 0 4 ? * * *",
       "jobServiceInfo": {"serviceName": "jsonservices", "serviceType": "intSer", "operationName": "op",
                          "serviceExecutionType": "SERVER_URL"}}
CRON = "0 0 4 ? * * *"


# -- secrets at rest and in the log --------------------------------------------------------

SECRET_PASSWORD = "Grep-me-if-you-can 7f3a9c"
WRONG_PASSWORD = "Wrong-but-secret 41d2e8"


def _http(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
          data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _files(db: str) -> bytes:
    return b"".join(Path(db + suffix).read_bytes() for suffix in ("", "-wal", "-shm")
                    if Path(db + suffix).exists())


def test_passwords_and_tokens_are_never_stored_or_logged_in_clear(tmp_path):
    daemon = Daemon(tmp_path, [sys.executable, "-c", "pass"])
    daemon.config.write_bytes(tomli_w.dumps({"logging": {"level": "DEBUG"}}).encode())
    out = run_cli("user", "add", "ops", "--admin", "--password-stdin", "--db", daemon.db,
                  "--config", str(daemon.config), stdin=SECRET_PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    assert SECRET_PASSWORD not in out.stdout + out.stderr
    daemon.start()
    try:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, body = _http(daemon.port, "POST", "/authService/accounts/login", headers=form,
                             data=f"userid=ops&password={SECRET_PASSWORD.replace(' ', '+')}".encode())
        assert status == 200, body
        answer = json.loads(body)
        access, refresh = answer["claims_token"]["value"], answer["refresh_token"]
        status, _ = _http(daemon.port, "POST", "/authService/accounts/login",
                          headers={"Content-Type": "application/json"},
                          data=json.dumps({"userid": "ops", "password": WRONG_PASSWORD}).encode())
        assert status == 401
        out = run_cli("token", "create", "ops", "--ttl", "1h", "--db", daemon.db, "--config", str(daemon.config))
        assert out.returncode == 0, out.stderr
        created = out.stdout.strip()
        assert re.fullmatch(r"sd_[A-Za-z0-9_-]{43}", created)
        forged = "sd_" + secrets.token_urlsafe(32)

        assert _http(daemon.port, "GET", JOBS, headers={"X-VoltMX-Authorization": access})[0] == 200
        assert _http(daemon.port, "GET", JOBS, headers={"Authorization": f"Bearer {created}"})[0] == 200
        assert _http(daemon.port, "GET", JOBS, headers={"Authorization": f"Bearer {access}"})[0] == 200
        assert _http(daemon.port, "GET", JOBS, headers={"X-VoltMX-Authorization": created})[0] == 200
        assert _http(daemon.port, "GET", JOBS, headers={"X-VoltMX-Authorization": refresh})[0] == 401
        assert _http(daemon.port, "GET", JOBS, headers={"Authorization": f"Bearer {forged}"})[0] == 401

        tokens = [access, refresh, created, forged]
        secrets_ = [SECRET_PASSWORD, WRONG_PASSWORD, *tokens, *(t.removeprefix("sd_") for t in tokens)]
        stored = _files(daemon.db)
        assert b"scrypt$" in stored  # the password is there, hashed
        for token in (access, refresh, created):  # each token is there, as its SHA-256 digest
            assert hashlib.sha256(token.encode()).digest() in stored
    finally:
        assert daemon.stop() == 0
    stored_after = _files(daemon.db)
    log = daemon.log.read_bytes()
    assert b"action=http" in log and b"level=debug" in log  # the log did record the requests
    for secret in secrets_:
        for where, data in (("database while serving", stored), ("database after stop", stored_after),
                            ("daemon log", log)):
            assert secret.encode() not in data, f"a secret is in the {where}"


# -- expired and revoked tokens ---------------------------------------------------------------

# One route per family, each needing a token: (method, path, body).
GUARDED = [
    ("GET", "/aggregates/maintenance/scheduler/jobs/orgId/acme", None),
    ("GET", "/org/acme/aggregates-creation/builds/history", None),
    ("GET", JOBS, None),
    ("POST", "/api/maintenance/1/delete", None),
]


@pytest.fixture
async def api(make_api):
    return await make_api(scopes=SCOPES, services=SERVICES)


async def _answers(api, token: str, header: str) -> list[int]:
    headers = {"X-VoltMX-Authorization": token} if header == "voltmx" else {"Authorization": f"Bearer {token}"}
    statuses = []
    for method, path, body in GUARDED:
        response, answer = await api.call(method, path, None, headers=headers, json=body, allow_redirects=False)
        if response.status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert token not in json.dumps(answer)
        statuses.append(response.status)
    return statuses


@pytest.mark.parametrize("header", ["voltmx", "bearer"])
async def test_a_token_is_refused_once_it_expires(api, clock, header):
    accounts = api.client.app[ACCOUNTS]
    token = await accounts.create_token("admin", ttl=60, at=T0)
    assert 401 not in await _answers(api, token, header)
    clock.set(T0 + 59.9)
    assert 401 not in await _answers(api, token, header)
    clock.set(T0 + 60)
    assert await _answers(api, token, header) == [401] * len(GUARDED)


async def test_a_login_token_expires_after_token_ttl(make_api, clock):
    api = await make_api(scopes=SCOPES, services=SERVICES, auth={"token_ttl": "1h"})
    response, body = await api.call("POST", "/authService/accounts/login", None,
                                    data={"userid": "admin", "password": PASSWORD})
    assert response.status == 200
    token = body["claims_token"]["value"]
    assert body["claims_token"]["exp"] == int((T0 + 3600) * 1000)
    assert 401 not in await _answers(api, token, "voltmx")
    clock.set(T0 + 3600)
    assert await _answers(api, token, "voltmx") == [401] * len(GUARDED)


@pytest.mark.parametrize("header", ["voltmx", "bearer"])
async def test_a_revoked_token_is_refused_at_once_and_others_still_work(api, clock, header):
    accounts = api.client.app[ACCOUNTS]
    doomed = await accounts.create_token("admin", ttl=None, at=T0)
    kept = await accounts.create_token("admin", ttl=None, at=T0)
    assert 401 not in await _answers(api, doomed, header)
    assert await accounts.revoke(doomed, at=T0 + 1)
    assert await _answers(api, doomed, header) == [401] * len(GUARDED)
    assert 401 not in await _answers(api, kept, header)
    assert not await accounts.revoke(doomed, at=T0 + 2)  # already revoked


async def test_a_refresh_token_is_no_api_token_and_a_revoked_login_token_is_refused(api):
    # The operator view's logout revokes its token the same way (tests/test_web.py).
    response, body = await api.call("POST", "/authService/accounts/login", None,
                                    data={"userid": "admin", "password": PASSWORD})
    refresh = body["refresh_token"]
    assert await _answers(api, refresh, "voltmx") == [401] * len(GUARDED)  # never an API token
    access = body["claims_token"]["value"]
    accounts = api.client.app[ACCOUNTS]
    await accounts.revoke(access, at=T0)
    assert await _answers(api, access, "bearer") == [401] * len(GUARDED)


# -- login throttling under concurrency ---------------------------------------------------------


async def test_concurrent_wrong_logins_reach_the_password_check_at_most_max_failures_times(
        make_api, monkeypatch, clock):
    api = await make_api(auth={"login_max_failures": 5, "login_lockout": "60s"})
    checked = []
    real = schedd.accounts.verify_password

    def spy(password: str, encoded: str) -> bool:
        checked.append(password)
        return real(password, encoded)

    monkeypatch.setattr(schedd.accounts, "verify_password", spy)
    attempts = [api.call("POST", "/authService/accounts/login", None,
                         data={"userid": "alice", "password": f"wrong guess {i}"}) for i in range(30)]
    answers = await asyncio.gather(*attempts)
    statuses = sorted(response.status for response, _ in answers)
    assert len(checked) <= 5
    assert statuses == [401] * len(checked) + [429] * (30 - len(checked))
    for response, body in answers:
        if response.status == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert body["status"] == "FAIL" and body["token"] is None

    # Locked out: the right password is not even checked, until the lockout ends.
    response, _ = await api.call("POST", "/authService/accounts/login", None,
                                 data={"userid": "alice", "password": PASSWORD})
    assert response.status == 429 and len(checked) <= 5
    response, _ = await api.call("POST", "/authService/accounts/login", None,
                                 data={"userid": "bob", "password": PASSWORD})
    assert response.status == 200  # another userid is not locked out
    clock.advance(61)
    response, _ = await api.call("POST", "/authService/accounts/login", None,
                                 data={"userid": "alice", "password": PASSWORD})
    assert response.status == 200


# -- organizations: bob (org other) never reaches acme's data -----------------------------------

# Operations without org data, and why; every other operation is checked below.
NOT_ORG_SCOPED = {
    "ops": "process health, metrics and this document: no org data",
    "auth": "login: answers only for the credentials given",
    "maintenance windows": "maintenance windows belong to a configured service's scope, not to an org; reads are "
                           "public; writes need an admin or a grant of the scope (tests/test_window_roles.py)",
}
VALID_BODIES = {
    "createMaintenanceSchedule": {"time_expression": CRON, "scheduler_type": "time-based"},
    "createCubeSchedule": {"time_expression": CRON, "path": "aggregate/create"},
    "executeBuild": {"full_build": True},
}


def _org_scoped(op: openapi.Op) -> bool:
    return "{orgId}" in op.path


async def _acme_data(api) -> dict[str, str]:
    """A maintenance schedule and run, a build schedule and build of acme, made by alice."""
    _, body = await api.call("POST", "/aggregates/maintenance/scheduler/jobs/orgId/acme", "alice",
                             json=VALID_BODIES["createMaintenanceSchedule"])
    maintenance_job = body["response"]["job_id"]
    _, body = await api.call("POST", "/org/acme/project/p1/cube/c1/aggregates-creation/scheduler", "alice",
                             json=VALID_BODIES["createCubeSchedule"])
    cube_job = body["response"]["job_id"]
    response, _ = await api.call("POST", "/aggregates/maintenance/orgId/acme/run-immediately", "alice")
    assert response.status == 200
    response, _ = await api.call("POST", "/org/acme/project/p1/cube/c1/aggregates-creation/execute", "alice",
                                 json={"full_build": True})
    assert response.status == 200
    await api.settle()
    return {"maintenance": maintenance_job, "cube": cube_job}


async def _rows(api) -> dict[str, list[tuple]]:
    return {table: [tuple(row) for row in await sql.fetchall(api.core.store, f"SELECT * FROM {table} ORDER BY id")]
            for table in ("schedules", "runs", "windows", "window_events")}


def _fill(op: openapi.Op, org: str, jobs: dict[str, str]) -> str:
    job = jobs["cube"] if "/cube/" in op.path else jobs["maintenance"]
    return (op.path.replace("{orgId}", org).replace("{projectId}", "p1").replace("{cubeId}", "c1")
            .replace("{jobId}", job))


def test_every_operation_is_either_org_scoped_admin_only_or_says_why_not():
    for op in openapi.operations():
        assert _org_scoped(op) or op.tag == "jobs" or op.tag in NOT_ORG_SCOPED, f"{op.method} {op.path}"


@pytest.mark.parametrize("op", [op for op in openapi.operations() if _org_scoped(op)],
                         ids=lambda op: f"{op.method} {op.path}")
async def test_another_orgs_user_can_neither_read_nor_change_its_data(api, op):
    jobs = await _acme_data(api)
    before = await _rows(api)
    body = VALID_BODIES.get(op.op_id.removesuffix("V1"))
    response, answer = await api.call(op.method, _fill(op, "acme", jobs), "bob", json=body)
    assert response.status == 404, answer
    assert answer["response"] is None
    if "{jobId}" in op.path:
        # acme's schedule id under bob's own org: the id alone opens nothing.
        response, answer = await api.call(op.method, _fill(op, "other", jobs), "bob", json=body)
        assert response.status == 404, answer
        assert answer["response"] is None
    await api.settle()
    assert await _rows(api) == before


@pytest.mark.parametrize("who", ["alice", "bob"])
@pytest.mark.parametrize("op", [op for op in openapi.operations() if op.tag == "jobs"],
                         ids=lambda op: f"{op.method} {op.path}")
async def test_non_admins_get_401_on_every_job_route(api, op, who):
    response, body = await api.call("POST", JOBS, "admin", json=JOB)
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    response, body = await api.call("POST", f"{JOBS}/run/{job_id}", "admin")
    run_id = int(response.headers["Location"].rsplit("/", 1)[1])
    await api.settle()
    before = await _rows(api)
    path = op.path.replace("{jobId}", str(job_id)).replace("{jobRunId}", str(run_id))
    body = {**JOB, "jobId": job_id, "jobName": "taken over"} if op.method in ("POST", "PUT") else None
    for header in ("voltmx", "bearer"):
        response, answer = await api.call(op.method, path, None, headers=api.auth(who, header), json=body)
        assert response.status == 401, answer
        assert answer["status"] == "FAIL" and "administrator" in answer["message"]
    await api.settle()
    assert await _rows(api) == before
