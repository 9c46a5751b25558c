"""Accounts: password hashing, tokens, login throttling, users and orgs (no HTTP).

Passwords are kept as scrypt hashes and tokens as SHA-256 digests, so the database
file never holds a secret that would let its reader log in.

A login goes through three guards, so an attacker is slowed and the user is not:
- failures are counted per source address and user id together: guessing from one
  address locks that address out of that user id, not the user out of it;
- a budget of failed logins shared by every address: once spent, each attempt from an
  address with failed (or unfinished) logins of late waits a little (at most
  `login_max_delay`) before its password is checked; an address that has not failed
  does not wait, and nobody is refused for it;
- at most `login_hash_concurrency` scrypt computations at once, in worker threads, and
  the attempts waiting for one are served address by address in turn, so a flood from
  one address queues behind itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import logging
import math
import re
import secrets
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from schedd import metrics
from schedd.clock import Clock, WallClock
from schedd.config import AuthConfig
from schedd.errors import Conflict, Throttled, Unauthorized, ValidationError
from schedd.store.accounts import TokenInfo, TokenRecord, User
from schedd.store.protocol import Store
from schedd.values import DEFAULT_ORG, IDENT_RE

log = logging.getLogger("schedd.accounts")

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
# n=2**14, r=8 needs 16 MiB; the margin leaves room to raise n to 2**15 later.
SCRYPT_MAXMEM = 64 * 1024 * 1024
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
NAME_MAX = 128
EMAIL_MAX = 254

TOKEN_PREFIX = "sd_"  # noqa: S105 - a public marker that every token starts with, not a secret
# The config has one TTL, for access tokens; a refresh token outlives a session.
REFRESH_TTL = 30 * 86400.0
# Bounds the memory an attacker can make the failure counts use (one entry per address and userid).
THROTTLE_CAPACITY = 10_000
# The address of a login that came over no network (the CLI, a test).
LOCAL_ADDRESS = "local"
# A live access token's user is remembered this long, so most requests cost no database
# read for auth. Revocation does not wait for it: every revocation, by this process or
# another (the CLI), moves the revocation epoch on, and a remembered token is trusted only
# while the epoch is the one it was remembered under.
TOKEN_CACHE_SECONDS = 10.0
# How often the epoch is read at most (once per request when requests come slower). A
# read costs a read transaction on the database; once per request it took 5-6% of create
# throughput at 64 connections, once per 10 ms nothing measurable. So a revocation counts
# from the first request that starts 10 ms after its commit.
REVOCATION_CHECK_SECONDS = 0.01
TOKEN_CACHE_SIZE = 10_000

_TOKEN_SHAPE = re.compile(r"sd_[A-Za-z0-9_-]{43}")
_CONTROL = frozenset({"Cc", "Cf", "Cs"})

INVALID_LOGIN = "invalid userid or password"


# -- passwords ---------------------------------------------------------------------------


def _password_bytes(password: str) -> bytes:
    # surrogatepass: a lone surrogate from a JSON body must not turn a login into a 500.
    return password.encode("utf-8", "surrogatepass")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        _password_bytes(password), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=dklen
    )


def check_password(password: str) -> None:
    """Raise ValidationError("password") unless the password is 8-1024 characters."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValidationError("password", f"must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$key` (base64) of a valid password, with a fresh random salt."""
    check_password(password)
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches `encoded`; False for a malformed hash."""
    try:
        scheme, n, r, p, salt_b64, key_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        key = base64.b64decode(key_b64, validate=True)
        candidate = _scrypt(password, salt, int(n), int(r), int(p), len(key))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(candidate, key)


# -- tokens ------------------------------------------------------------------------------


def new_token() -> str:
    """A fresh 256-bit token; the prefix makes leaked tokens easy to grep for."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """The only form of a token the database keeps."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


# -- names -------------------------------------------------------------------------------


def _name_problem(name: str) -> str | None:
    if not 1 <= len(name) <= NAME_MAX:
        return f"must be 1-{NAME_MAX} characters"
    for ch in name:
        if unicodedata.category(ch) in _CONTROL:
            return f"must not contain control characters (U+{ord(ch):04X})"
        if ch.isspace():
            return f"must not contain whitespace (U+{ord(ch):04X})"
    return None


def check_user_name(name: str) -> None:
    """Raise ValidationError("name") unless `name` can name a user."""
    problem = _name_problem(name)
    if problem is not None:
        raise ValidationError("name", problem)


def check_org_id(org_id: str, field: str = "orgId") -> None:
    """Raise ValidationError(field) unless `org_id` is 1-128 of [A-Za-z0-9._-], first alphanumeric."""
    if IDENT_RE.fullmatch(org_id) is None:
        raise ValidationError(
            field, f"must be 1-{NAME_MAX} characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )


def _check_email(email: str) -> None:
    if not 3 <= len(email) <= EMAIL_MAX or "@" not in email.strip("@"):
        raise ValidationError("email", f"must look like user@host, at most {EMAIL_MAX} characters")
    if any(ch.isspace() or unicodedata.category(ch) in _CONTROL for ch in email):
        raise ValidationError("email", "must not contain whitespace or control characters")


# -- login throttling --------------------------------------------------------------------


@dataclass(slots=True)
class _Attempts:
    window_start: float
    count: int = 0
    locked_until: float | None = None

    def expired(self, at: float, lockout: float) -> bool:
        if self.locked_until is not None:
            return at >= self.locked_until
        return at - self.window_start >= lockout


class LoginThrottle:
    """Counts login attempts per key (source address and userid) in memory and locks a key
    out after too many."""

    def __init__(self, max_failures: int, lockout: float, capacity: int = THROTTLE_CAPACITY) -> None:
        self.max_failures = max_failures
        self.lockout = lockout
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, _Attempts] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def attempt(self, key: Hashable, at: float) -> None:
        """Count one attempt, or raise Throttled while `key` is locked out.

        Counted before the password is checked, so attempts in flight at once count
        too: concurrency cannot squeeze extra guesses past the limit.
        """
        entry = self._entries.get(key)
        if entry is not None and entry.expired(at, self.lockout):
            del self._entries[key]
            entry = None
        if entry is not None and entry.locked_until is not None:
            metrics.LIMITS.labels("auth.login_max_failures").inc()
            raise Throttled(max(1, math.ceil(entry.locked_until - at)))
        if entry is None:
            self._make_room(at)
            entry = self._entries[key] = _Attempts(window_start=at)
        else:
            self._entries.move_to_end(key)
        entry.count += 1
        if entry.count >= self.max_failures:
            entry.locked_until = at + self.lockout
            address, userid = key if isinstance(key, tuple) else (None, key)
            log.warning("action=login_locked address=%s userid=%s until=%.0f",
                        address or "-", userid, entry.locked_until)

    def succeeded(self, key: Hashable) -> None:
        """Forget the attempts of `key` (its password was right)."""
        self._entries.pop(key, None)

    def _make_room(self, at: float) -> None:
        if len(self._entries) < self.capacity:
            return
        for key in [k for k, e in self._entries.items() if e.expired(at, self.lockout)]:
            del self._entries[key]
        if len(self._entries) < self.capacity:
            return
        # Flooding with fresh userids must not be a cheap way to lift a lockout:
        # evict the stalest unlocked entry first.
        victim = next((k for k, e in self._entries.items() if e.locked_until is None), None)
        del self._entries[victim if victim is not None else next(iter(self._entries))]


class FailureBudget:
    """A token bucket of failed logins shared by every address.

    It holds `capacity` tokens and gains `per_minute` a minute. Each attempt takes one (a
    right password gives it back). While tokens remain `take` says 0; when none is left,
    the time until the next one is due, but never more than `max_delay`: under a flood
    logins slow down by a bounded delay, and none is refused for it. The debt is bounded
    the same way, so the budget is whole again soon after a flood ends.
    """

    def __init__(self, capacity: int, per_minute: int, max_delay: float) -> None:
        self.capacity = capacity
        self.per_minute = per_minute
        self.max_delay = max_delay
        self.tokens = float(capacity)
        self.updated = 0.0  # the time the tokens were counted at (a full bucket needs no refill)

    def _refill(self, at: float) -> None:
        if at > self.updated:
            self.tokens = min(float(self.capacity), self.tokens + (at - self.updated) * self.per_minute / 60.0)
        self.updated = max(self.updated, at)

    def take(self, at: float) -> float:
        """Take a token for one attempt; the seconds the attempt must wait first (0 while tokens remain)."""
        self._refill(at)
        rate = self.per_minute / 60.0
        delay = 0.0 if self.tokens >= 1 else min(self.max_delay, (1 - self.tokens) / rate)
        self.tokens = max(self.tokens - 1, 1 - self.max_delay * rate)
        return delay

    def give_back(self, at: float) -> None:
        """The attempt's password was right: its token returns."""
        self._refill(at)
        self.tokens = min(float(self.capacity), self.tokens + 1)


@dataclass(slots=True)
class _Mark:
    count: int
    last: float


class AddressHistory:
    """Source addresses with logins that failed, or are still being checked, of late.

    Each attempt counts one until its password proves right; an address's count is
    forgotten `window` seconds after its last attempt. At most `capacity` addresses are
    kept, the stalest forgotten first.
    """

    def __init__(self, window: float, capacity: int = THROTTLE_CAPACITY) -> None:
        self.window = window
        self.capacity = capacity
        self._marks: OrderedDict[str, _Mark] = OrderedDict()

    def __len__(self) -> int:
        return len(self._marks)

    def unresolved(self, address: str, at: float) -> int:
        """Attempts from `address` that failed or have not ended, within the window."""
        mark = self._marks.get(address)
        return 0 if mark is None or at - mark.last >= self.window else mark.count

    def attempt(self, address: str, at: float) -> None:
        mark = self._marks.get(address)
        if mark is None or at - mark.last >= self.window:
            mark = self._marks[address] = _Mark(0, at)
        mark.count += 1
        mark.last = max(mark.last, at)
        self._marks.move_to_end(address)
        while len(self._marks) > self.capacity:
            self._marks.popitem(last=False)

    def succeeded(self, address: str) -> None:
        """One attempt proved right: it no longer counts (the failures do, until they expire)."""
        mark = self._marks.get(address)
        if mark is not None:
            mark.count = max(0, mark.count - 1)


T = TypeVar("T")


class HashSlots:
    """At most `limit` password hashes at once, each in a worker thread, off the event loop.

    Attempts that wait for a slot are queued per key (the source address) and served one
    key at a time in turn: 400 attempts from one address put a login from another behind
    at most one of them, not behind all 400.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.started = 0  # computations started since the process began
        self._queues: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    async def run(self, key: Hashable, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in a worker thread once a slot is free. The slot is held until the
        thread ends, even if the caller stops waiting, so the limit holds."""
        await self._acquire(key)
        self.started += 1
        work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        work.add_done_callback(self._finished)
        return await asyncio.shield(work)

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._hand_over()

    async def _acquire(self, key: Hashable) -> None:
        if self.active < self.limit and not self._queues:
            self.active += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot was handed over as the caller gave up
            else:
                self._forget(key, turn)
            raise

    def _finished(self, work: asyncio.Future[T]) -> None:
        if not work.cancelled():
            work.exception()  # the caller may be gone: never leave an error unretrieved
        self._release()

    def _release(self) -> None:
        self.active -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        while self.active < self.limit and self._queues:
            key, queue = next(iter(self._queues.items()))
            turn = queue.popleft()
            if queue:
                self._queues.move_to_end(key)
            else:
                del self._queues[key]
            if not turn.done():
                self.active += 1
                turn.set_result(None)

    def _forget(self, key: Hashable, turn: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._queues[key]


# -- the service -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User
    access_token: str
    access_expires_at: float
    refresh_token: str


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, made once per process."""
    return hash_password(secrets.token_urlsafe(16))


class Accounts:
    """Users, orgs and tokens over the store; every method takes the time as `at`."""

    def __init__(self, store: Store, auth_config: AuthConfig, clock: Clock | None = None) -> None:
        self.records = store.accounts
        self.config = auth_config
        self.clock: Clock = clock or WallClock()
        self.throttle = LoginThrottle(auth_config.login_max_failures, auth_config.login_lockout)
        self.budget = FailureBudget(auth_config.login_budget, auth_config.login_budget_per_minute,
                                    auth_config.login_max_delay)
        self.hashing = HashSlots(auth_config.login_hash_concurrency)
        self.addresses = AddressHistory(auth_config.login_lockout)
        self.delayed = 0  # attempts waiting out the budget's delay now
        # An unknown userid is checked against this, so it costs what a wrong password costs.
        self._dummy_hash = _dummy_hash()
        self._live: dict[bytes, tuple[User, float, float]] = {}  # digest -> (user, expires_at, cached until)
        self._watch = store.accounts.revocation_watch()
        self._epoch: int | None = None  # the revocation epoch `_live` was filled under
        self._checked_at = -math.inf  # when the epoch was read last

    def reconfigure(self, auth_config: AuthConfig) -> None:
        """New token lifetime and throttling limits (a config reload); counts so far are kept."""
        self.config = auth_config
        self.throttle.max_failures = auth_config.login_max_failures
        self.throttle.lockout = auth_config.login_lockout
        self.budget.capacity = auth_config.login_budget
        self.budget.per_minute = auth_config.login_budget_per_minute
        self.budget.max_delay = auth_config.login_max_delay
        self.addresses.window = auth_config.login_lockout
        self.hashing.resize(auth_config.login_hash_concurrency)

    async def login(self, userid: str, password: str, *, at: float, address: str = LOCAL_ADDRESS) -> LoginResult:
        """Tokens for a right userid and password; Unauthorized otherwise, Throttled while this
        address is locked out of this userid. `address` is the caller's source address."""
        # Longer userids cannot name a user; cutting them bounds the throttle's memory.
        key = (address, userid[: NAME_MAX + 1])
        self.throttle.attempt(key, at)
        # Only an address with failed or unfinished logins waits out a spent budget.
        failed_before = self.addresses.unresolved(address, at) > 0
        self.addresses.attempt(address, at)
        delay = self.budget.take(at)
        if delay > 0 and failed_before:
            metrics.LIMITS.labels("auth.login_budget").inc()
            self.delayed += 1
            try:
                await self.clock.sleep(delay)
            finally:
                self.delayed -= 1
        stored = None
        if _name_problem(userid) is None:
            stored = await self.records.find_password_hash(userid)
        encoded = stored if stored is not None else self._dummy_hash
        matches = await self.hashing.run(address, verify_password, password, encoded)
        if stored is None or not matches:
            raise Unauthorized(INVALID_LOGIN)
        self.throttle.succeeded(key)
        self.addresses.succeeded(address)
        self.budget.give_back(at)
        user = await self.records.find_user(userid)
        if user is None:
            raise Unauthorized(INVALID_LOGIN)
        access_expires_at = at + self.config.token_ttl
        refresh_expires_at = at + max(REFRESH_TTL, self.config.token_ttl)
        # One commit for both: a login the database refuses half-way leaves no token behind.
        access, refresh = await self._issue(
            user.id, [("access", access_expires_at), ("refresh", refresh_expires_at)], None, at)
        return LoginResult(user, access, access_expires_at, refresh)

    async def authenticate(self, token: str, *, at: float) -> User:
        """The user behind a live access token; Unauthorized for anything else."""
        cached = self._live.get(hash_token(token)) if _TOKEN_SHAPE.fullmatch(token) else None
        fresh = self._nothing_revoked(at)  # read before the lookup, which then sees any revocation it counts
        if cached is not None and at < cached[2] and fresh:
            user, expires_at, _ = cached
            if at >= expires_at:
                raise Unauthorized("token expired")
            return user
        record = await self._lookup(token)
        if record is None or record.kind != "access":
            raise Unauthorized("invalid token")
        if record.revoked_at is not None:
            raise Unauthorized("token revoked")
        if record.user.disabled_at is not None:
            raise Unauthorized("user disabled")
        if at >= record.expires_at:
            raise Unauthorized("token expired")
        if len(self._live) >= TOKEN_CACHE_SIZE:
            self._live.clear()
        self._live[record.token_hash] = (record.user, record.expires_at, at + TOKEN_CACHE_SECONDS)
        return record.user

    def _nothing_revoked(self, at: float) -> bool:
        """Whether the remembered tokens may be trusted: no revocation since they were remembered.

        The epoch is read at most every REVOCATION_CHECK_SECONDS; when it moved, every
        remembered token is forgotten (each is looked up again).
        """
        if self._checked_at <= at < self._checked_at + REVOCATION_CHECK_SECONDS:
            return True
        self._checked_at = at
        epoch = self._watch.epoch()
        if epoch == self._epoch:
            return True
        self._live.clear()
        self._epoch = epoch
        return False

    def close(self) -> None:
        self._watch.close()

    async def revoke(self, token: str, *, at: float) -> bool:
        """Revoke a token of either kind; False when it is unknown or already revoked."""
        if _TOKEN_SHAPE.fullmatch(token) is None:
            return False
        digest = hash_token(token)
        self._live.pop(digest, None)
        return await self.records.revoke_token(digest, at)

    async def revoke_refresh(self, token: str, user: User, *, at: float) -> bool:
        """Revoke a refresh token of `user` (logout sends the login's pair); False for anyone else's."""
        record = await self._lookup(token)
        if record is None or record.kind != "refresh" or record.user.id != user.id:
            return False
        return await self.records.revoke_token(record.token_hash, at)

    async def create_token(
        self, username: str, *, ttl: float | None, at: float, name: str | None = None
    ) -> str:
        """A new access token for `username` (NotFound if unknown), valid `ttl` seconds."""
        ttl = self.config.token_ttl if ttl is None else ttl
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValidationError("ttl", "must be a positive number of seconds")
        if name is not None and not 1 <= len(name) <= NAME_MAX:
            raise ValidationError("name", f"must be 1-{NAME_MAX} characters")
        user = await self.records.get_user(username)
        if user.disabled_at is not None:
            raise Conflict(f"user {username} is disabled; `schedd user enable {username}` first")
        (token,) = await self._issue(user.id, [("access", at + ttl)], name, at)
        return token

    # -- revocation -----------------------------------------------------------------------

    async def list_users(self) -> list[User]:
        return await self.records.list_users()

    async def list_tokens(self, username: str | None = None) -> list[TokenInfo]:
        """Every stored token (of one user: NotFound if unknown), oldest first."""
        if username is not None:
            await self.records.get_user(username)
        return await self.records.list_tokens(username)

    async def revoke_token_id(self, token_id: int, *, at: float) -> bool:
        """Revoke the token with this id; False when it was revoked already, NotFound if unknown."""
        return await self.records.revoke_token_id(token_id, at)

    async def disable(self, username: str, *, at: float) -> int:
        """Refuse the user's logins and revoke every token and session it has; how many were revoked."""
        return await self.records.set_disabled(username, at, at)

    async def enable(self, username: str, *, at: float) -> None:
        """Let a disabled user log in again (its old tokens stay revoked)."""
        await self.records.set_disabled(username, None, at)

    async def set_password(self, username: str, password: str, *, revoke_tokens: bool = True, at: float) -> int:
        """A new password; unless told otherwise, every token and session of the user is revoked."""
        check_password(password)
        await self.records.get_user(username)
        encoded = await asyncio.to_thread(hash_password, password)
        return await self.records.set_password(username, encoded, revoke_tokens=revoke_tokens, at=at)

    async def remove_member(self, username: str, org_id: str) -> bool:
        """Take a user out of an org (its tokens then stop reaching it); False if it was not a member."""
        check_org_id(org_id, "org")
        return await self.records.remove_member(username, org_id)

    async def create_user(
        self,
        name: str,
        password: str,
        *,
        admin: bool = False,
        orgs: Iterable[str] = (),
        email: str | None = None,
        create_orgs: bool = True,
        at: float,
    ) -> User:
        """Create a user in `orgs`; Conflict when the name is taken.

        Missing orgs are created, or with `create_orgs=False` refused (NotFound, nothing made).
        """
        check_user_name(name)
        check_password(password)
        members = tuple(dict.fromkeys(orgs))
        for org in members:
            check_org_id(org)
        if email is not None:
            _check_email(email)
        encoded = await asyncio.to_thread(hash_password, password)
        await self.records.create_user(
            name, encoded, email=email, is_admin=admin, orgs=members, create_orgs=create_orgs, at=at)
        return await self.records.get_user(name)

    async def add_org(self, name: str, at: float) -> bool:
        """Create an organization; False when it already existed."""
        check_org_id(name)
        return await self.records.create_org(name, at)

    async def ensure_default_org(self, at: float) -> None:
        await self.records.ensure_org(DEFAULT_ORG, at)

    async def _issue(
        self, user_id: int, kinds: list[tuple[str, float]], name: str | None, at: float
    ) -> list[str]:
        """New tokens of the given (kind, expires_at), stored as hashes in one commit."""
        tokens = [new_token() for _ in kinds]
        rows = [(hash_token(token), kind, expires_at) for token, (kind, expires_at) in zip(tokens, kinds, strict=True)]
        await self.records.add_tokens(user_id, rows, name=name, at=at)
        return tokens

    async def _lookup(self, token: str) -> TokenRecord | None:
        # Anything not shaped like our tokens is rejected without touching the database.
        if _TOKEN_SHAPE.fullmatch(token) is None:
            return None
        digest = hash_token(token)
        # The lookup is an indexed equality on the digest of a 256-bit random token,
        # which leaks nothing useful; the constant-time compare is a second guard.
        record = await self.records.lookup_token(digest)
        if record is None or not hmac.compare_digest(record.token_hash, digest):
            return None
        return record
