"""Raw SQL against whichever store a test's core has, for what the API does not show (row counts,
a row stored before a rule existed). Statements are written with `?` placeholders; on
PostgreSQL they become `$1`, `$2`, ... The SQL itself must mean the same on both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schedd.store.protocol import Store


def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "") for i, part in enumerate(parts, start=1))


def _is_pg(store: Store) -> bool:
    return store.local_file is None


async def fetchall(store: Store, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """The rows, each read by position or by column name (asyncpg's Record, sqlite3's Row)."""
    if _is_pg(store):
        return list(await store.db.fetch(_numbered(sql), *params))  # type: ignore[attr-defined]
    return list(await store.db.fetchall(sql, tuple(params)))  # type: ignore[attr-defined]


async def fetchone(store: Store, sql: str, params: Sequence[Any] = ()) -> Any:
    rows = await fetchall(store, sql, params)
    return rows[0] if rows else None


async def count(store: Store, table: str) -> int:
    row = await fetchone(store, f"SELECT count(*) FROM {table}")  # noqa: S608 - a table name of the test's
    assert row is not None
    return int(row[0])


async def execute(store: Store, sql: str, params: Sequence[Any] = ()) -> int:
    if _is_pg(store):
        return await store.db.execute(_numbered(sql), *params)  # type: ignore[attr-defined]
    return await store.db.execute(sql, tuple(params))  # type: ignore[attr-defined]
