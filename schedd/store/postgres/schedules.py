"""Schedules of every family in PostgreSQL (the SQLite twin: schedd/store/schedules.py).

SQLite's `x IS ?` (NULL-safe equality) is `x IS NOT DISTINCT FROM $n` here. A write that
SQLite's single writer made safe by running alone takes an advisory lock for the length of
its transaction instead: the cap of an org (or of service jobs) is counted and filled by
one transaction at a time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import asyncpg

from schedd.errors import Conflict, NotFound
from schedd.store.postgres.db import PgDatabase
from schedd.store.runs import Fired
from schedd.store.schedules import BATCH, SCHEDULE_COLUMNS, Cap, CapReached, NewSchedule, Schedule, Scope

# Creates a schedule (the values in the order of `NewSchedule.values()`) and tells the other
# instances at commit; its id.
SQL_INSERT = """
WITH made AS (
    INSERT INTO schedules (uid, family, org_id, project_id, cube_id, name, description, cron,
        cron_normalized, timezone, full_build, spec, active, next_fire_at, misfire_policy, overlap_policy,
        timeout, retries, history_strategy, retention_days, created_by, created_at, updated_by, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
        $21, $22, $23, $24)
    RETURNING id)
SELECT id, pg_notify('schedd_changes', 'schedule:' || id) FROM made"""
# Replaces the definition of a schedule, keeping its counters and history, and tells the other
# instances at commit; the row as it is now.
SQL_REPLACE = """
WITH changed AS (
    UPDATE schedules SET name = $1, description = $2, cron = $3, cron_normalized = $4, timezone = $5,
        full_build = $6, spec = $7, active = $8, next_fire_at = $9, misfire_policy = $10,
        overlap_policy = $11, timeout = $12, retries = $13, history_strategy = $14, retention_days = $15,
        updated_by = $16, updated_at = $17
    WHERE id = $18 RETURNING *)
SELECT changed.*, pg_notify('schedd_changes', 'schedule:' || changed.id) FROM changed"""
# One schedule by its internal id.
SQL_GET = "SELECT * FROM schedules WHERE id = $1"
# Several schedules by internal id (the engine's due batch).
SQL_GET_MANY = "SELECT * FROM schedules WHERE id = ANY($1::bigint[])"
# One schedule of a family by its public uid.
SQL_GET_UID = "SELECT * FROM schedules WHERE uid = $1 AND family = $2"
# Schedules of a family within an org (and project/cube), oldest first.
SQL_LIST_SCOPE = """
SELECT * FROM schedules
WHERE family = $1 AND coalesce(org_id, '') = $2::text
  AND ($3::text IS NULL OR project_id = $3)
  AND ($4::text IS NULL OR cube_id = $4)
  AND ($5::integer IS NULL OR active = $5)
ORDER BY id"""
# Every schedule of a family, oldest first.
SQL_LIST_FAMILY = "SELECT * FROM schedules WHERE family = $1 ORDER BY id"
# A batch of a family's schedules in one org/project/cube (NULL where the family has none), in
# id order after a given id, with the number of runs each has kept when $6 is set (Volt MX's
# job list): keyset paging, one range of the index schedules_scope per batch, already in id
# order. The index and this statement compare coalesce(x, '') where SQLite compares `x IS ?`
# (identifiers are never empty), so that NULL is one value of the index like any other.
SQL_SCOPE_BATCH = f"""
SELECT {SCHEDULE_COLUMNS},
       CASE WHEN $6 THEN (SELECT count(*) FROM runs WHERE runs.schedule_id = schedules.id) ELSE 0 END
FROM schedules
WHERE family = $1 AND coalesce(org_id, '') = coalesce($2::text, '')
  AND coalesce(project_id, '') = coalesce($3::text, '') AND coalesce(cube_id, '') = coalesce($4::text, '')
  AND ($5::integer IS NULL OR active = $5) AND id > $7
ORDER BY id LIMIT $8 OFFSET $9"""  # noqa: S608 - built from constants only
# What the engine needs at start-up, a chunk at a time: the next $2 active schedules' keys after
# id $1 and their next fires, as two arrays (decoded several times faster than as many rows).
SQL_DUE_INDEX = """
SELECT array_agg(id ORDER BY id), array_agg(next_fire_at ORDER BY id) FROM (
    SELECT id, next_fire_at FROM schedules WHERE active = 1 AND next_fire_at IS NOT NULL AND id > $1
    ORDER BY id LIMIT $2) AS due"""
DUE_CHUNK = 50_000
# Moves a schedule's next fire time.
SQL_SET_NEXT = "UPDATE schedules SET next_fire_at = $1 WHERE id = $2"
# Moves a schedule's next fire time and records the run its fire started, in one statement.
SQL_SET_NEXT_STARTED = (
    "UPDATE schedules SET next_fire_at = $1, last_run_uid = $2, last_run_at = $3, last_run_status = $4 WHERE id = $5"
)
# Moves many schedules' next fire times at once ($1 ids, $2 times).
SQL_SET_NEXT_MANY = """
UPDATE schedules SET next_fire_at = f.next_fire_at
FROM unnest($1::bigint[], $2::double precision[]) AS f(id, next_fire_at)
WHERE schedules.id = f.id"""
# Moves many schedules' next fire times and records the run each fire started, at one time ($5).
SQL_SET_NEXT_STARTED_MANY = """
UPDATE schedules SET next_fire_at = f.next_fire_at, last_run_uid = f.uid, last_run_at = $5,
    last_run_status = f.status
FROM unnest($1::bigint[], $2::double precision[], $3::text[], $4::text[]) AS f(id, next_fire_at, uid, status)
WHERE schedules.id = f.id"""
# Activates or deactivates a schedule, with its next fire time, and tells the other instances at commit.
SQL_SET_ACTIVE = """
WITH changed AS (
    UPDATE schedules SET active = $1, next_fire_at = $2, updated_by = $3, updated_at = $4 WHERE id = $5
    RETURNING id)
SELECT pg_notify('schedd_changes', 'schedule:' || id) FROM changed"""
# Deletes a schedule (its runs go with it) and tells the other instances at commit.
SQL_DELETE = """
WITH gone AS (DELETE FROM schedules WHERE id = $1 RETURNING id)
SELECT pg_notify('schedd_changes', 'schedule:' || id) FROM gone"""
# Records the end of a run on its schedule: counters and last outcome.
SQL_RECORD_OUTCOME = """
UPDATE schedules SET success_count = success_count + $2, fail_count = fail_count + $3,
    last_run_status = $4, last_run_uid = $5, last_run_at = $6
WHERE id = $1"""
# Records that a run of a schedule started (for `latest_execution`).
SQL_RECORD_START = "UPDATE schedules SET last_run_uid = $1, last_run_at = $2, last_run_status = $3 WHERE id = $4"
# When each family's latest run that ended well ended, as far as the schedules remember it.
SQL_LAST_SUCCESS = (
    "SELECT family, MAX(last_run_at) FROM schedules WHERE last_run_status = 'done' GROUP BY family"
)
# Holds the cap of one scope (an org, or '' for service jobs) until the transaction ends.
SQL_CAP_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('schedd.cap:' || $1, 0))"
# How many active schedules an org holds, of every family (its quota).
SQL_COUNT_ORG_ACTIVE = "SELECT count(*) FROM schedules WHERE org_id = $1 AND active = 1"
# How many jobs belong to no org (the jobs of admin-only families, such as service jobs: their quota).
SQL_COUNT_UNOWNED = "SELECT count(*) FROM schedules WHERE org_id IS NULL"
# Schedules that hold runs older than their retention period (every period is >= 1 day,
# so only runs older than a day are looked at, through the index on runs.created_at).
SQL_RETENTION_LIST = """
SELECT s.id, s.retention_days FROM runs r JOIN schedules s ON s.id = r.schedule_id
WHERE r.created_at < $1::double precision - 86400 AND s.retention_days > 0
  AND r.created_at < $1::double precision - s.retention_days * 86400.0
GROUP BY s.id"""

SERVICE_NAME_INDEX = "schedules_service_name"


def _name_taken(exc: asyncpg.UniqueViolationError, name: str | None) -> Exception:
    if getattr(exc, "constraint_name", None) == SERVICE_NAME_INDEX:
        return Conflict(f"a job named {name!r} already exists")
    return exc


def _dump(spec: dict[str, object] | None) -> str | None:
    return None if spec is None else json.dumps(spec, separators=(",", ":"), sort_keys=True)


def _opt_int(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _active(active: bool | None) -> int | None:
    return None if active is None else int(active)


class PgScheduleStore:
    """Schedules of every family, in PostgreSQL."""

    __slots__ = ("_db",)

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def insert(self, new: NewSchedule, *, cap: Cap | None = None) -> Schedule:
        async def op(conn: asyncpg.Connection) -> Schedule:
            if cap is not None and await _held(conn, cap) >= cap.limit:
                raise CapReached(cap)
            try:
                schedule_id = await conn.fetchval(SQL_INSERT, *new.values())
            except asyncpg.UniqueViolationError as exc:
                raise _name_taken(exc, new.name) from exc
            return Schedule.from_new(schedule_id, new)

        return await self._db.write(op)

    async def replace(self, schedule_id: int, new: NewSchedule, *, by: str | None, at: float) -> Schedule:
        async def op(conn: asyncpg.Connection) -> Schedule:
            try:
                row = await conn.fetchrow(SQL_REPLACE, new.name, new.description, new.cron, new.cron_normalized,
                                          new.timezone, _opt_int(new.full_build), _dump(new.spec), int(new.active),
                                          new.next_fire_at, new.misfire_policy, new.overlap_policy, new.timeout,
                                          new.retries, new.history_strategy, new.retention_days, by, at, schedule_id)
            except asyncpg.UniqueViolationError as exc:
                raise _name_taken(exc, new.name) from exc
            if row is None:
                raise NotFound("job", schedule_id)
            return Schedule.from_row(row)

        return await self._db.write(op)

    async def get(self, schedule_id: int) -> Schedule | None:
        row = await self._db.fetchrow(SQL_GET, schedule_id)
        return None if row is None else Schedule.from_row(row)

    async def get_many(self, ids: list[int]) -> dict[int, Schedule]:
        rows = await self._db.fetch(SQL_GET_MANY, ids)
        return {row["id"]: Schedule.from_row(row) for row in rows}

    async def get_by_uid(self, family: str, uid: str) -> Schedule | None:
        row = await self._db.fetchrow(SQL_GET_UID, uid, family)
        return None if row is None else Schedule.from_row(row)

    async def list_scope(
        self,
        family: str,
        org_id: str,
        *,
        project_id: str | None = None,
        cube_id: str | None = None,
        active: bool | None = None,
    ) -> list[Schedule]:
        rows = await self._db.fetch(SQL_LIST_SCOPE, family, org_id, project_id, cube_id, _active(active))
        return [Schedule.from_row(row) for row in rows]

    async def list_family(self, family: str) -> list[Schedule]:
        return [Schedule.from_row(row) for row in await self._db.fetch(SQL_LIST_FAMILY, family)]

    async def scope_batches(
        self,
        scope: Scope,
        *,
        offset: int = 0,
        limit: int | None = None,
        size: int | None = None,
        with_kept: bool = False,
    ) -> AsyncIterator[list[tuple[Schedule, int]]]:
        """The scope's schedules in id order from `offset` on (at most `limit`), `size` per read."""
        size = size or BATCH
        after, skip, left = -1, offset, limit
        while left is None or left > 0:
            wanted = size if left is None else min(size, left)
            rows = await self._db.fetch(SQL_SCOPE_BATCH, scope.family, scope.org_id, scope.project_id,
                                        scope.cube_id, _active(scope.active), with_kept, after, wanted, skip)
            if not rows:
                return
            yield [(Schedule.from_values(row), int(row[30])) for row in rows]
            if len(rows) < wanted:
                return
            after, skip = rows[-1][0], 0
            if left is not None:
                left -= len(rows)

    async def due_index(self) -> AsyncIterator[list[tuple[int, float]]]:
        """(id, next_fire_at) of every active schedule, DUE_CHUNK at a time, read in one snapshot."""
        async with self._db.snapshot() as conn:
            after = -1
            while True:
                ids, times = await conn.fetchrow(SQL_DUE_INDEX, after, DUE_CHUNK)
                if not ids:
                    return
                yield list(zip(ids, times, strict=True))
                after = ids[-1]

    async def set_active(
        self, schedule_id: int, active: bool, next_fire_at: float | None, *, by: str | None, at: float
    ) -> bool:
        return await self._db.execute(SQL_SET_ACTIVE, int(active), next_fire_at, by, at, schedule_id) > 0

    async def delete(self, schedule_id: int) -> bool:
        return await self._db.execute(SQL_DELETE, schedule_id) > 0

    async def retention_list(self, at: float) -> list[tuple[int, int]]:
        return [(row[0], row[1]) for row in await self._db.fetch(SQL_RETENTION_LIST, at)]

    async def last_success(self) -> dict[str, float]:
        return {row[0]: row[1] for row in await self._db.fetch(SQL_LAST_SUCCESS) if row[1] is not None}


async def _held(conn: asyncpg.Connection, cap: Cap) -> int:
    """How many schedules the cap's scope holds, counted under the scope's lock."""
    await conn.execute(SQL_CAP_LOCK, cap.org_id or "")
    if cap.org_id is None:
        return int(await conn.fetchval(SQL_COUNT_UNOWNED))
    return int(await conn.fetchval(SQL_COUNT_ORG_ACTIVE, cap.org_id))


# -- pieces of a larger transaction (the runner's writes compose these) ----------------

async def op_fired(
    conn: asyncpg.Connection, schedule_id: int, next_fire_at: float | None, started: tuple[str, str] | None,
    at: float,
) -> None:
    """A fire was handled: the next fire time, and `(run_uid, status)` of the run it started, if any."""
    if started is None:
        await conn.execute(SQL_SET_NEXT, next_fire_at, schedule_id)
    else:
        await conn.execute(SQL_SET_NEXT_STARTED, next_fire_at, started[0], at, started[1], schedule_id)


async def op_fired_many(conn: asyncpg.Connection, fired: Sequence[Fired], at: float) -> None:
    """Many fires handled: each schedule's next fire time and the run its fire started (the last word
    on a schedule named twice wins, as it would one statement after another)."""
    last = {f.schedule_id: f for f in fired}
    moved = [f for f in last.values() if f.started is None]
    started = [f for f in last.values() if f.started is not None]
    if moved:
        await conn.execute(SQL_SET_NEXT_MANY, [f.schedule_id for f in moved], [f.next_fire_at for f in moved])
    if started:
        await conn.execute(SQL_SET_NEXT_STARTED_MANY, [f.schedule_id for f in started],
                           [f.next_fire_at for f in started], [f.started[0] for f in started if f.started],
                           [f.started[1] for f in started if f.started], at)


async def op_record_start(conn: asyncpg.Connection, schedule_id: int, run_uid: str, at: float, status: str) -> None:
    await conn.execute(SQL_RECORD_START, run_uid, at, status, schedule_id)


async def op_record_outcome(
    conn: asyncpg.Connection, schedule_id: int, *, ok: bool, counted: bool, status: str, run_uid: str, at: float
) -> None:
    await conn.execute(SQL_RECORD_OUTCOME, schedule_id, int(ok and counted), int(counted and not ok), status,
                       run_uid, at)

