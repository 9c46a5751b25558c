"""Schedules of every family (org maintenance, cube builds, service jobs)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from schedd.errors import Conflict, NotFound
from schedd.families.base import FAMILIES
from schedd.store.db import Database, WriteConnection, inserted_id, written_row

# Creates a schedule; the values in the order of `NewSchedule.values()`.
SQL_INSERT = (
    "INSERT INTO schedules (uid, family, org_id, project_id, cube_id, name, description, cron,"
    " cron_normalized, timezone, full_build, spec, active, next_fire_at, misfire_policy, overlap_policy,"
    " timeout, retries, history_strategy, retention_days, created_by, created_at, updated_by, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Replaces the definition of a schedule, keeping its counters and history.
SQL_REPLACE = (
    "UPDATE schedules SET name = ?, description = ?, cron = ?, cron_normalized = ?, timezone = ?,"
    " full_build = ?, spec = ?, active = ?, next_fire_at = ?, misfire_policy = ?,"
    " overlap_policy = ?, timeout = ?, retries = ?, history_strategy = ?, retention_days = ?,"
    " updated_by = ?, updated_at = ? WHERE id = ?"
)
# One schedule by its internal id.
SQL_GET = "SELECT * FROM schedules WHERE id = ?"
# Several schedules by internal id (the engine's due batch).
SQL_GET_MANY = "SELECT * FROM schedules WHERE id IN (SELECT value FROM json_each(?))"
# One schedule of a family by its public uid.
SQL_GET_UID = "SELECT * FROM schedules WHERE uid = ? AND family = ?"
# Schedules of a family within an org (and project/cube), oldest first.
SQL_LIST_SCOPE = """
SELECT * FROM schedules
WHERE family = :family AND org_id IS :org_id
  AND (:project_id IS NULL OR project_id = :project_id)
  AND (:cube_id IS NULL OR cube_id = :cube_id)
  AND (:active IS NULL OR active = :active)
ORDER BY id"""
# Every schedule of a family, oldest first.
SQL_LIST_FAMILY = "SELECT * FROM schedules WHERE family = ? ORDER BY id"
# The columns of a Schedule, in the order of its fields (read by position: `Schedule.from_values`).
SCHEDULE_COLUMNS = (
    "id, uid, family, org_id, project_id, cube_id, name, description, cron, cron_normalized, timezone,"
    " full_build, spec, active, next_fire_at, misfire_policy, overlap_policy, timeout, retries,"
    " history_strategy, retention_days, success_count, fail_count, last_run_uid, last_run_at,"
    " last_run_status, created_by, created_at, updated_by, updated_at"
)
# A batch of a family's schedules in one org/project/cube (NULL where the family has none), in
# id order after a given id, with the number of runs each has kept when :kept is set (Volt MX's
# job list): keyset paging, one index range per batch.
SQL_SCOPE_BATCH = f"""
SELECT {SCHEDULE_COLUMNS},
       CASE WHEN :kept THEN (SELECT count(*) FROM runs WHERE runs.schedule_id = schedules.id) ELSE 0 END
FROM schedules
WHERE family = :family AND org_id IS :org_id AND project_id IS :project_id AND cube_id IS :cube_id
  AND (:active IS NULL OR active = :active) AND id > :after
ORDER BY id LIMIT :limit OFFSET :offset"""  # noqa: S608 - built from constants only
# What the engine needs at start-up: every active schedule's key and next fire.
SQL_DUE_INDEX = "SELECT id, next_fire_at FROM schedules WHERE active = 1 AND next_fire_at IS NOT NULL"
# Moves a schedule's next fire time.
SQL_SET_NEXT = "UPDATE schedules SET next_fire_at = ? WHERE id = ?"
# Moves a schedule's next fire time and records the run its fire started, in one statement.
SQL_SET_NEXT_STARTED = (
    "UPDATE schedules SET next_fire_at = ?, last_run_uid = ?, last_run_at = ?, last_run_status = ? WHERE id = ?"
)
# Activates or deactivates a schedule, with its next fire time.
SQL_SET_ACTIVE = (
    "UPDATE schedules SET active = ?, next_fire_at = ?, updated_by = ?, updated_at = ? WHERE id = ?"
)
# Deletes a schedule (its runs go with it).
SQL_DELETE = "DELETE FROM schedules WHERE id = ?"
# Records the end of a run on its schedule: counters and last outcome.
SQL_RECORD_OUTCOME = """
UPDATE schedules SET success_count = success_count + :ok, fail_count = fail_count + :failed,
    last_run_status = :status, last_run_uid = :run_uid, last_run_at = :at
WHERE id = :id"""
# Records that a run of a schedule started (for `latest_execution`).
SQL_RECORD_START = "UPDATE schedules SET last_run_uid = ?, last_run_at = ?, last_run_status = ? WHERE id = ?"
# When each family's latest run that ended well ended, as far as the schedules remember it.
SQL_LAST_SUCCESS = (
    "SELECT family, MAX(last_run_at) FROM schedules WHERE last_run_status = 'done' GROUP BY family"
)
# How many active schedules an org holds, of every family (its quota).
SQL_COUNT_ORG_ACTIVE = "SELECT count(*) FROM schedules WHERE org_id = ? AND active = 1"
# How many jobs belong to no org (the jobs of admin-only families, such as service jobs: their quota).
SQL_COUNT_UNOWNED = "SELECT count(*) FROM schedules WHERE org_id IS NULL"
# Schedules that hold runs older than their retention period (every period is >= 1 day,
# so only runs older than a day are looked at, through the index on runs.created_at).
SQL_RETENTION_LIST = """
SELECT s.id, s.retention_days FROM runs r JOIN schedules s ON s.id = r.schedule_id
WHERE r.created_at < :at - 86400 AND s.retention_days > 0
  AND r.created_at < :at - s.retention_days * 86400.0
GROUP BY s.id"""


@dataclass(frozen=True, slots=True)
class Cap:
    """Refuse an insert when its scope already holds `limit` schedules: an org's active
    schedules, or (org_id None) every job that belongs to no org."""

    limit: int
    org_id: str | None


class CapReached(Exception):
    """The insert was refused: the scope of `cap` is full."""

    def __init__(self, cap: Cap) -> None:
        self.cap = cap
        super().__init__(f"{cap.org_id or 'service jobs'}: {cap.limit} held")


@dataclass(frozen=True, slots=True)
class NewSchedule:
    uid: str
    family: str
    cron: str
    cron_normalized: str
    timezone: str
    created_at: float
    org_id: str | None = None
    project_id: str | None = None
    cube_id: str | None = None
    name: str | None = None
    description: str | None = None
    full_build: bool | None = None
    spec: dict[str, Any] | None = None
    active: bool = True
    next_fire_at: float | None = None
    misfire_policy: str = "fire_once"
    overlap_policy: str = "forbid"
    timeout: float | None = None
    retries: int = 0
    history_strategy: str = "MINIMAL"
    retention_days: int = 30
    created_by: str | None = None

    def values(self) -> tuple[Any, ...]:
        return (
            self.uid, self.family, self.org_id, self.project_id, self.cube_id, self.name,
            self.description, self.cron, self.cron_normalized, self.timezone,
            _opt_int(self.full_build), _dump(self.spec), int(self.active), self.next_fire_at,
            self.misfire_policy, self.overlap_policy, self.timeout, self.retries,
            self.history_strategy, self.retention_days, self.created_by, self.created_at,
            self.created_by, self.created_at,
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    uid: str
    family: str
    org_id: str | None
    project_id: str | None
    cube_id: str | None
    name: str | None
    description: str | None
    cron: str
    cron_normalized: str
    timezone: str
    full_build: bool | None
    spec: dict[str, Any] = field(hash=False)
    active: bool
    next_fire_at: float | None
    misfire_policy: str
    overlap_policy: str
    timeout: float | None
    retries: int
    history_strategy: str
    retention_days: int
    success_count: int
    fail_count: int
    last_run_uid: str | None
    last_run_at: float | None
    last_run_status: str | None
    created_by: str | None
    created_at: float
    updated_by: str | None
    updated_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Schedule:
        return cls(
            id=row["id"], uid=row["uid"], family=row["family"], org_id=row["org_id"],
            project_id=row["project_id"], cube_id=row["cube_id"], name=row["name"],
            description=row["description"], cron=row["cron"],
            cron_normalized=row["cron_normalized"], timezone=row["timezone"],
            full_build=None if row["full_build"] is None else bool(row["full_build"]),
            spec=json.loads(row["spec"]) if row["spec"] else {},
            active=bool(row["active"]), next_fire_at=row["next_fire_at"],
            misfire_policy=row["misfire_policy"], overlap_policy=row["overlap_policy"],
            timeout=row["timeout"], retries=row["retries"],
            history_strategy=row["history_strategy"], retention_days=row["retention_days"],
            success_count=row["success_count"], fail_count=row["fail_count"],
            last_run_uid=row["last_run_uid"], last_run_at=row["last_run_at"],
            last_run_status=row["last_run_status"], created_by=row["created_by"],
            created_at=row["created_at"], updated_by=row["updated_by"],
            updated_at=row["updated_at"],
        )

    @classmethod
    def from_values(cls, v: Sequence[Any]) -> Schedule:
        """A row of SCHEDULE_COLUMNS, by position: a fifth of the cost of `from_row` (long lists)."""
        return cls(
            v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
            None if v[11] is None else bool(v[11]), json.loads(v[12]) if v[12] else {}, bool(v[13]),
            v[14], v[15], v[16], v[17], v[18], v[19], v[20], v[21], v[22], v[23], v[24], v[25], v[26], v[27],
            v[28], v[29])

    @classmethod
    def from_new(cls, schedule_id: int, new: NewSchedule) -> Schedule:
        """The row `insert` has just written, without reading it back."""
        return cls(
            id=schedule_id, uid=new.uid, family=new.family, org_id=new.org_id, project_id=new.project_id,
            cube_id=new.cube_id, name=new.name, description=new.description, cron=new.cron,
            cron_normalized=new.cron_normalized, timezone=new.timezone, full_build=new.full_build,
            spec=dict(new.spec) if new.spec else {}, active=new.active, next_fire_at=new.next_fire_at,
            misfire_policy=new.misfire_policy, overlap_policy=new.overlap_policy, timeout=new.timeout,
            retries=new.retries, history_strategy=new.history_strategy, retention_days=new.retention_days,
            success_count=0, fail_count=0, last_run_uid=None, last_run_at=None, last_run_status=None,
            created_by=new.created_by, created_at=new.created_at, updated_by=new.created_by,
            updated_at=new.created_at,
        )

    @property
    def overlap_key(self) -> str:
        """What "the same job" means for overlap, as its family says: two runs with one key never overlap."""
        return FAMILIES.get(self.family).overlap_key(self)


def _name_taken(exc: sqlite3.IntegrityError, name: str | None) -> Exception:
    if "schedules.name" in str(exc):
        return Conflict(f"a job named {name!r} already exists")
    return exc


def _dump(spec: dict[str, Any] | None) -> str | None:
    return None if spec is None else json.dumps(spec, separators=(",", ":"), sort_keys=True)


def _opt_int(value: bool | None) -> int | None:
    return None if value is None else int(value)


async def insert(db: Database, new: NewSchedule, *, cap: Cap | None = None) -> Schedule:
    """Create a schedule; Conflict when a service job's name is taken, CapReached when `cap`'s
    scope is full (counted in the same transaction as the insert)."""

    def op(conn: WriteConnection) -> Schedule:
        if cap is not None and _held(conn, cap) >= cap.limit:
            raise CapReached(cap)
        try:
            cur = conn.execute(SQL_INSERT, new.values())
        except sqlite3.IntegrityError as exc:
            raise _name_taken(exc, new.name) from exc
        return Schedule.from_new(inserted_id(cur), new)

    return await db.write(op)


def _held(conn: WriteConnection, cap: Cap) -> int:
    if cap.org_id is None:
        cur = conn.execute(SQL_COUNT_UNOWNED)
    else:
        cur = conn.execute(SQL_COUNT_ORG_ACTIVE, (cap.org_id,))
    row = cur.fetchone()
    return int(row[0]) if row else 0


async def replace(db: Database, schedule_id: int, new: NewSchedule, *, by: str | None, at: float) -> Schedule:
    """Replace a schedule's definition (a service job's PUT); counters and history stay."""

    def op(conn: WriteConnection) -> Schedule:
        try:
            cur = conn.execute(SQL_REPLACE, (
                new.name, new.description, new.cron, new.cron_normalized, new.timezone,
                _opt_int(new.full_build), _dump(new.spec), int(new.active), new.next_fire_at,
                new.misfire_policy, new.overlap_policy, new.timeout, new.retries,
                new.history_strategy, new.retention_days, by, at, schedule_id,
            ))
        except sqlite3.IntegrityError as exc:
            raise _name_taken(exc, new.name) from exc
        if cur.rowcount == 0:
            raise NotFound("job", schedule_id)
        return Schedule.from_row(written_row(conn, SQL_GET, (schedule_id,)))

    return await db.write(op)


async def get(db: Database, schedule_id: int) -> Schedule | None:
    row = await db.fetchone(SQL_GET, (schedule_id,))
    return None if row is None else Schedule.from_row(row)


async def get_many(db: Database, ids: list[int]) -> dict[int, Schedule]:
    rows = await db.fetchall(SQL_GET_MANY, (json.dumps(ids),))
    return {row["id"]: Schedule.from_row(row) for row in rows}


async def get_by_uid(db: Database, family: str, uid: str) -> Schedule | None:
    row = await db.fetchone(SQL_GET_UID, (uid, family))
    return None if row is None else Schedule.from_row(row)


async def list_scope(
    db: Database,
    family: str,
    org_id: str,
    *,
    project_id: str | None = None,
    cube_id: str | None = None,
    active: bool | None = None,
) -> list[Schedule]:
    params = {
        "family": family, "org_id": org_id, "project_id": project_id, "cube_id": cube_id,
        "active": None if active is None else int(active),
    }
    return [Schedule.from_row(row) for row in await db.fetchall(SQL_LIST_SCOPE, params)]


async def list_family(db: Database, family: str) -> list[Schedule]:
    return [Schedule.from_row(row) for row in await db.fetchall(SQL_LIST_FAMILY, (family,))]


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a batched list reads: a family, and its org/project/cube (None where the family has none)."""

    family: str
    org_id: str | None = None
    project_id: str | None = None
    cube_id: str | None = None
    active: bool | None = None

    def params(self) -> dict[str, Any]:
        return {"family": self.family, "org_id": self.org_id, "project_id": self.project_id,
                "cube_id": self.cube_id, "active": None if self.active is None else int(self.active)}


BATCH = 100


async def scope_batches(
    db: Database, scope: Scope, *, offset: int = 0, limit: int | None = None, size: int | None = None,
    with_kept: bool = False,
) -> AsyncIterator[list[tuple[Schedule, int]]]:
    """The scope's schedules in id order from `offset` on (at most `limit`), `size` per read.

    Each read is its own short query after the last id seen, so no cursor stays open
    between batches and memory holds one batch. Each schedule comes with the number of
    runs it has kept when `with_kept` is set (else 0).
    """
    size = size or BATCH
    params = {**scope.params(), "kept": int(with_kept)}
    after, skip, left = -1, offset, limit
    while left is None or left > 0:
        wanted = size if left is None else min(size, left)
        rows = await db.fetchall(SQL_SCOPE_BATCH, {**params, "after": after, "limit": wanted, "offset": skip})
        if not rows:
            return
        yield [(Schedule.from_values(row), row[30]) for row in rows]
        if len(rows) < wanted:
            return
        after, skip = rows[-1][0], 0
        if left is not None:
            left -= len(rows)


def due_index(db: Database) -> AsyncIterator[list[tuple[int, float]]]:
    """(id, next_fire_at) of every active schedule, in chunks: all the engine loads at start."""
    return db.chunks(SQL_DUE_INDEX)


async def set_active(
    db: Database, schedule_id: int, active: bool, next_fire_at: float | None, *, by: str | None, at: float
) -> bool:
    return await db.execute(SQL_SET_ACTIVE, (int(active), next_fire_at, by, at, schedule_id)) > 0


async def delete(db: Database, schedule_id: int) -> bool:
    return await db.execute(SQL_DELETE, (schedule_id,)) > 0


async def retention_list(db: Database, at: float) -> list[tuple[int, int]]:
    """(id, retention days) of the schedules with runs to delete at `at`."""
    return [(row[0], row[1]) for row in await db.fetchall(SQL_RETENTION_LIST, {"at": at})]


async def last_success(db: Database) -> dict[str, float]:
    """Family -> end of its latest successful run that a schedule records (for the metrics at start)."""
    return {row[0]: row[1] for row in await db.fetchall(SQL_LAST_SUCCESS) if row[1] is not None}


# -- pieces of a larger transaction (the runner composes these in one write) ---------

def op_fired(
    conn: WriteConnection, schedule_id: int, next_fire_at: float | None, started: tuple[str, str] | None, at: float
) -> None:
    """A fire was handled: the next fire time, and `(run_uid, status)` of the run it started, if any."""
    if started is None:
        conn.execute(SQL_SET_NEXT, (next_fire_at, schedule_id))
    else:
        conn.execute(SQL_SET_NEXT_STARTED, (next_fire_at, started[0], at, started[1], schedule_id))


def op_record_start(conn: WriteConnection, schedule_id: int, run_uid: str, at: float, status: str) -> None:
    conn.execute(SQL_RECORD_START, (run_uid, at, status, schedule_id))


def op_record_outcome(
    conn: WriteConnection, schedule_id: int, *, ok: bool, counted: bool, status: str, run_uid: str, at: float
) -> None:
    conn.execute(SQL_RECORD_OUTCOME, {
        "id": schedule_id, "ok": int(ok and counted), "failed": int(counted and not ok),
        "status": status, "run_uid": run_uid, "at": at,
    })
