"""Organizations, users and tokens."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from schedd.errors import Conflict, NotFound
from schedd.store.db import Database, WriteConnection, WriteCursor, inserted_id

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
# A user's password hash, for login (one query whether or not the user exists); none while disabled.
SQL_USER_CREDENTIALS = "SELECT password_hash FROM users WHERE name = ? AND disabled_at IS NULL"
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

# -- revocation ---------------------------------------------------------------------------
# The revocation epoch, which every revocation moves on.
SQL_EPOCH = "SELECT epoch FROM auth_epoch WHERE id = 1"
# Moves the revocation epoch on, in the commit of a revocation.
SQL_EPOCH_BUMP = "UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1"
# Changes when another connection has committed since this one last asked (SQLite's own counter).
SQL_DATA_VERSION = "PRAGMA data_version"
# Every user, by name.
SQL_USER_LIST = "SELECT * FROM users ORDER BY name"
# Every membership, for listing users.
SQL_MEMBER_ALL = "SELECT user_id, org_id FROM user_orgs ORDER BY org_id"
# Disables a user (or enables one with NULL).
SQL_USER_DISABLE = "UPDATE users SET disabled_at = ? WHERE name = ?"
# Sets a user's password hash.
SQL_USER_PASSWORD = "UPDATE users SET password_hash = ? WHERE name = ?"
# Revokes every live token of a user.
SQL_TOKEN_REVOKE_USER = (
    "UPDATE tokens SET revoked_at = ? WHERE user_id = (SELECT id FROM users WHERE name = ?) AND revoked_at IS NULL"
)
# Revokes one token by its id.
SQL_TOKEN_REVOKE_ID = "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
# Tells whether a token id exists.
SQL_TOKEN_EXISTS = "SELECT 1 FROM tokens WHERE id = ?"
# Removes a user from an organization.
SQL_MEMBER_REMOVE = "DELETE FROM user_orgs WHERE user_id = (SELECT id FROM users WHERE name = ?) AND org_id = ?"
# Every token (never the secret: it is not stored), oldest first.
SQL_TOKEN_LIST = """
SELECT t.id, u.name AS user, t.kind, t.name, t.created_at, t.expires_at, t.revoked_at
FROM tokens t JOIN users u ON u.id = t.user_id
ORDER BY t.id"""
# The tokens of one user, oldest first.
SQL_TOKEN_LIST_USER = """
SELECT t.id, u.name AS user, t.kind, t.name, t.created_at, t.expires_at, t.revoked_at
FROM tokens t JOIN users u ON u.id = t.user_id
WHERE u.name = ?
ORDER BY t.id"""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    email: str | None
    password_hash: str
    is_admin: bool
    created_at: float
    orgs: tuple[str, ...] = ()
    disabled_at: float | None = None

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
            disabled_at=row["disabled_at"],
        )

    def can_see(self, org_id: str) -> bool:
        return self.is_admin or org_id in self.orgs


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as `schedd token list` shows it (its secret is not stored anywhere)."""

    id: int
    user: str
    kind: str
    name: str | None
    created_at: float
    expires_at: float
    revoked_at: float | None

    def state(self, at: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if at >= self.expires_at else "live"


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

    def op(conn: WriteConnection) -> bool:
        cur = conn.execute(SQL_ORG_ENSURE, (org_id, at))
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

    def op(conn: WriteConnection) -> int:
        if not create_orgs:
            for org in orgs:
                if conn.execute(SQL_ORG_EXISTS, (org,)).fetchone() is None:
                    raise NotFound("organization", org)
        try:
            cur = conn.execute(SQL_USER_INSERT, (name, email, password_hash, int(is_admin), at))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"user {name!r} already exists") from exc
        user_id = inserted_id(cur)
        for org in orgs:
            conn.execute(SQL_ORG_ENSURE, (org, at))
            conn.execute(SQL_MEMBER_ADD, (user_id, org))
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

    def op(conn: WriteConnection) -> None:
        for token_hash, kind, expires_at in tokens:
            conn.execute(SQL_TOKEN_INSERT, (user_id, token_hash, kind, name, at, expires_at))

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
    def op(conn: WriteConnection) -> bool:
        return _revoked(conn, conn.execute(SQL_TOKEN_REVOKE, (at, token_hash)))

    return await db.write(op)


def _revoked(conn: WriteConnection, cur: WriteCursor) -> bool:
    """Move the epoch on when a statement revoked something; whether it did."""
    if cur.rowcount > 0:
        conn.execute(SQL_EPOCH_BUMP)
    return cur.rowcount > 0


async def revoke_token_id(db: Database, token_id: int, at: float) -> bool:
    """Revoke a token by id: True, or False when it was revoked already; NotFound if unknown."""

    def op(conn: WriteConnection) -> bool:
        if conn.execute(SQL_TOKEN_EXISTS, (token_id,)).fetchone() is None:
            raise NotFound("token", token_id)
        return _revoked(conn, conn.execute(SQL_TOKEN_REVOKE_ID, (at, token_id)))

    return await db.write(op)


async def list_tokens(db: Database, user: str | None = None) -> list[TokenInfo]:
    rows = await (db.fetchall(SQL_TOKEN_LIST) if user is None else db.fetchall(SQL_TOKEN_LIST_USER, (user,)))
    return [TokenInfo(row["id"], row["user"], row["kind"], row["name"], row["created_at"], row["expires_at"],
                      row["revoked_at"]) for row in rows]


async def list_users(db: Database) -> list[User]:
    orgs: dict[int, list[str]] = {}
    for row in await db.fetchall(SQL_MEMBER_ALL):
        orgs.setdefault(row["user_id"], []).append(row["org_id"])
    return [User.from_row(row, tuple(orgs.get(row["id"], ()))) for row in await db.fetchall(SQL_USER_LIST)]


async def set_disabled(db: Database, name: str, disabled_at: float | None, at: float) -> int:
    """Disable a user and revoke every token it has (or enable it: `disabled_at` None).

    Returns how many tokens were revoked; NotFound for an unknown user.
    """

    def op(conn: WriteConnection) -> int:
        if conn.execute(SQL_USER_DISABLE, (disabled_at, name)).rowcount == 0:
            raise NotFound("user", name)
        revoked = 0
        if disabled_at is not None:
            revoked = conn.execute(SQL_TOKEN_REVOKE_USER, (at, name)).rowcount
        conn.execute(SQL_EPOCH_BUMP)
        return revoked

    return await db.write(op)


async def set_password(db: Database, name: str, password_hash: str, *, revoke_tokens: bool, at: float) -> int:
    """A new password hash; with `revoke_tokens` every token of the user is revoked too (count returned)."""

    def op(conn: WriteConnection) -> int:
        if conn.execute(SQL_USER_PASSWORD, (password_hash, name)).rowcount == 0:
            raise NotFound("user", name)
        revoked = 0
        if revoke_tokens:
            revoked = conn.execute(SQL_TOKEN_REVOKE_USER, (at, name)).rowcount
            conn.execute(SQL_EPOCH_BUMP)
        return revoked

    return await db.write(op)


async def remove_member(db: Database, name: str, org_id: str) -> bool:
    """Take a user out of an organization; False when it was not a member, NotFound if unknown."""

    def op(conn: WriteConnection) -> bool:
        if conn.execute(SQL_USER_BY_NAME, (name,)).fetchone() is None:
            raise NotFound("user", name)
        return _revoked(conn, conn.execute(SQL_MEMBER_REMOVE, (name, org_id)))

    return await db.write(op)


class RevocationWatch:
    """The revocation epoch as this process last saw it, read in microseconds on the event loop.

    A connection of its own asks SQLite's `data_version`, which changes only when another
    connection committed; the epoch itself is read again only then. No disk I/O while
    nothing changes, one small read of a page SQLite just wrote after a change.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._epoch = 0

    def epoch(self) -> int:
        conn = self._conn
        if conn is None:
            conn = self._conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA query_only=ON")
        version = conn.execute(SQL_DATA_VERSION).fetchone()[0]
        if version != self._version:
            row = conn.execute(SQL_EPOCH).fetchone()
            self._version, self._epoch = version, (row[0] if row is not None else 0)
        return self._epoch

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


async def purge_tokens(db: Database, before: float) -> int:
    return await db.execute(SQL_TOKEN_PURGE, (before,))
