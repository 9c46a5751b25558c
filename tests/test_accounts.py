"""Accounts: password hashes, login throttling, tokens, users and orgs, on a real SQLite file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schedd import accounts as accounts_module
from schedd.accounts import (
    Accounts,
    LoginThrottle,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from schedd.config import AuthConfig
from schedd.errors import Conflict, NotFound, Throttled, Unauthorized, ValidationError
from schedd.store import accounts as store
from schedd.store.db import Database
from schedd.store.sqlite import SqliteStore

NOW = 1_700_000_000.0
TTL = 3600.0
MAX_FAILURES = 3
LOCKOUT = 60.0
PASSWORD = "correct horse battery"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "t.db")
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def accounts(db: Database) -> Accounts:
    config = AuthConfig(token_ttl=TTL, login_max_failures=MAX_FAILURES, login_lockout=LOCKOUT)
    svc = Accounts(SqliteStore(db), config)
    await svc.ensure_default_org(NOW)
    await svc.create_user("alice", PASSWORD, admin=False, orgs=["default", "acme"], email=None, at=NOW)
    return svc


class ScryptCounter:
    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, *args: object, **kwargs: object) -> bytes:
        with self._lock:
            self.calls += 1
        return self.real(*args, **kwargs)  # type: ignore[arg-type]

    real = staticmethod(hashlib.scrypt)


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> ScryptCounter:
    counter = ScryptCounter()
    monkeypatch.setattr(hashlib, "scrypt", counter)
    return counter


# -- password hashes ---------------------------------------------------------------------


def test_hash_has_scrypt_format_with_random_salt() -> None:
    encoded = hash_password(PASSWORD)
    scheme, n, r, p, salt, key = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt, validate=True)) == 16
    assert len(base64.b64decode(key, validate=True)) == 32
    assert hash_password(PASSWORD) != encoded


def test_verify_accepts_right_password_only() -> None:
    encoded = hash_password(PASSWORD)
    assert verify_password(PASSWORD, encoded)
    assert not verify_password(PASSWORD + "x", encoded)
    assert not verify_password(PASSWORD.upper(), encoded)


@pytest.mark.parametrize(
    "encoded",
    ["", "scrypt", "bcrypt$16384$8$1$AAAA$AAAA", "scrypt$x$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!$AAAA",
     "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA"],
)
def test_verify_rejects_malformed_hash(encoded: str) -> None:
    assert not verify_password(PASSWORD, encoded)


def test_lone_surrogate_password_hashes_instead_of_crashing() -> None:
    encoded = hash_password("pass\ud800word")
    assert verify_password("pass\ud800word", encoded)
    assert not verify_password("pass\ud801word", encoded)


@pytest.mark.parametrize("password", ["", "1234567", "x" * 1025])
def test_password_length_is_validated(password: str) -> None:
    with pytest.raises(ValidationError) as info:
        hash_password(password)
    assert info.value.field == "password"


@pytest.mark.parametrize("password", ["12345678", "x" * 1024])
def test_password_length_bounds_are_inclusive(password: str) -> None:
    assert verify_password(password, hash_password(password))


# -- login -------------------------------------------------------------------------------


async def test_login_issues_tokens_for_the_user(accounts: Accounts) -> None:
    result = await accounts.login("alice", PASSWORD, at=NOW)
    assert result.user.name == "alice"
    assert result.user.orgs == ("acme", "default")
    assert result.access_expires_at == NOW + TTL
    assert result.access_token.startswith("sd_") and result.refresh_token.startswith("sd_")
    assert result.access_token != result.refresh_token
    user = await accounts.authenticate(result.access_token, at=NOW + 1)
    assert user.name == "alice" and user.can_see("acme") and not user.can_see("other")


@pytest.mark.parametrize("userid", ["bob", "alice2", "a b", "x" * 500, "al\x00ice", "al\ud800ice"])
async def test_unknown_user_fails_like_wrong_password_after_one_scrypt(
    accounts: Accounts, scrypt_calls: ScryptCounter, userid: str
) -> None:
    with pytest.raises(Unauthorized) as wrong_password:
        await accounts.login("alice", "wrong password", at=NOW)
    assert scrypt_calls.calls == 1
    with pytest.raises(Unauthorized) as unknown_user:
        await accounts.login(userid, "wrong password", at=NOW)
    assert scrypt_calls.calls == 2, f"{userid!r} did not pay for a hash"
    assert str(unknown_user.value) == str(wrong_password.value) == "invalid userid or password"


async def test_dummy_hash_costs_what_a_real_hash_costs(accounts: Accounts) -> None:
    real = (await accounts.records.get_user("alice")).password_hash
    assert accounts._dummy_hash.split("$")[:4] == real.split("$")[:4]


async def test_right_password_of_other_user_does_not_log_in(accounts: Accounts) -> None:
    await accounts.create_user("bob", "bobs password", admin=False, orgs=[], email=None, at=NOW)
    with pytest.raises(Unauthorized):
        await accounts.login("alice", "bobs password", at=NOW)


# -- throttling --------------------------------------------------------------------------


async def _fail(accounts: Accounts, times: int, at: float, userid: str = "alice") -> None:
    for _ in range(times):
        with pytest.raises(Unauthorized):
            await accounts.login(userid, "wrong password", at=at)


async def test_lockout_after_max_failures_skips_the_password_check(
    accounts: Accounts, scrypt_calls: ScryptCounter
) -> None:
    await _fail(accounts, MAX_FAILURES, NOW)
    assert scrypt_calls.calls == MAX_FAILURES
    with pytest.raises(Throttled) as info:
        await accounts.login("alice", PASSWORD, at=NOW)
    assert info.value.retry_after == LOCKOUT
    with pytest.raises(Throttled) as info:
        await accounts.login("alice", PASSWORD, at=NOW + 10.5)
    assert info.value.retry_after == 50
    assert scrypt_calls.calls == MAX_FAILURES


async def test_lockout_passes_after_lockout_seconds(accounts: Accounts) -> None:
    await _fail(accounts, MAX_FAILURES, NOW)
    with pytest.raises(Throttled) as info:
        await accounts.login("alice", PASSWORD, at=NOW + LOCKOUT - 0.5)
    assert info.value.retry_after == 1
    result = await accounts.login("alice", PASSWORD, at=NOW + LOCKOUT)
    assert result.user.name == "alice"


async def test_lockout_is_per_userid_and_applies_to_unknown_users(accounts: Accounts) -> None:
    await _fail(accounts, MAX_FAILURES, NOW, userid="mallory")
    with pytest.raises(Throttled):
        await accounts.login("mallory", "wrong password", at=NOW)
    assert (await accounts.login("alice", PASSWORD, at=NOW)).user.name == "alice"


async def test_success_resets_the_failure_count(accounts: Accounts) -> None:
    await _fail(accounts, MAX_FAILURES - 1, NOW)
    await accounts.login("alice", PASSWORD, at=NOW)
    await _fail(accounts, MAX_FAILURES - 1, NOW)
    await accounts.login("alice", PASSWORD, at=NOW)


async def test_failures_older_than_the_window_are_forgotten(accounts: Accounts) -> None:
    await _fail(accounts, MAX_FAILURES - 1, NOW)
    await _fail(accounts, MAX_FAILURES - 1, NOW + LOCKOUT)
    await accounts.login("alice", PASSWORD, at=NOW + LOCKOUT)


async def test_concurrent_attempts_cannot_pass_the_limit(
    accounts: Accounts, scrypt_calls: ScryptCounter
) -> None:
    results = await asyncio.gather(
        *(accounts.login("alice", f"wrong {i}", at=NOW) for i in range(20)), return_exceptions=True
    )
    assert scrypt_calls.calls == MAX_FAILURES
    assert sum(isinstance(r, Unauthorized) for r in results) == MAX_FAILURES
    assert sum(isinstance(r, Throttled) for r in results) == 20 - MAX_FAILURES


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_failures=3, lockout=60.0, capacity=100)
    for i in range(1000):
        throttle.attempt(f"user{i}", at=NOW)
    assert len(throttle) == 100


def test_flooding_fresh_userids_does_not_lift_a_lockout() -> None:
    throttle = LoginThrottle(max_failures=3, lockout=60.0, capacity=100)
    for _ in range(3):
        throttle.attempt("victim", at=NOW)
    for i in range(1000):
        throttle.attempt(f"flood{i}", at=NOW + 1)
    with pytest.raises(Throttled):
        throttle.attempt("victim", at=NOW + 2)


def test_expired_entries_are_evicted_before_live_ones() -> None:
    throttle = LoginThrottle(max_failures=3, lockout=60.0, capacity=2)
    throttle.attempt("expired", at=NOW)
    throttle.attempt("live", at=NOW + 10)
    throttle.attempt("expired", at=NOW + 50)
    throttle.attempt("fresh", at=NOW + 61)
    throttle.attempt("live", at=NOW + 62)
    throttle.attempt("live", at=NOW + 63)
    with pytest.raises(Throttled):
        throttle.attempt("live", at=NOW + 64)


# -- tokens ------------------------------------------------------------------------------


def test_new_tokens_are_prefixed_and_random() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("sd_") and len(t) == 46 for t in tokens)
    assert len(hash_token(new_token())) == 32


async def test_access_token_expires(accounts: Accounts) -> None:
    result = await accounts.login("alice", PASSWORD, at=NOW)
    await accounts.authenticate(result.access_token, at=result.access_expires_at - 0.001)
    with pytest.raises(Unauthorized, match="expired"):
        await accounts.authenticate(result.access_token, at=result.access_expires_at)


async def test_revoked_token_is_refused(accounts: Accounts) -> None:
    result = await accounts.login("alice", PASSWORD, at=NOW)
    assert await accounts.revoke(result.access_token, at=NOW + 1)
    with pytest.raises(Unauthorized):
        await accounts.authenticate(result.access_token, at=NOW + 2)
    assert not await accounts.revoke(result.access_token, at=NOW + 3)


async def test_refresh_token_is_not_an_access_token(accounts: Accounts) -> None:
    result = await accounts.login("alice", PASSWORD, at=NOW)
    with pytest.raises(Unauthorized):
        await accounts.authenticate(result.refresh_token, at=NOW + 1)


@pytest.mark.parametrize(
    "token", ["", "sd_", "sd_short", "Bearer sd_x", "x" * 46, "sd_" + "A" * 43, "sd_" + "\ud800" * 43]
)
async def test_unknown_or_malformed_token_is_refused(accounts: Accounts, token: str) -> None:
    with pytest.raises(Unauthorized):
        await accounts.authenticate(token, at=NOW)
    assert not await accounts.revoke(token, at=NOW)


async def test_created_token_uses_config_ttl_by_default(accounts: Accounts) -> None:
    token = await accounts.create_token("alice", ttl=None, at=NOW, name="ci")
    await accounts.authenticate(token, at=NOW + TTL - 1)
    with pytest.raises(Unauthorized):
        await accounts.authenticate(token, at=NOW + TTL)


async def test_created_token_takes_its_own_ttl(accounts: Accounts) -> None:
    token = await accounts.create_token("alice", ttl=30 * 86400.0, at=NOW)
    assert (await accounts.authenticate(token, at=NOW + 29 * 86400.0)).name == "alice"


async def test_token_for_unknown_user_is_not_found(accounts: Accounts) -> None:
    with pytest.raises(NotFound):
        await accounts.create_token("nobody", ttl=None, at=NOW)


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("inf"), float("nan")])
async def test_token_ttl_must_be_positive(accounts: Accounts, ttl: float) -> None:
    with pytest.raises(ValidationError) as info:
        await accounts.create_token("alice", ttl=ttl, at=NOW)
    assert info.value.field == "ttl"


async def test_no_secret_reaches_the_database_file(accounts: Accounts, db: Database, tmp_path: Path) -> None:
    login = await accounts.login("alice", PASSWORD, at=NOW)
    cli = await accounts.create_token("alice", ttl=None, at=NOW, name="ci")
    secrets_ = [PASSWORD, login.access_token, login.refresh_token, cli]

    def file_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.glob("t.db*"))

    await db.flush()
    data = file_bytes()
    assert hash_token(cli) in data, "the grep does not see the token table"
    for secret in secrets_:
        assert secret.encode() not in data, secret
    await db.close()
    data = file_bytes()
    for secret in secrets_:
        assert secret.encode() not in data, secret
    await db.open()


# -- users and orgs ----------------------------------------------------------------------


async def test_create_user_creates_missing_orgs(accounts: Accounts, db: Database) -> None:
    user = await accounts.create_user(
        "carol", "carols password", admin=False, orgs=["new-org", "new-org"], email="c@example.com", at=NOW
    )
    assert user.orgs == ("new-org",) and user.email == "c@example.com"
    assert await store.org_exists(db, "new-org")
    assert user.can_see("new-org") and not user.can_see("acme")


async def test_admin_sees_every_org(accounts: Accounts) -> None:
    admin = await accounts.create_user("root", "root password", admin=True, orgs=[], email=None, at=NOW)
    assert admin.can_see("anything")


async def test_taken_user_name_conflicts(accounts: Accounts) -> None:
    with pytest.raises(Conflict):
        await accounts.create_user("alice", "another password", admin=False, orgs=[], email=None, at=NOW)


async def test_add_org_tells_whether_it_was_new(accounts: Accounts, db: Database) -> None:
    assert await accounts.add_org("team.a_1-x", NOW)
    assert not await accounts.add_org("team.a_1-x", NOW)
    assert await store.org_exists(db, "team.a_1-x")


async def test_default_org_exists(accounts: Accounts, db: Database) -> None:
    await accounts.ensure_default_org(NOW + 1)
    assert "default" in await store.list_orgs(db)


@pytest.mark.parametrize(
    "name",
    [
        "", "x" * 129, "a b", "a\tb", "a\nb", "a\x00b", "a\x7fb",
        "a\u200bb", "\u202eevil", "a\u00a0b", "a\ud800b",
    ],
)
async def test_bad_user_names_are_refused_naming_the_field(accounts: Accounts, name: str) -> None:
    with pytest.raises(ValidationError) as info:
        await accounts.create_user(name, PASSWORD, admin=False, orgs=[], email=None, at=NOW)
    assert info.value.field == "name", repr(name)


@pytest.mark.parametrize("name", ["b", "x" * 128, "élodie", "user@example.com", "o'brien"])
async def test_good_user_names_are_accepted(accounts: Accounts, name: str) -> None:
    user = await accounts.create_user(name, PASSWORD, admin=False, orgs=[], email=None, at=NOW)
    assert (await accounts.login(name, PASSWORD, at=NOW)).user.id == user.id


@pytest.mark.parametrize("org", ["", "-abc", ".x", "_x", "a/b", "a b", "x" * 129, "é", "a\nb", "a;DROP"])
async def test_bad_org_ids_are_refused_naming_the_field(accounts: Accounts, org: str) -> None:
    with pytest.raises(ValidationError) as info:
        await accounts.add_org(org, NOW)
    assert info.value.field == "orgId", repr(org)
    with pytest.raises(ValidationError) as info:
        await accounts.create_user("dave", PASSWORD, admin=False, orgs=[org], email=None, at=NOW)
    assert info.value.field == "orgId", repr(org)


@pytest.mark.parametrize("email", ["", "nobody", "@", "a@", "a b@example.com", "x" * 250 + "@example.com"])
async def test_bad_email_is_refused_naming_the_field(accounts: Accounts, email: str) -> None:
    with pytest.raises(ValidationError) as info:
        await accounts.create_user("erin", PASSWORD, admin=False, orgs=[], email=email, at=NOW)
    assert info.value.field == "email", repr(email)


async def test_bad_password_on_create_names_the_field(accounts: Accounts) -> None:
    with pytest.raises(ValidationError) as info:
        await accounts.create_user("frank", "short", admin=False, orgs=[], email=None, at=NOW)
    assert info.value.field == "password"


async def test_scrypt_runs_off_the_event_loop(accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    real = accounts_module.verify_password

    def spy(password: str, encoded: str) -> bool:
        threads.append(threading.get_ident())
        return real(password, encoded)

    monkeypatch.setattr(accounts_module, "verify_password", spy)
    await accounts.login("alice", PASSWORD, at=NOW)
    assert threads and loop_thread not in threads


async def test_a_remembered_token_is_refused_at_once_when_revoked_here(accounts: Accounts) -> None:
    result = await accounts.login("alice", PASSWORD, at=NOW)
    assert (await accounts.authenticate(result.access_token, at=NOW + 1)).name == "alice"
    assert await accounts.revoke(result.access_token, at=NOW + 2)
    with pytest.raises(Unauthorized, match="revoked"):
        await accounts.authenticate(result.access_token, at=NOW + 3)


async def test_a_token_revoked_by_another_process_is_refused_within_the_cache_time(
        accounts: Accounts, db: Database) -> None:
    from schedd.accounts import TOKEN_CACHE_SECONDS, hash_token

    result = await accounts.login("alice", PASSWORD, at=NOW)
    await accounts.authenticate(result.access_token, at=NOW + 1)
    await db.execute("UPDATE tokens SET revoked_at = ? WHERE token_hash = ?",
                     (NOW + 2, hash_token(result.access_token)))  # as the CLI would, elsewhere
    await accounts.authenticate(result.access_token, at=NOW + 2)  # still remembered
    with pytest.raises(Unauthorized, match="revoked"):
        await accounts.authenticate(result.access_token, at=NOW + 1 + TOKEN_CACHE_SECONDS)


async def test_a_remembered_token_still_expires_on_time(accounts: Accounts) -> None:
    token = await accounts.create_token("alice", ttl=5, at=NOW)
    await accounts.authenticate(token, at=NOW + 1)
    with pytest.raises(Unauthorized, match="expired"):
        await accounts.authenticate(token, at=NOW + 5)
