"""Maintenance windows (Prod-Manager's maintenances) and their event timeline."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from schedd.states import OPEN_WINDOW_STATES
from schedd.store.db import Database, WriteConnection, inserted_id, written_row

OPEN_STATUSES = OPEN_WINDOW_STATES

# The fields a window's values() gives, in the order SQL_INSERT and SQL_UPDATE name them.
_FIELDS = (
    "name", "description", "external_reference", "external_link", "status", "scope_id",
    "service_id", "service_status", "scheduled_start_date", "scheduled_end_date", "start_date",
    "end_date",
)
# Creates a window.
SQL_INSERT = (
    "INSERT INTO windows (creation_date, name, description, external_reference, external_link, status,"
    " scope_id, service_id, service_status, scheduled_start_date, scheduled_end_date, start_date, end_date)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Rewrites every field of a window.
SQL_UPDATE = (
    "UPDATE windows SET name = ?, description = ?, external_reference = ?, external_link = ?, status = ?,"
    " scope_id = ?, service_id = ?, service_status = ?, scheduled_start_date = ?, scheduled_end_date = ?,"
    " start_date = ?, end_date = ? WHERE id = ?"
)
# Deletes a window (its events go with it).
SQL_DELETE = "DELETE FROM windows WHERE id = ?"
# One window by id.
SQL_GET = "SELECT * FROM windows WHERE id = ?"
# Adds an event to a window's timeline.
SQL_EVENT_INSERT = (
    "INSERT INTO window_events (window_id, creation_date, content, internal, type, author_id)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# A window's timeline with each author's name, oldest first, optionally without internal events.
SQL_EVENTS = """
SELECT e.*, u.name AS author FROM window_events e LEFT JOIN users u ON u.id = e.author_id
WHERE e.window_id = ? AND (? OR e.internal = 0) ORDER BY e.id"""
# The timelines of several windows at once, with each author's name.
SQL_EVENTS_MANY = """
SELECT e.*, u.name AS author FROM window_events e LEFT JOIN users u ON u.id = e.author_id
WHERE e.window_id IN (SELECT value FROM json_each(?)) AND (? OR e.internal = 0) ORDER BY e.id"""
# Windows that still move on their own (start-up arms their timers).
SQL_OPEN = "SELECT * FROM windows WHERE status IN ('scheduled', 'in-progress')"
# The filters every listing shares (constant text; the values are bound parameters).
_WHERE = """
WHERE (:status IS NULL OR status = :status)
  AND (:scope IS NULL OR scope_id = :scope)
  AND (:service IS NULL OR service_id = :service)
  AND (:service_status IS NULL OR service_status = :service_status)
  AND (:external_reference IS NULL OR external_reference = :external_reference)
  AND (:start_before IS NULL OR scheduled_start_date < :start_before)
  AND (:start_after IS NULL OR scheduled_start_date > :start_after)
  AND (:end_before IS NULL OR scheduled_end_date < :end_before)
  AND (:end_after IS NULL OR scheduled_end_date > :end_after)"""
# A page of windows matching the filters, newest scheduled start first.
_ORDER = "ORDER BY scheduled_start_date DESC, id DESC LIMIT :limit OFFSET :offset"
SQL_LIST = f"SELECT * FROM windows {_WHERE}\n{_ORDER}"  # noqa: S608 - built from constants only
# How many windows match the filters.
SQL_COUNT = f"SELECT count(*) FROM windows {_WHERE}"  # noqa: S608 - built from constants only

# A batch of the windows that end after a time, by scheduled start then id, after a given
# (start, id): the calendar feed reads every coming window this way, one batch at a time.
SQL_ENDING_AFTER_BATCH = """
SELECT * FROM windows
WHERE scheduled_end_date > :end_after AND (scheduled_start_date, id) > (:start, :id)
ORDER BY scheduled_start_date, id LIMIT :limit"""

FILTERS = (
    "status", "scope", "service", "service_status", "external_reference", "start_before",
    "start_after", "end_before", "end_after",
)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    window_id: int
    creation_date: float
    content: str
    internal: bool
    type: str
    author: str | None = None  # the user who wrote it; None for the window's own moves

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Event:
        return cls(row["id"], row["window_id"], row["creation_date"], row["content"],
                   bool(row["internal"]), row["type"], row["author"])


@dataclass(frozen=True, slots=True)
class Window:
    id: int
    name: str
    description: str | None
    external_reference: str | None
    external_link: str | None
    status: str
    scope_id: int
    service_id: int
    service_status: str
    creation_date: float
    scheduled_start_date: float
    scheduled_end_date: float
    start_date: float | None
    end_date: float | None
    events: tuple[Event, ...] = ()

    @classmethod
    def from_row(cls, row: sqlite3.Row, events: tuple[Event, ...] = ()) -> Window:
        return cls(
            id=row["id"], name=row["name"], description=row["description"],
            external_reference=row["external_reference"], external_link=row["external_link"],
            status=row["status"], scope_id=row["scope_id"], service_id=row["service_id"],
            service_status=row["service_status"], creation_date=row["creation_date"],
            scheduled_start_date=row["scheduled_start_date"],
            scheduled_end_date=row["scheduled_end_date"], start_date=row["start_date"],
            end_date=row["end_date"], events=events)

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def with_events(self, events: tuple[Event, ...]) -> Window:
        return replace(self, events=events)


@dataclass(frozen=True, slots=True)
class NewEvent:
    content: str
    type: str
    internal: bool = False
    author_id: int | None = None

    def row(self, window_id: int, at: float) -> tuple[Any, ...]:
        """The values SQL_EVENT_INSERT takes."""
        return (window_id, at, self.content, int(self.internal), self.type, self.author_id)


def _events(conn: WriteConnection, window_id: int) -> tuple[Event, ...]:
    rows = conn.execute(SQL_EVENTS, (window_id, True)).fetchall()
    return tuple(Event.from_row(row) for row in rows)


async def insert(db: Database, window: Window, event: NewEvent, *, at: float) -> Window:
    """Create a window with its first event."""

    def op(conn: WriteConnection) -> Window:
        cur = conn.execute(SQL_INSERT, (at, *window.values()))
        window_id = inserted_id(cur)
        conn.execute(SQL_EVENT_INSERT, event.row(window_id, at))
        return Window.from_row(written_row(conn, SQL_GET, (window_id,)), _events(conn, window_id))

    return await db.write(op)


async def save(db: Database, window: Window, events: list[NewEvent], *, at: float) -> Window | None:
    """Rewrite a window and append events in one transaction; None if it is gone."""

    def op(conn: WriteConnection) -> Window | None:
        cur = conn.execute(SQL_UPDATE, (*window.values(), window.id))
        if cur.rowcount == 0:
            return None
        for event in events:
            conn.execute(SQL_EVENT_INSERT, event.row(window.id, at))
        return Window.from_row(written_row(conn, SQL_GET, (window.id,)), _events(conn, window.id))

    return await db.write(op)


async def add_event(db: Database, window_id: int, event: NewEvent, *, at: float) -> bool:
    """Append an event; False if the window does not exist."""

    def op(conn: WriteConnection) -> bool:
        if conn.execute(SQL_GET, (window_id,)).fetchone() is None:
            return False
        conn.execute(SQL_EVENT_INSERT, event.row(window_id, at))
        return True

    return await db.write(op)


async def delete(db: Database, window_id: int) -> bool:
    return await db.execute(SQL_DELETE, (window_id,)) > 0


async def get(db: Database, window_id: int, *, internal: bool) -> Window | None:
    row = await db.fetchone(SQL_GET, (window_id,))
    if row is None:
        return None
    events = await db.fetchall(SQL_EVENTS, (window_id, internal))
    return Window.from_row(row, tuple(Event.from_row(e) for e in events))


async def list_page(
    db: Database, filters: dict[str, Any], *, limit: int, offset: int, internal: bool, timelines: bool = True,
) -> tuple[list[Window], int]:
    """A page of windows with their timelines (unless `timelines` is False), and the total that match.

    `limit` 0 reads only the total.
    """
    params = {name: filters.get(name) for name in FILTERS}
    total = (await db.fetchall(SQL_COUNT, params))[0][0]
    if limit == 0:
        return [], total
    rows = await db.fetchall(SQL_LIST, {**params, "limit": limit, "offset": offset})
    if not rows or not timelines:
        return [Window.from_row(r) for r in rows], total
    events: dict[int, list[Event]] = {}
    for row in await db.fetchall(SQL_EVENTS_MANY, (json.dumps([r["id"] for r in rows]), internal)):
        events.setdefault(row["window_id"], []).append(Event.from_row(row))
    return [Window.from_row(r, tuple(events.get(r["id"], ()))) for r in rows], total


BATCH = 100


async def ending_after(db: Database, at: float, *, size: int | None = None) -> AsyncIterator[list[Window]]:
    """The windows that end after `at`, by scheduled start, `size` at a time (without timelines)."""
    size = size or BATCH
    start, last = float("-inf"), -1
    while True:
        rows = await db.fetchall(SQL_ENDING_AFTER_BATCH, {"end_after": at, "start": start, "id": last, "limit": size})
        if not rows:
            return
        yield [Window.from_row(row) for row in rows]
        if len(rows) < size:
            return
        start, last = rows[-1]["scheduled_start_date"], rows[-1]["id"]


async def open_windows(db: Database) -> list[Window]:
    return [Window.from_row(row) for row in await db.fetchall(SQL_OPEN)]
