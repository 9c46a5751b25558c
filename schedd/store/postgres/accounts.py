"""Organizations, users and tokens in PostgreSQL (the SQLite twin: schedd/store/accounts.py).

The revocation epoch: every revocation raises it in its own commit and sends it on the
`schedd_auth_epoch` channel. A `PgRevocationWatch` listens there on a connection of its own
(and reads the epoch again every `EPOCH_POLL` seconds in case a notice was lost with a
connection), so a revocation made by another instance counts within milliseconds; one made
through this store counts at once (the store hands the new epoch to its watches).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg

from schedd.errors import Conflict, NotFound
from schedd.store.accounts import TokenInfo, TokenRecord, User
from schedd.store.postgres.db import CONNECT_TIMEOUT, DRIVER_ERRORS, PgDatabase, rowcount

T = TypeVar("T")
log = logging.getLogger("schedd.store")
EPOCH_CHANNEL = "schedd_auth_epoch"
EPOCH_POLL = 1.0
"""Seconds between two reads of the epoch by a watch, besides the notices."""

# Creates an organization unless it exists.
SQL_ORG_ENSURE = "INSERT INTO orgs (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"
# Tells whether an organization exists.
SQL_ORG_EXISTS = "SELECT 1 FROM orgs WHERE id = $1"
# Lists every organization.
SQL_ORG_LIST = "SELECT id FROM orgs ORDER BY id"
# Creates a user; its id.
SQL_USER_INSERT = (
    "INSERT INTO users (name, email, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id"
)
# Finds a user by name.
SQL_USER_BY_NAME = "SELECT * FROM users WHERE name = $1"
# A user's password hash, for login (one query whether or not the user exists); none while disabled.
SQL_USER_CREDENTIALS = "SELECT password_hash FROM users WHERE name = $1 AND disabled_at IS NULL"
# Adds a user to an organization.
SQL_MEMBER_ADD = "INSERT INTO user_orgs (user_id, org_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
# The organizations a user belongs to.
SQL_MEMBER_ORGS = "SELECT org_id FROM user_orgs WHERE user_id = $1 ORDER BY org_id"
# Stores a token's hash.
SQL_TOKEN_INSERT = (
    "INSERT INTO tokens (user_id, token_hash, kind, name, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)"
)
# Finds the user behind a token hash, with the token's kind and expiry.
SQL_TOKEN_LOOKUP = """
SELECT t.id AS token_id, t.kind, t.expires_at, t.revoked_at, t.token_hash, u.*
FROM tokens t JOIN users u ON u.id = t.user_id
WHERE t.token_hash = $1"""
# Revokes one token.
SQL_TOKEN_REVOKE = "UPDATE tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL"
# Forgets tokens that expired before a time.
SQL_TOKEN_PURGE = "DELETE FROM tokens WHERE expires_at < $1"
# The revocation epoch, which every revocation moves on.
SQL_EPOCH = "SELECT epoch FROM auth_epoch WHERE id = 1"
# Moves the revocation epoch on, in the commit of a revocation, and tells every listening
# instance the new epoch when that commit is done (NOTIFY is delivered on commit); the new epoch.
SQL_EPOCH_BUMP = """
WITH bumped AS (UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch)
SELECT epoch, pg_notify('schedd_auth_epoch', epoch::text) FROM bumped"""
# Every user, by name.
SQL_USER_LIST = "SELECT * FROM users ORDER BY name"
# Every membership, for listing users.
SQL_MEMBER_ALL = "SELECT user_id, org_id FROM user_orgs ORDER BY org_id"
# Disables a user (or enables one with NULL).
SQL_USER_DISABLE = "UPDATE users SET disabled_at = $1 WHERE name = $2"
# Sets a user's password hash.
SQL_USER_PASSWORD = "UPDATE users SET password_hash = $1 WHERE name = $2"
# Revokes every live token of a user.
SQL_TOKEN_REVOKE_USER = (
    "UPDATE tokens SET revoked_at = $1 WHERE user_id = (SELECT id FROM users WHERE name = $2) AND revoked_at IS NULL"
)
# Revokes one token by its id.
SQL_TOKEN_REVOKE_ID = "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"
# Tells whether a token id exists.
SQL_TOKEN_EXISTS = "SELECT 1 FROM tokens WHERE id = $1"
# Removes a user from an organization.
SQL_MEMBER_REMOVE = "DELETE FROM user_orgs WHERE user_id = (SELECT id FROM users WHERE name = $1) AND org_id = $2"
# Every token (never the secret: it is not stored), oldest first.
SQL_TOKEN_LIST = """
SELECT t.id, u.name AS user, t.kind, t.name, t.created_at, t.expires_at, t.revoked_at
FROM tokens t JOIN users u ON u.id = t.user_id
ORDER BY t.id"""
# The tokens of one user, oldest first.
SQL_TOKEN_LIST_USER = """
SELECT t.id, u.name AS user, t.kind, t.name, t.created_at, t.expires_at, t.revoked_at
FROM tokens t JOIN users u ON u.id = t.user_id
WHERE u.name = $1
ORDER BY t.id"""


class PgRevocationWatch:
    """The revocation epoch as this instance last heard it, read without waiting on the event loop."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._epoch = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def epoch(self) -> int:
        if self._task is None and not self._closed:
            with contextlib.suppress(RuntimeError):  # no loop yet: started by the first call on one
                self._task = asyncio.get_running_loop().create_task(self._follow(), name="schedd-pg-epoch")
        return self._epoch

    def heard(self, epoch: int) -> None:
        """An epoch read or announced; the watch keeps the highest."""
        self._epoch = max(self._epoch, epoch)

    async def _follow(self) -> None:
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._db.url, timeout=CONNECT_TIMEOUT)
                await conn.add_listener(EPOCH_CHANNEL, self._notice)
                while True:
                    self.heard(int(await conn.fetchval(SQL_EPOCH) or 0))
                    await asyncio.sleep(EPOCH_POLL)
            except DRIVER_ERRORS as exc:
                log.warning("action=revocation_watch_failed error=%r", str(exc))
                await asyncio.sleep(EPOCH_POLL)
            finally:
                if conn is not None:
                    conn.terminate()

    def _notice(self, conn: object, pid: int, channel: str, payload: str) -> None:
        if payload.isdecimal():
            self.heard(int(payload))

    def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            self._task = None


class PgAccountStore:
    """Organizations, users and their tokens, in PostgreSQL."""

    __slots__ = ("_db", "_watches")

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._watches: weakref.WeakSet[PgRevocationWatch] = weakref.WeakSet()

    def revocation_watch(self) -> PgRevocationWatch:
        watch = PgRevocationWatch(self._db)
        self._watches.add(watch)
        return watch

    def close_watches(self) -> None:
        for watch in list(self._watches):
            watch.close()

    def _heard(self, epoch: int | None) -> None:
        """A revocation this store committed: its watches count it now, not when the notice comes."""
        if epoch is not None:
            for watch in list(self._watches):
                watch.heard(epoch)

    async def ensure_org(self, org_id: str, at: float) -> None:
        await self._db.execute(SQL_ORG_ENSURE, org_id, at)

    async def create_org(self, org_id: str, at: float) -> bool:
        return await self._db.execute(SQL_ORG_ENSURE, org_id, at) > 0

    async def org_exists(self, org_id: str) -> bool:
        return await self._db.fetchrow(SQL_ORG_EXISTS, org_id) is not None

    async def list_orgs(self) -> list[str]:
        return [row["id"] for row in await self._db.fetch(SQL_ORG_LIST)]

    async def create_user(
        self,
        name: str,
        password_hash: str,
        *,
        email: str | None,
        is_admin: bool,
        orgs: tuple[str, ...],
        create_orgs: bool = True,
        at: float,
    ) -> int:
        async def op(conn: asyncpg.Connection) -> int:
            if not create_orgs:
                for org in orgs:
                    if await conn.fetchrow(SQL_ORG_EXISTS, org) is None:
                        raise NotFound("organization", org)
            try:
                user_id: int = await conn.fetchval(SQL_USER_INSERT, name, email, password_hash, int(is_admin), at)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"user {name!r} already exists") from exc
            for org in orgs:
                await conn.execute(SQL_ORG_ENSURE, org, at)
                await conn.execute(SQL_MEMBER_ADD, user_id, org)
            return user_id

        return await self._db.write(op)

    async def get_user(self, name: str) -> User:
        row = await self._db.fetchrow(SQL_USER_BY_NAME, name)
        if row is None:
            raise NotFound("user", name)
        orgs = tuple(r["org_id"] for r in await self._db.fetch(SQL_MEMBER_ORGS, row["id"]))
        return User.from_row(row, orgs)

    async def find_user(self, name: str) -> User | None:
        try:
            return await self.get_user(name)
        except NotFound:
            return None

    async def find_password_hash(self, name: str) -> str | None:
        return await self._db.fetchval(SQL_USER_CREDENTIALS, name)

    async def add_tokens(
        self, user_id: int, tokens: Sequence[tuple[bytes, str, float]], *, name: str | None, at: float
    ) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            await conn.executemany(SQL_TOKEN_INSERT, [
                (user_id, token_hash, kind, name, at, expires_at) for token_hash, kind, expires_at in tokens])

        await self._db.write(op)

    async def lookup_token(self, token_hash: bytes) -> TokenRecord | None:
        row = await self._db.fetchrow(SQL_TOKEN_LOOKUP, token_hash)
        if row is None:
            return None
        orgs = tuple(r["org_id"] for r in await self._db.fetch(SQL_MEMBER_ORGS, row["id"]))
        return TokenRecord(token_id=row["token_id"], kind=row["kind"], token_hash=row["token_hash"],
                           expires_at=row["expires_at"], revoked_at=row["revoked_at"], user=User.from_row(row, orgs))

    async def _revoking(self, op: Callable[[asyncpg.Connection], Awaitable[tuple[T, int | None]]]) -> T:
        """A write that may revoke: `op` answers (result, the new epoch or None); its watches hear the epoch."""
        result, epoch = await self._db.write(op)
        self._heard(epoch)
        return result

    async def revoke_token(self, token_hash: bytes, at: float) -> bool:
        async def op(conn: asyncpg.Connection) -> tuple[bool, int | None]:
            if rowcount(await conn.execute(SQL_TOKEN_REVOKE, at, token_hash)) == 0:
                return False, None
            return True, await _bump(conn)

        return await self._revoking(op)

    async def revoke_token_id(self, token_id: int, at: float) -> bool:
        async def op(conn: asyncpg.Connection) -> tuple[bool, int | None]:
            if await conn.fetchrow(SQL_TOKEN_EXISTS, token_id) is None:
                raise NotFound("token", token_id)
            if rowcount(await conn.execute(SQL_TOKEN_REVOKE_ID, at, token_id)) == 0:
                return False, None
            return True, await _bump(conn)

        return await self._revoking(op)

    async def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        rows = await (self._db.fetch(SQL_TOKEN_LIST) if user is None else self._db.fetch(SQL_TOKEN_LIST_USER, user))
        return [TokenInfo(row["id"], row["user"], row["kind"], row["name"], row["created_at"], row["expires_at"],
                          row["revoked_at"]) for row in rows]

    async def list_users(self) -> list[User]:
        orgs: dict[int, list[str]] = {}
        for row in await self._db.fetch(SQL_MEMBER_ALL):
            orgs.setdefault(row["user_id"], []).append(row["org_id"])
        return [User.from_row(row, tuple(orgs.get(row["id"], ()))) for row in await self._db.fetch(SQL_USER_LIST)]

    async def set_disabled(self, name: str, disabled_at: float | None, at: float) -> int:
        async def op(conn: asyncpg.Connection) -> tuple[int, int | None]:
            if rowcount(await conn.execute(SQL_USER_DISABLE, disabled_at, name)) == 0:
                raise NotFound("user", name)
            revoked = 0
            if disabled_at is not None:
                revoked = rowcount(await conn.execute(SQL_TOKEN_REVOKE_USER, at, name))
            return revoked, await _bump(conn)

        return await self._revoking(op)

    async def set_password(self, name: str, password_hash: str, *, revoke_tokens: bool, at: float) -> int:
        async def op(conn: asyncpg.Connection) -> tuple[int, int | None]:
            if rowcount(await conn.execute(SQL_USER_PASSWORD, password_hash, name)) == 0:
                raise NotFound("user", name)
            if not revoke_tokens:
                return 0, None
            return rowcount(await conn.execute(SQL_TOKEN_REVOKE_USER, at, name)), await _bump(conn)

        return await self._revoking(op)

    async def remove_member(self, name: str, org_id: str) -> bool:
        async def op(conn: asyncpg.Connection) -> tuple[bool, int | None]:
            if await conn.fetchrow(SQL_USER_BY_NAME, name) is None:
                raise NotFound("user", name)
            if rowcount(await conn.execute(SQL_MEMBER_REMOVE, name, org_id)) == 0:
                return False, None
            return True, await _bump(conn)

        return await self._revoking(op)

    async def purge_tokens(self, before: float) -> int:
        return await self._db.execute(SQL_TOKEN_PURGE, before)


async def _bump(conn: asyncpg.Connection) -> int:
    """Move the revocation epoch on (announced on commit); the new epoch."""
    epoch: int = await conn.fetchval(SQL_EPOCH_BUMP)
    return epoch
