"""Maintenance windows, their timelines, and scope grants in PostgreSQL
(the SQLite twins: schedd/store/windows.py, schedd/store/grants.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from schedd.store.postgres.db import PgDatabase, rowcount
from schedd.store.windows import BATCH, FILTERS, Event, NewEvent, Window

# Creates a window; its id.
SQL_INSERT = (
    "INSERT INTO windows (creation_date, name, description, external_reference, external_link, status,"
    " scope_id, service_id, service_status, scheduled_start_date, scheduled_end_date, start_date, end_date)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id"
)
# Rewrites every field of a window.
SQL_UPDATE = (
    "UPDATE windows SET name = $1, description = $2, external_reference = $3, external_link = $4, status = $5,"
    " scope_id = $6, service_id = $7, service_status = $8, scheduled_start_date = $9, scheduled_end_date = $10,"
    " start_date = $11, end_date = $12 WHERE id = $13"
)
# Deletes a window (its events go with it) and tells the other instances at commit.
SQL_DELETE = """
WITH gone AS (DELETE FROM windows WHERE id = $1 RETURNING id)
SELECT pg_notify('schedd_changes', 'window:' || id) FROM gone"""
# Tells the other instances at commit that a window changed ($1: 'window:<id>').
SQL_NOTIFY = "SELECT pg_notify('schedd_changes', $1)"
# One window by id.
SQL_GET = "SELECT * FROM windows WHERE id = $1"
# Adds an event to a window's timeline.
SQL_EVENT_INSERT = (
    "INSERT INTO window_events (window_id, creation_date, content, internal, type, author_id)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)
# A window's timeline with each author's name, oldest first, optionally without internal events.
SQL_EVENTS = """
SELECT e.*, u.name AS author FROM window_events e LEFT JOIN users u ON u.id = e.author_id
WHERE e.window_id = $1 AND ($2 OR e.internal = 0) ORDER BY e.id"""
# The timelines of several windows at once, with each author's name.
SQL_EVENTS_MANY = """
SELECT e.*, u.name AS author FROM window_events e LEFT JOIN users u ON u.id = e.author_id
WHERE e.window_id = ANY($1::bigint[]) AND ($2 OR e.internal = 0) ORDER BY e.id"""
# Windows that still move on their own (start-up arms their timers).
SQL_OPEN = "SELECT * FROM windows WHERE status IN ('scheduled', 'in-progress') ORDER BY id"
# The filters every listing shares, in the order of `FILTERS` (constant text; the values are bound).
_WHERE = """
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::bigint IS NULL OR scope_id = $2)
  AND ($3::bigint IS NULL OR service_id = $3)
  AND ($4::text IS NULL OR service_status = $4)
  AND ($5::text IS NULL OR external_reference = $5)
  AND ($6::double precision IS NULL OR scheduled_start_date < $6)
  AND ($7::double precision IS NULL OR scheduled_start_date > $7)
  AND ($8::double precision IS NULL OR scheduled_end_date < $8)
  AND ($9::double precision IS NULL OR scheduled_end_date > $9)"""
# A page of windows matching the filters, newest scheduled start first.
SQL_LIST = f"SELECT * FROM windows {_WHERE}\nORDER BY scheduled_start_date DESC, id DESC LIMIT $10 OFFSET $11"  # noqa: S608
# How many windows match the filters.
SQL_COUNT = f"SELECT count(*) FROM windows {_WHERE}"  # noqa: S608 - built from constants only
# A batch of the windows that end after a time, by scheduled start then id, after a given
# (start, id): the calendar feed reads every coming window this way, one batch at a time.
SQL_ENDING_AFTER_BATCH = """
SELECT * FROM windows
WHERE scheduled_end_date > $1 AND (scheduled_start_date, id) > ($2::double precision, $3::bigint)
ORDER BY scheduled_start_date, id LIMIT $4"""

# Grants a user one scope (a grant that exists stays as it was).
SQL_GRANT = (
    "INSERT INTO scope_grants (user_id, scope_id, granted_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
)
# Takes one scope back from a user.
SQL_REVOKE = "DELETE FROM scope_grants WHERE user_id = $1 AND scope_id = $2"
# The scopes a user has been granted.
SQL_SCOPES_OF = "SELECT scope_id FROM scope_grants WHERE user_id = $1 ORDER BY scope_id"


async def _events(conn: asyncpg.Connection, window_id: int) -> tuple[Event, ...]:
    return tuple(Event.from_row(row) for row in await conn.fetch(SQL_EVENTS, window_id, True))


async def _written(conn: asyncpg.Connection, window_id: int) -> Window:
    row = await conn.fetchrow(SQL_GET, window_id)
    return Window.from_row(row, await _events(conn, window_id))


class PgWindowStore:
    """Maintenance windows and their events, in PostgreSQL."""

    __slots__ = ("_db",)

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def insert(self, window: Window, event: NewEvent, *, at: float) -> Window:
        async def op(conn: asyncpg.Connection) -> Window:
            window_id = await conn.fetchval(SQL_INSERT, at, *window.values())
            await conn.execute(SQL_EVENT_INSERT, *_event(event, window_id, at))
            await conn.execute(SQL_NOTIFY, f"window:{window_id}")
            return await _written(conn, window_id)

        return await self._db.write(op)

    async def save(self, window: Window, events: list[NewEvent], *, at: float) -> Window | None:
        async def op(conn: asyncpg.Connection) -> Window | None:
            if rowcount(await conn.execute(SQL_UPDATE, *window.values(), window.id)) == 0:
                return None
            for event in events:
                await conn.execute(SQL_EVENT_INSERT, *_event(event, window.id, at))
            await conn.execute(SQL_NOTIFY, f"window:{window.id}")
            return await _written(conn, window.id)

        return await self._db.write(op)

    async def add_event(self, window_id: int, event: NewEvent, *, at: float) -> bool:
        async def op(conn: asyncpg.Connection) -> bool:
            if await conn.fetchrow(SQL_GET, window_id) is None:
                return False
            await conn.execute(SQL_EVENT_INSERT, *_event(event, window_id, at))
            return True

        return await self._db.write(op)

    async def delete(self, window_id: int) -> bool:
        return await self._db.execute(SQL_DELETE, window_id) > 0

    async def get(self, window_id: int, *, internal: bool) -> Window | None:
        row = await self._db.fetchrow(SQL_GET, window_id)
        if row is None:
            return None
        events = await self._db.fetch(SQL_EVENTS, window_id, internal)
        return Window.from_row(row, tuple(Event.from_row(e) for e in events))

    async def list_page(
        self, filters: dict[str, Any], *, limit: int, offset: int, internal: bool, timelines: bool = True
    ) -> tuple[list[Window], int]:
        params = [filters.get(name) for name in FILTERS]
        total = int(await self._db.fetchval(SQL_COUNT, *params))
        if limit == 0:
            return [], total
        rows = await self._db.fetch(SQL_LIST, *params, limit, offset)
        if not rows or not timelines:
            return [Window.from_row(r) for r in rows], total
        events: dict[int, list[Event]] = {}
        for row in await self._db.fetch(SQL_EVENTS_MANY, [r["id"] for r in rows], internal):
            events.setdefault(row["window_id"], []).append(Event.from_row(row))
        return [Window.from_row(r, tuple(events.get(r["id"], ()))) for r in rows], total

    async def ending_after(self, at: float, *, size: int | None = None) -> AsyncIterator[list[Window]]:
        size = size or BATCH
        start, last = float("-inf"), -1
        while True:
            rows = await self._db.fetch(SQL_ENDING_AFTER_BATCH, at, start, last, size)
            if not rows:
                return
            yield [Window.from_row(row) for row in rows]
            if len(rows) < size:
                return
            start, last = rows[-1]["scheduled_start_date"], rows[-1]["id"]

    async def open_windows(self) -> list[Window]:
        return [Window.from_row(row) for row in await self._db.fetch(SQL_OPEN)]


def _event(event: NewEvent, window_id: int, at: float) -> tuple[Any, ...]:
    return event.row(window_id, at)


class PgGrantStore:
    """Which window scopes a user may write, in PostgreSQL."""

    __slots__ = ("_db",)

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def grant(self, user_id: int, scope_id: int, *, at: float) -> bool:
        return await self._db.execute(SQL_GRANT, user_id, scope_id, at) > 0

    async def revoke(self, user_id: int, scope_id: int) -> bool:
        return await self._db.execute(SQL_REVOKE, user_id, scope_id) > 0

    async def scopes_of(self, user_id: int) -> frozenset[int]:
        return frozenset(row["scope_id"] for row in await self._db.fetch(SQL_SCOPES_OF, user_id))
