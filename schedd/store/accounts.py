"""Organizations, users and tokens."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from schedd.errors import Conflict, NotFound
from schedd.store.db import Database, WriteConnection, inserted_id

# Creates an organization unless it exists.
SQL_ORG_ENSURE = "INSERT INTO orgs (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
# Tells whether an organization exists.
SQL_ORG_EXISTS = "SELECT 1 FROM orgs WHERE id = ?"
# Lists every organization.
SQL_ORG_LIST = "SELECT id, created_at FROM orgs ORDER BY id"
# Creates a user.
SQL_USER_INSERT = (
    "INSERT INTO users (name, email, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?, ?)"
)
# Finds a user by name.
SQL_USER_BY_NAME = "SELECT * FROM users WHERE name = ?"
# A user's password hash, for login (one query whether or not the user exists).
SQL_USER_CREDENTIALS = "SELECT password_hash FROM users WHERE name = ?"
# Adds a user to an organization.
SQL_MEMBER_ADD = "INSERT INTO user_orgs (user_id, org_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
# The organizations a user belongs to.
SQL_MEMBER_ORGS = "SELECT org_id FROM user_orgs WHERE user_id = ? ORDER BY org_id"
# Stores a token's hash.
SQL_TOKEN_INSERT = (
    "INSERT INTO tokens (user_id, token_hash, kind, name, created_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# Finds the live user behind a token hash, with the token's kind and expiry.
SQL_TOKEN_LOOKUP = """
SELECT t.id AS token_id, t.kind, t.expires_at, t.revoked_at, t.token_hash, u.*
FROM tokens t JOIN users u ON u.id = t.user_id
WHERE t.token_hash = ?"""
# Revokes one token.
SQL_TOKEN_REVOKE = "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL"
# Forgets tokens that expired before a time.
SQL_TOKEN_PURGE = "DELETE FROM tokens WHERE expires_at < ?"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    email: str | None
    password_hash: str
    is_admin: bool
    created_at: float
    orgs: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: sqlite3.Row, orgs: tuple[str, ...] = ()) -> User:
        return cls(
            id=row["id"],
            name=row["name"],
            email=row["email"],
            password_hash=row["password_hash"],
            is_admin=bool(row["is_admin"]),
            created_at=row["created_at"],
            orgs=orgs,
        )

    def can_see(self, org_id: str) -> bool:
        return self.is_admin or org_id in self.orgs


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: int
    kind: str
    token_hash: bytes
    expires_at: float
    revoked_at: float | None
    user: User


async def ensure_org(db: Database, org_id: str, at: float) -> None:
    await db.execute(SQL_ORG_ENSURE, (org_id, at))


async def create_org(db: Database, org_id: str, at: float) -> bool:
    """Create an organization; False when it already existed."""

    async def op(conn: WriteConnection) -> bool:
        cur = await conn.execute(SQL_ORG_ENSURE, (org_id, at))
        return cur.rowcount > 0

    return await db.write(op)


async def org_exists(db: Database, org_id: str) -> bool:
    return await db.fetchone(SQL_ORG_EXISTS, (org_id,)) is not None


async def list_orgs(db: Database) -> list[str]:
    return [row["id"] for row in await db.fetchall(SQL_ORG_LIST)]


async def create_user(
    db: Database,
    name: str,
    password_hash: str,
    *,
    email: str | None,
    is_admin: bool,
    orgs: tuple[str, ...],
    create_orgs: bool = True,
    at: float,
) -> int:
    """Create a user and its memberships; Conflict if the name is taken.

    Missing orgs are created, or with `create_orgs=False` refused with NotFound.
    """

    async def op(conn: WriteConnection) -> int:
        if not create_orgs:
            for org in orgs:
                if await (await conn.execute(SQL_ORG_EXISTS, (org,))).fetchone() is None:
                    raise NotFound("organization", org)
        try:
            cur = await conn.execute(SQL_USER_INSERT, (name, email, password_hash, int(is_admin), at))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"user {name!r} already exists") from exc
        user_id = inserted_id(cur)
        for org in orgs:
            await conn.execute(SQL_ORG_ENSURE, (org, at))
            await conn.execute(SQL_MEMBER_ADD, (user_id, org))
        return user_id

    return await db.write(op)


async def get_user(db: Database, name: str) -> User:
    row = await db.fetchone(SQL_USER_BY_NAME, (name,))
    if row is None:
        raise NotFound("user", name)
    orgs = tuple(r["org_id"] for r in await db.fetchall(SQL_MEMBER_ORGS, (row["id"],)))
    return User.from_row(row, orgs)


async def find_user(db: Database, name: str) -> User | None:
    try:
        return await get_user(db, name)
    except NotFound:
        return None


async def find_password_hash(db: Database, name: str) -> str | None:
    row = await db.fetchone(SQL_USER_CREDENTIALS, (name,))
    return None if row is None else row["password_hash"]


async def add_tokens(
    db: Database, user_id: int, tokens: Sequence[tuple[bytes, str, float]], *, name: str | None, at: float
) -> None:
    """Store tokens as (hash, kind, expires_at) rows, all in one commit."""

    async def op(conn: WriteConnection) -> None:
        for token_hash, kind, expires_at in tokens:
            await conn.execute(SQL_TOKEN_INSERT, (user_id, token_hash, kind, name, at, expires_at))

    await db.write(op)


async def lookup_token(db: Database, token_hash: bytes) -> TokenRecord | None:
    row = await db.fetchone(SQL_TOKEN_LOOKUP, (token_hash,))
    if row is None:
        return None
    orgs = tuple(r["org_id"] for r in await db.fetchall(SQL_MEMBER_ORGS, (row["id"],)))
    return TokenRecord(
        token_id=row["token_id"],
        kind=row["kind"],
        token_hash=row["token_hash"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        user=User.from_row(row, orgs),
    )


async def revoke_token(db: Database, token_hash: bytes, at: float) -> bool:
    return await db.execute(SQL_TOKEN_REVOKE, (at, token_hash)) > 0


async def purge_tokens(db: Database, before: float) -> int:
    return await db.execute(SQL_TOKEN_PURGE, (before,))
