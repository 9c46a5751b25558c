"""Scope grants: which scopes' maintenance windows a user may write."""

from __future__ import annotations

from schedd.store.db import Database, WriteConnection

# Grants a user one scope (a grant that exists stays as it was).
SQL_GRANT = "INSERT INTO scope_grants (user_id, scope_id, granted_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
# Takes one scope back from a user.
SQL_REVOKE = "DELETE FROM scope_grants WHERE user_id = ? AND scope_id = ?"
# The scopes a user has been granted.
SQL_SCOPES_OF = "SELECT scope_id FROM scope_grants WHERE user_id = ? ORDER BY scope_id"


async def grant(db: Database, user_id: int, scope_id: int, *, at: float) -> bool:
    """Grant `scope_id` to the user; False when it was granted already."""

    def op(conn: WriteConnection) -> bool:
        return conn.execute(SQL_GRANT, (user_id, scope_id, at)).rowcount > 0

    return await db.write(op)


async def revoke(db: Database, user_id: int, scope_id: int) -> bool:
    """Take `scope_id` back; False when the user did not have it."""
    return await db.execute(SQL_REVOKE, (user_id, scope_id)) > 0


async def scopes_of(db: Database, user_id: int) -> frozenset[int]:
    return frozenset(row["scope_id"] for row in await db.fetchall(SQL_SCOPES_OF, (user_id,)))
