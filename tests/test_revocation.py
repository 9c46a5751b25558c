"""Revocation: tokens, users, passwords and memberships taken back, by the CLI and by logout.

The daemon remembers live tokens for TOKEN_CACHE_SECONDS; each test here fills that memory
with a request just before the revocation and expects the very next request to be refused.
"""

from __future__ import annotations

import re
import sys
import urllib.request

import pytest

from schedd.accounts import REVOCATION_CHECK_SECONDS, TOKEN_CACHE_SECONDS, Accounts, hash_token
from schedd.store import accounts as store
from schedd.store.db import Database
from schedd.store.select import make_store
from tests.support.api import PASSWORD as API_PASSWORD
from tests.support.daemon import PASSWORD, Daemon, schedd

SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/{org}"
LOGIN = "/authService/accounts/login"
LOGOUT = "/authService/accounts/logout"


def cli(daemon: Daemon, *args: str, stdin: str | None = None):
    return schedd(*args, "--db", daemon.db, "--config", str(daemon.config), stdin=stdin)


def listing(daemon: Daemon, org: str, token: str) -> int:
    return daemon.request("GET", SCHEDULES.format(org=org), token=token)[0]


def ui_status(daemon: Daemon, token: str) -> tuple[int, str]:
    """GET /ui with the session cookie holding `token`; redirects are not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(f"http://127.0.0.1:{daemon.port}/ui",
                                     headers={"Cookie": f"schedd_session={token}"})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Location", "")


def add_user(daemon: Daemon, name: str, *orgs: str, password: str = PASSWORD) -> None:
    org_args = [arg for org in orgs for arg in ("--org", org)]
    out = cli(daemon, "user", "add", name, *org_args, "--create-org", "--password-stdin", stdin=password + "\n")
    assert out.returncode == 0, out.stderr


def login(daemon: Daemon, name: str, password: str = PASSWORD) -> tuple[int, dict]:
    return daemon.request("POST", LOGIN, form={"userid": name, "password": password})


def test_token_list_and_revoke_take_effect_at_the_next_request(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "pass"]).start()
    made = cli(daemon, "token", "create", "ops", "--ttl", "1h").stdout.strip()
    assert listing(daemon, "default", made) == 200  # remembered from here on
    out = cli(daemon, "token", "list", "--user", "ops")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["ID", "USER", "KIND", "NAME", "CREATED", "EXPIRES", "STATE"]
    assert made not in out.stdout
    ids = [int(row.split()[0]) for row in rows]
    assert all(row.split()[-1] == "live" for row in rows) and len(ids) == 1

    out = cli(daemon, "token", "revoke", str(ids[0]))
    assert out.returncode == 0 and out.stdout.strip() == f"token {ids[0]} revoked"
    status, body = daemon.request("GET", SCHEDULES.format(org="default"), token=made)
    assert status == 401
    assert cli(daemon, "token", "list", "--user", "ops").stdout.splitlines()[1:] == []
    listed = cli(daemon, "token", "list", "--all").stdout
    assert re.search(rf"^{ids[0]} +ops +access .* revoked$", listed, re.M), listed
    again = cli(daemon, "token", "revoke", str(ids[0]))
    assert again.returncode == 0 and "already revoked" in again.stdout
    assert daemon.stop() == 0


def test_a_disabled_user_loses_tokens_and_sessions_at_once_and_enable_lets_it_log_in(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "pass"]).start()
    add_user(daemon, "ann", "acme")
    status, body = login(daemon, "ann")
    assert status == 200
    session = body["claims_token"]["value"]
    api_token = cli(daemon, "token", "create", "ann").stdout.strip()
    assert listing(daemon, "acme", api_token) == 200 and listing(daemon, "acme", session) == 200
    assert ui_status(daemon, session)[0] == 200

    out = cli(daemon, "user", "disable", "ann")
    assert out.returncode == 0 and out.stdout.strip() == "ann disabled; 3 token(s) revoked"  # access, refresh, CLI
    assert listing(daemon, "acme", api_token) == 401
    assert listing(daemon, "acme", session) == 401
    status, location = ui_status(daemon, session)
    assert status == 303 and location.startswith("/ui/login")
    assert login(daemon, "ann")[0] == 401
    refused = cli(daemon, "token", "create", "ann")
    assert refused.returncode == 2 and "disabled" in refused.stderr
    users = cli(daemon, "user", "list").stdout.splitlines()
    assert users[0].split() == ["NAME", "ADMIN", "STATE", "ORGS", "CREATED"]
    assert [row.split()[:4] for row in users[1:]] == [["ann", "no", "disabled", "acme"],
                                                     ["ops", "yes", "enabled", "-"]]

    assert cli(daemon, "user", "enable", "ann").returncode == 0
    status, body = login(daemon, "ann")
    assert status == 200
    assert listing(daemon, "acme", body["claims_token"]["value"]) == 200
    assert listing(daemon, "acme", api_token) == 401  # enabling does not bring old tokens back
    assert daemon.stop() == 0


def test_passwd_changes_the_password_and_revokes_the_old_sessions(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "pass"]).start()
    add_user(daemon, "ann", "acme")
    old = login(daemon, "ann")[1]["claims_token"]["value"]
    assert listing(daemon, "acme", old) == 200
    out = cli(daemon, "user", "passwd", "ann", "--password-stdin", stdin="a brand new password\n")
    assert out.returncode == 0, out.stderr
    assert listing(daemon, "acme", old) == 401
    assert login(daemon, "ann")[0] == 401
    status, body = login(daemon, "ann", "a brand new password")
    assert status == 200
    kept = body["claims_token"]["value"]
    out = cli(daemon, "user", "passwd", "ann", "--password-stdin", "--keep-tokens", stdin="a third password\n")
    assert out.returncode == 0 and "0 token(s) revoked" in out.stdout
    assert listing(daemon, "acme", kept) == 200
    short = cli(daemon, "user", "passwd", "ann", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and len(short.stderr.splitlines()) == 1
    assert login(daemon, "ann", "a third password")[0] == 200
    assert daemon.stop() == 0


def test_user_remove_takes_a_membership_back_at_once(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "pass"]).start()
    add_user(daemon, "ann", "acme", "default")
    token = cli(daemon, "token", "create", "ann").stdout.strip()
    assert listing(daemon, "acme", token) == 200
    out = cli(daemon, "user", "remove", "ann", "--org", "acme")
    assert out.returncode == 0 and out.stdout.strip() == "ann removed from acme"
    assert listing(daemon, "acme", token) == 404
    assert listing(daemon, "default", token) == 200
    again = cli(daemon, "user", "remove", "ann", "--org", "acme")
    assert again.returncode == 2 and again.stderr.strip() == "schedd: ann is not a member of acme"
    unknown = cli(daemon, "user", "remove", "nobody", "--org", "acme")
    assert unknown.returncode == 2 and "user nobody not found" in unknown.stderr
    assert daemon.stop() == 0


async def test_logout_revokes_the_token_it_is_called_with(api):
    response, body = await api.call("POST", LOGIN, who=None, data={"userid": "alice", "password": API_PASSWORD})
    assert response.status == 200
    access, refresh = body["claims_token"]["value"], body["refresh_token"]
    headers = {"X-VoltMX-Authorization": access}
    response, _ = await api.call("GET", SCHEDULES.format(org="acme"), who=None, headers=headers)
    assert response.status == 200

    response, body = await api.call("POST", LOGOUT, who=None, headers=headers, json={"refresh_token": refresh})
    assert response.status == 200
    assert body == {"status": "SUCCESS", "result": {"userid": "alice", "revoked": 2}, "message": None,
                    "token": None}
    response, _ = await api.call("GET", SCHEDULES.format(org="acme"), who=None, headers=headers)
    assert response.status == 401
    record = await api.core.store.accounts.lookup_token(hash_token(refresh))
    assert record is not None and record.revoked_at is not None
    response, body = await api.call("POST", LOGOUT, who=None, headers=headers)
    assert response.status == 401 and body["status"] == "FAIL" and body["token"] is None


async def test_logout_without_a_token_is_401_and_another_users_refresh_token_is_left_alone(api):
    response, body = await api.call("POST", LOGOUT, who=None)
    assert response.status == 401
    assert body["status"] == "FAIL" and "missing token" in body["message"]
    response, body = await api.call("POST", LOGIN, who=None, data={"userid": "bob", "password": API_PASSWORD})
    bobs_refresh = body["refresh_token"]
    response, body = await api.call("POST", LOGOUT, who="alice", json={"refresh_token": bobs_refresh})
    assert response.status == 200 and body["result"] == {"userid": "alice", "revoked": 1}
    record = await api.core.store.accounts.lookup_token(hash_token(bobs_refresh))
    assert record is not None and record.revoked_at is None
    response, body = await api.call("POST", LOGOUT, who="bob", json={"refresh_token": 5})
    assert response.status == 400 and body["result"]["field"] == "refresh_token"


@pytest.mark.parametrize("how", ["token", "disable", "membership"])
async def test_a_revocation_by_another_process_is_seen_before_the_cache_time(how, api, tmp_path):
    """Another connection (as the CLI is) revokes; the remembered token is refused at once."""
    headers = api.auth("alice")
    response, _ = await api.call("GET", SCHEDULES.format(org="acme"), who=None, headers=headers)
    assert response.status == 200  # now remembered for TOKEN_CACHE_SECONDS
    other = make_store(api.core.store.location, api.core.config.database)
    await other.open()
    try:
        elsewhere = Accounts(other, api.core.config.auth)
        if how == "token":
            (info,) = await elsewhere.list_tokens("alice")
            assert await elsewhere.revoke_token_id(info.id, at=api.clock.now())
        elif how == "disable":
            assert await elsewhere.disable("alice", at=api.clock.now()) == 1
        else:
            assert await elsewhere.remove_member("alice", "acme")
        elsewhere.close()
    finally:
        await other.close()
    api.clock.advance(REVOCATION_CHECK_SECONDS / 2)  # the epoch was read this recently: trusted
    response, _ = await api.call("GET", SCHEDULES.format(org="acme"), who=None, headers=headers)
    assert response.status == 200
    api.clock.advance(REVOCATION_CHECK_SECONDS)  # far below the cache time of TOKEN_CACHE_SECONDS
    assert REVOCATION_CHECK_SECONDS * 100 <= TOKEN_CACHE_SECONDS
    response, _ = await api.call("GET", SCHEDULES.format(org="acme"), who=None, headers=headers)
    assert response.status == (404 if how == "membership" else 401)


async def test_a_database_made_before_revocation_is_upgraded_in_place(tmp_path):
    """Users made under the first two migrations keep working; none is disabled; the epoch starts at 0."""
    import sqlite3

    from schedd.store.db import migrations

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                 " applied_at REAL NOT NULL)")
    for m in migrations():
        if m.version < 3:
            conn.executescript(m.sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (m.version, m.name))
    conn.execute("INSERT INTO users (name, password_hash, created_at) VALUES ('old', 'x', 0)")
    conn.commit()
    conn.close()
    db = Database(path)
    await db.open()
    try:
        (user,) = await store.list_users(db)
        assert (user.name, user.disabled_at) == ("old", None)
        watch = store.RevocationWatch(str(path))
        assert watch.epoch() == 0
        watch.close()
    finally:
        await db.close()
