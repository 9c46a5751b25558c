"""Organizations, users and tokens in PostgreSQL (the SQLite twin: schedd/store/accounts.py)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from schedd.errors import Conflict, NotFound
from schedd.store.accounts import TokenInfo, TokenRecord, User
from schedd.store.postgres.db import PgDatabase, rowcount

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
# Moves the revocation epoch on, in the commit of a revocation.
SQL_EPOCH_BUMP = "UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1"
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


class PgAccountStore:
    """Organizations, users and their tokens, in PostgreSQL."""

    __slots__ = ("_db",)

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

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

    async def revoke_token(self, token_hash: bytes, at: float) -> bool:
        async def op(conn: asyncpg.Connection) -> bool:
            return await _revoked(conn, await conn.execute(SQL_TOKEN_REVOKE, at, token_hash))

        return await self._db.write(op)

    async def revoke_token_id(self, token_id: int, at: float) -> bool:
        async def op(conn: asyncpg.Connection) -> bool:
            if await conn.fetchrow(SQL_TOKEN_EXISTS, token_id) is None:
                raise NotFound("token", token_id)
            return await _revoked(conn, await conn.execute(SQL_TOKEN_REVOKE_ID, at, token_id))

        return await self._db.write(op)

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
        async def op(conn: asyncpg.Connection) -> int:
            if rowcount(await conn.execute(SQL_USER_DISABLE, disabled_at, name)) == 0:
                raise NotFound("user", name)
            revoked = 0
            if disabled_at is not None:
                revoked = rowcount(await conn.execute(SQL_TOKEN_REVOKE_USER, at, name))
            await conn.execute(SQL_EPOCH_BUMP)
            return revoked

        return await self._db.write(op)

    async def set_password(self, name: str, password_hash: str, *, revoke_tokens: bool, at: float) -> int:
        async def op(conn: asyncpg.Connection) -> int:
            if rowcount(await conn.execute(SQL_USER_PASSWORD, password_hash, name)) == 0:
                raise NotFound("user", name)
            revoked = 0
            if revoke_tokens:
                revoked = rowcount(await conn.execute(SQL_TOKEN_REVOKE_USER, at, name))
                await conn.execute(SQL_EPOCH_BUMP)
            return revoked

        return await self._db.write(op)

    async def remove_member(self, name: str, org_id: str) -> bool:
        async def op(conn: asyncpg.Connection) -> bool:
            if await conn.fetchrow(SQL_USER_BY_NAME, name) is None:
                raise NotFound("user", name)
            return await _revoked(conn, await conn.execute(SQL_MEMBER_REMOVE, name, org_id))

        return await self._db.write(op)

    async def purge_tokens(self, before: float) -> int:
        return await self._db.execute(SQL_TOKEN_PURGE, before)

    async def revocation_epoch(self) -> int:
        """The revocation epoch: it moves on in the commit of every revocation."""
        epoch = await self._db.fetchval(SQL_EPOCH)
        return int(epoch or 0)


async def _revoked(conn: asyncpg.Connection, status: str) -> bool:
    """Move the epoch on when a statement revoked something; whether it did."""
    if rowcount(status) > 0:
        await conn.execute(SQL_EPOCH_BUMP)
        return True
    return False
