"""Runs in PostgreSQL (the SQLite twin: schedd/store/runs.py).

Skip coalescing reads the schedule's latest record and then joins it or adds one; SQLite's
single writer made that read-then-write atomic. Here the transaction first takes an
advisory lock on the schedule, so two instances recording skips of one schedule at once
still end with one record that counts both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from schedd.store.postgres import schedules as pg_schedules
from schedd.store.postgres.db import PgDatabase, rowcount
from schedd.store.postgres.lease import Instance
from schedd.store.protocol import LeaseLost
from schedd.store.runs import Finish, Fired, NewRun, Outcome, Run, RunSummary, SkipText

# Records a run (or a skip) as it is created; the values in the order of `NewRun.values()`, then the
# instance that holds it and its incarnation; its id.
SQL_INSERT = (
    "INSERT INTO runs (uid, family, schedule_id, overlap_key, org_id, project_id, cube_id, trigger, state,"
    " full_build, cron, due_at, fires, created_at, started_at, ended_at, attempt, error, skip_reason, window_id,"
    " last_due_at, held_by, held_inc)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,"
    " $22, $23) RETURNING id"
)
# Records how an open run ended (and when its executor started it, $19, if said) and counts it on
# its schedule ($13), in one statement; a run closed already is left as it was and not counted again.
SQL_FINISH_COUNTED = """
WITH ended AS (
    UPDATE runs SET state = $2, ended_at = $3, attempt = $4, error = $5, exit_code = $6, skip_reason = $7,
        timed_out = $8, request_payload = $9, response_status = $10, response_body = $11, complete = $12,
        started_at = coalesce($19, started_at)
    WHERE id = $1 AND state IN ('queued', 'inprogress') RETURNING id)
UPDATE schedules SET success_count = success_count + $14, fail_count = fail_count + $15,
    last_run_status = $16, last_run_uid = $17, last_run_at = $18
WHERE id = $13 AND EXISTS (SELECT 1 FROM ended)"""
# Forgets a run its job's history does not keep and counts it on its schedule ($2), in one statement.
SQL_FORGET_COUNTED = """
WITH gone AS (DELETE FROM runs WHERE id = $1)
UPDATE schedules SET success_count = success_count + $3, fail_count = fail_count + $4,
    last_run_status = $5, last_run_uid = $6, last_run_at = $7
WHERE id = $2"""
# Marks queued runs as started, each at its own time, only those without a due time (API runs)
# when $3 (this instance is fenced out); the ids of those started.
SQL_START_MANY = """
UPDATE runs SET state = 'inprogress', started_at = s.at
FROM unnest($1::bigint[], $2::double precision[]) AS s(id, at)
WHERE runs.id = s.id AND runs.state = 'queued' AND (NOT $3 OR runs.due_at IS NULL)
RETURNING runs.id"""
# Of these runs, the queued fires (with a due time): what a fenced-out instance may not start.
SQL_QUEUED_FIRES = "SELECT id FROM runs WHERE id = ANY($1::bigint[]) AND state = 'queued' AND due_at IS NOT NULL"
# Records many runs at once, one array per column in the order of `NewRun.values()`, all held by one
# instance ($22, $23); (uid, id) of each.
SQL_INSERT_MANY = """
INSERT INTO runs (uid, family, schedule_id, overlap_key, org_id, project_id, cube_id, trigger, state,
    full_build, cron, due_at, fires, created_at, started_at, ended_at, attempt, error, skip_reason, window_id,
    last_due_at, held_by, held_inc)
SELECT *, $22::text, $23::text FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::text[], $9::text[], $10::integer[], $11::text[], $12::double precision[],
    $13::integer[], $14::double precision[], $15::double precision[], $16::double precision[], $17::integer[],
    $18::text[], $19::text[], $20::bigint[], $21::double precision[])
RETURNING uid, id"""
# Holds the skip record of one schedule until the transaction ends.
SQL_SKIP_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('schedd.skip:' || $1::bigint, 0))"
# The latest record of a schedule when it is a skip that a new skip may join: same reason,
# trigger and window, and begun since a time (a joined record covers a bounded span).
SQL_JOINABLE_SKIP = """
SELECT id, fires, due_at, created_at FROM runs
WHERE id = (SELECT max(id) FROM runs WHERE schedule_id = $1)
  AND state = 'skipped' AND skip_reason IS NOT DISTINCT FROM $2::text AND trigger = $3
  AND window_id IS NOT DISTINCT FROM $4::bigint AND created_at >= $5"""
# Folds more skipped fires into a skip record: the count, the last due time and message.
SQL_JOIN_SKIP = "UPDATE runs SET fires = fires + $2, last_due_at = $3, ended_at = $4, error = $5 WHERE id = $1"
# Marks a queued run as started.
SQL_START = "UPDATE runs SET state = 'inprogress', started_at = $1 WHERE id = $2 AND state = 'queued'"
# Records how a run ended, with what the executor kept; a run closed already (interrupted by the
# instance that took over firing) stays as it was closed.
SQL_FINISH = """
UPDATE runs SET state = $2, ended_at = $3, attempt = $4, error = $5, exit_code = $6, skip_reason = $7,
    timed_out = $8, request_payload = $9, response_status = $10, response_body = $11, complete = $12,
    started_at = coalesce($13, started_at)
WHERE id = $1 AND state IN ('queued', 'inprogress')"""
# Records when the executor of a run started its work.
SQL_RECORD_START = "UPDATE runs SET started_at = $1 WHERE id = $2"
# Forgets a run that its job's history strategy does not keep.
SQL_DELETE = "DELETE FROM runs WHERE id = $1"
# Open runs whose holder is gone become interrupted: held by no instance, by one (or an
# incarnation of one) that no longer beats, or by the instance that fired before ($3).
SQL_INTERRUPT_OPEN = """
UPDATE runs SET state = 'interrupted', ended_at = $1, error = $2
WHERE state IN ('queued', 'inprogress')
  AND (held_by IS NULL OR held_by = $3::text
       OR NOT EXISTS (SELECT 1 FROM instances i
                      WHERE i.name = runs.held_by AND i.incarnation = runs.held_inc
                        AND i.alive_until > extract(epoch FROM clock_timestamp())))
RETURNING id, schedule_id, uid"""
# One run by public uid.
SQL_GET_UID = "SELECT * FROM runs WHERE uid = $1"
# One run of a schedule by internal id (a service job's jobRunId).
SQL_GET_OF_SCHEDULE = "SELECT * FROM runs WHERE id = $1 AND schedule_id = $2"
# The open (queued or in progress) runs for an overlap key, oldest first.
SQL_OPEN_FOR_KEY = "SELECT * FROM runs WHERE overlap_key = $1 AND state IN ('queued', 'inprogress') ORDER BY id"
# A page of a family's runs in an org, newest first, optionally by state/project/cube.
SQL_LIST_ORG = """
SELECT * FROM runs
WHERE family = $1 AND org_id = $2
  AND ($3::text IS NULL OR state = $3)
  AND ($4::text IS NULL OR project_id = $4)
  AND ($5::text IS NULL OR cube_id = $5)
ORDER BY id DESC LIMIT $6 OFFSET $7"""
# A page of one schedule's runs, newest first.
SQL_LIST_SCHEDULE = "SELECT * FROM runs WHERE schedule_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
# A page of one schedule's runs, newest first: only what a history line shows.
SQL_SUMMARIES_SCHEDULE = (
    "SELECT id, state, cron, created_at, started_at, ended_at, complete FROM runs"
    " WHERE schedule_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
)
# How many runs a schedule has kept.
SQL_COUNT_SCHEDULE = "SELECT count(*) FROM runs WHERE schedule_id = $1"
# Durations of a cube's last successful builds (for estimateTime).
SQL_RECENT_DURATIONS = """
SELECT ended_at - started_at FROM runs
WHERE family = $1 AND org_id = $2 AND project_id = $3 AND cube_id = $4 AND state = 'done'
  AND started_at IS NOT NULL AND ended_at IS NOT NULL
ORDER BY id DESC LIMIT $5"""
# Whether a cube has had a successful build before (first-build maintenance trigger).
SQL_CUBE_HAS_BUILT = """
SELECT 1 FROM runs
WHERE family = $1 AND org_id = $2 AND project_id = $3 AND cube_id = $4 AND state = 'done'
  AND id != $5 LIMIT 1"""
# Deletes a small batch of a schedule's runs created before a time (retention).
SQL_RETENTION_BATCH = """
DELETE FROM runs WHERE id IN (
    SELECT id FROM runs WHERE schedule_id = $1 AND created_at < $2 AND state NOT IN ('queued', 'inprogress')
    LIMIT $3)"""
# Deletes a small batch of the oldest ended runs created before a time that no retention
# period of their own covers: runs without a schedule, or of a schedule whose
# retention_days is 0 (the [scheduler] history_retention of org maintenance and cube builds).
SQL_RETENTION_UNKEPT_BATCH = """
DELETE FROM runs WHERE id IN (
    SELECT r.id FROM runs r LEFT JOIN schedules s ON s.id = r.schedule_id
    WHERE r.created_at < $1 AND r.state NOT IN ('queued', 'inprogress')
      AND (r.schedule_id IS NULL OR s.retention_days = 0)
    ORDER BY r.created_at LIMIT $2)"""
# Sums the fires each schedule's records account for (crash-loop and tests).
SQL_FIRES_BY_SCHEDULE = "SELECT schedule_id, sum(fires) FROM runs WHERE schedule_id IS NOT NULL GROUP BY schedule_id"
# The latest creation time of any run record (index runs_created_at): how far handling got.
SQL_LATEST_CREATED = "SELECT max(created_at) FROM runs"


class PgRunStore:
    """Runs: reads, and the retention sweep, in PostgreSQL."""

    __slots__ = ("_db",)

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def insert(self, new: NewRun) -> int:
        run_id: int = await self._db.write_one("fetchval", SQL_INSERT, *new.values(), None, None)
        return run_id

    async def get_by_uid(self, uid: str) -> Run | None:
        row = await self._db.fetchrow(SQL_GET_UID, uid)
        return None if row is None else Run.from_row(row)

    async def get_of_schedule(self, schedule_id: int, run_id: int) -> Run | None:
        row = await self._db.fetchrow(SQL_GET_OF_SCHEDULE, run_id, schedule_id)
        return None if row is None else Run.from_row(row)

    async def open_for_key(self, overlap_key: str) -> list[Run]:
        return [Run.from_row(row) for row in await self._db.fetch(SQL_OPEN_FOR_KEY, overlap_key)]

    async def list_org(
        self,
        family: str,
        org_id: str,
        *,
        limit: int,
        offset: int,
        state: str | None = None,
        project_id: str | None = None,
        cube_id: str | None = None,
    ) -> list[Run]:
        rows = await self._db.fetch(SQL_LIST_ORG, family, org_id, state, project_id, cube_id, limit, offset)
        return [Run.from_row(row) for row in rows]

    async def list_schedule(self, schedule_id: int, *, limit: int, offset: int) -> list[Run]:
        return [Run.from_row(row) for row in await self._db.fetch(SQL_LIST_SCHEDULE, schedule_id, limit, offset)]

    async def list_schedule_summaries(self, schedule_id: int, *, limit: int, offset: int) -> list[RunSummary]:
        rows = await self._db.fetch(SQL_SUMMARIES_SCHEDULE, schedule_id, limit, offset)
        return [RunSummary(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]

    async def count_schedule(self, schedule_id: int) -> int:
        return int(await self._db.fetchval(SQL_COUNT_SCHEDULE, schedule_id) or 0)

    async def recent_durations(
        self, family: str, org_id: str, project_id: str, cube_id: str, n: int = 10,
    ) -> list[float]:
        rows = await self._db.fetch(SQL_RECENT_DURATIONS, family, org_id, project_id, cube_id, n)
        return [float(row[0]) for row in rows]

    async def cube_has_built(
        self, family: str, org_id: str, project_id: str, cube_id: str, *, other_than: int,
    ) -> bool:
        return await self._db.fetchrow(SQL_CUBE_HAS_BUILT, family, org_id, project_id, cube_id, other_than) is not None

    async def delete_older(self, schedule_id: int, before: float, batch: int = 500) -> int:
        return await self._db.execute(SQL_RETENTION_BATCH, schedule_id, before, batch)

    async def delete_unkept(self, before: float, batch: int = 500) -> int:
        """Delete at most `batch` of the oldest ended runs before `before` that no job's own retention covers."""
        return await self._db.execute(SQL_RETENTION_UNKEPT_BATCH, before, batch)

    async def fires_by_schedule(self) -> dict[int, int]:
        return {row[0]: int(row[1]) for row in await self._db.fetch(SQL_FIRES_BY_SCHEDULE)}

    async def latest_created(self) -> float | None:
        value = await self._db.fetchval(SQL_LATEST_CREATED)
        return None if value is None else float(value)


# -- the runner's writes -------------------------------------------------------------------

class PgFireStore:
    """The runner's writes, each one commit. The writes of single runs (a run started now, a start,
    an end) are group-committed with those of the other runs doing the same (`PgDatabase.batched`).
    `record_fires` and `mark_started` carry the fence (schedd/store/postgres/lease.py)."""

    __slots__ = ("_db", "_me")

    def __init__(self, db: PgDatabase, me: Instance) -> None:
        self._db = db
        self._me = me

    def set_fence(self, holder: str | None, epoch: int | None) -> None:
        self._me.fence = None if holder is None or epoch is None else (holder, epoch)

    async def interrupt_open(
        self, at: float, error: str, *, previous: str | None = None
    ) -> list[tuple[int, int | None, str]]:
        async def op(conn: asyncpg.Connection) -> list[tuple[int, int | None, str]]:
            closed = await op_interrupt_open(conn, at, error, previous)
            counted = [(schedule_id, 0, 1, "interrupted", uid, at) for _, schedule_id, uid in closed
                       if schedule_id is not None]
            if counted:
                await conn.executemany(pg_schedules.SQL_RECORD_OUTCOME, counted)
            return closed

        return await self._db.write(op)

    async def record_fires(
        self, rows: Sequence[tuple[NewRun, SkipText | None]], fired: Sequence[Fired], *,
        skip_since: float, at: float,
    ) -> tuple[list[int], list[str]]:
        held = self._me.held()

        async def op(conn: asyncpg.Connection) -> tuple[list[int], list[str]]:
            await self._me.check(conn)
            ids: list[int] = []
            joined: list[str] = []
            runs: list[NewRun] = []  # consecutive runs, inserted together before the next skip
            for row, text in rows:
                if text is None:
                    runs.append(row)
                    continue
                ids += await op_insert_many(conn, runs, held)
                runs = []
                run_id, was_joined = await op_record_skip(conn, row, text, since=skip_since, held=held)
                ids.append(run_id)
                if was_joined:
                    joined.append(row.family)
            ids += await op_insert_many(conn, runs, held)
            await pg_schedules.op_fired_many(conn, fired, at)
            return ids, joined

        return await self._db.write(op)

    async def start_now(self, row: NewRun, schedule_id: int | None) -> int:
        run_id: int = await self._db.batched(self._record_runs, (row, schedule_id))
        return run_id

    async def record_skip(self, row: NewRun, text: SkipText, *, since: float) -> tuple[int, bool]:
        held = self._me.held()
        return await self._db.write(lambda conn: op_record_skip(conn, row, text, since=since, held=held))

    async def mark_started(self, run_id: int, at: float) -> bool:
        """A queued run begins; LeaseLost for a fire's run once another instance holds the lease (a run
        started through the API starts on any instance)."""
        started: bool | None = await self._db.batched(self._start_runs, (run_id, at))
        if started is None:
            raise LeaseLost("another instance holds the firing lease")
        return started

    async def record_starts(self, starts: Sequence[tuple[float, int]]) -> None:
        await asyncio.gather(*(self._db.grouped(SQL_RECORD_START, at, run_id) for at, run_id in starts))

    async def finish(self, run_id: int, finish: Finish | None, outcome: Outcome | None) -> None:
        if outcome is None:
            if finish is None:
                await self._db.grouped(SQL_DELETE, run_id)
            else:
                await self._db.grouped(SQL_FINISH, *_finish_values(run_id, finish), finish.started_at)
            return
        counts = (int(outcome.ok and outcome.counted), int(outcome.counted and not outcome.ok), outcome.status,
                  outcome.run_uid, outcome.at)
        if finish is None:
            await self._db.grouped(SQL_FORGET_COUNTED, run_id, outcome.schedule_id, *counts)
        else:
            await self._db.grouped(SQL_FINISH_COUNTED, *_finish_values(run_id, finish), outcome.schedule_id, *counts,
                                   finish.started_at)

    async def _record_runs(self, conn: asyncpg.Connection, items: list[tuple[NewRun, int | None]]) -> list[int]:
        """Runs started now, recorded together: one insert, then their starts noted on their schedules."""
        ids = await op_insert_many(conn, [row for row, _ in items], self._me.held())
        notes = [(row.uid, row.created_at, row.state, schedule_id) for row, schedule_id in items
                 if schedule_id is not None]
        if notes:
            await conn.executemany(pg_schedules.SQL_RECORD_START, notes)
        return ids

    async def _start_runs(self, conn: asyncpg.Connection, items: list[tuple[int, float]]) -> list[bool | None]:
        """Queued runs marked started together, under the fence: whether each was queued, or None for
        a fire's run this instance may no longer start."""
        fenced_out = not await self._me.holds(conn)
        ids = [run_id for run_id, _ in items]
        started = {row[0] for row in await conn.fetch(SQL_START_MANY, ids, [at for _, at in items], fenced_out)}
        refused = {row[0] for row in await conn.fetch(SQL_QUEUED_FIRES, ids)} if fenced_out else set()
        return [None if run_id in refused else run_id in started for run_id in ids]


def _finish_values(run_id: int, finish: Finish) -> tuple[Any, ...]:
    """The values of SQL_FINISH ($1-$12)."""
    return (run_id, finish.state, finish.ended_at, finish.attempt, finish.error, finish.exit_code,
            finish.skip_reason, int(finish.timed_out), finish.request_payload, finish.response_status,
            finish.response_body, int(finish.complete))


# -- pieces of a larger transaction (the runner's writes compose these) ----------------

Held = tuple[str | None, str | None]
"""The instance that records a run, and its incarnation (None, None: not known)."""


async def op_insert(conn: asyncpg.Connection, new: NewRun, held: Held = (None, None)) -> int:
    run_id: int = await conn.fetchval(SQL_INSERT, *new.values(), *held)
    return run_id


async def op_insert_many(conn: asyncpg.Connection, rows: Sequence[NewRun], held: Held = (None, None)) -> list[int]:
    """Record many runs with one statement; their ids, in the order of `rows`."""
    if not rows:
        return []
    columns = list(zip(*(row.values() for row in rows), strict=True))
    ids = {uid: run_id for uid, run_id in await conn.fetch(SQL_INSERT_MANY, *columns, *held)}
    return [ids[row.uid] for row in rows]


async def op_start(conn: asyncpg.Connection, run_id: int, at: float) -> bool:
    return rowcount(await conn.execute(SQL_START, at, run_id)) > 0


async def op_finish(conn: asyncpg.Connection, run_id: int, finish: Finish) -> None:
    await conn.execute(SQL_FINISH, *_finish_values(run_id, finish), finish.started_at)


async def op_record_skip(
    conn: asyncpg.Connection, new: NewRun, text: SkipText, *, since: float, held: Held = (None, None)
) -> tuple[int, bool]:
    """Record a skip, joined to the schedule's latest record when that is a skip of the same
    kind begun at or after `since`; returns (record id, joined)."""
    if new.schedule_id is not None:
        await conn.execute(SQL_SKIP_LOCK, new.schedule_id)
        row = await conn.fetchrow(SQL_JOINABLE_SKIP, new.schedule_id, new.skip_reason, new.trigger,
                                  new.window_id, since)
        if row is not None:
            fires = row["fires"] + new.fires
            first = row["due_at"] if row["due_at"] is not None else row["created_at"]
            last = _last_due(new)
            await conn.execute(SQL_JOIN_SKIP, row["id"], new.fires, last, new.created_at, text(fires, first, last))
            return row["id"], True
    return await op_insert(conn, new, held), False


def _last_due(new: NewRun) -> float:
    if new.last_due_at is not None:
        return new.last_due_at
    return new.due_at if new.due_at is not None else new.created_at


async def op_delete(conn: asyncpg.Connection, run_id: int) -> None:
    await conn.execute(SQL_DELETE, run_id)


async def op_interrupt_open(
    conn: asyncpg.Connection, at: float, error: str, previous: str | None = None
) -> list[tuple[int, int | None, str]]:
    """Close the runs whose holder is gone; returns (run id, schedule id, uid) of each."""
    rows = await conn.fetch(SQL_INTERRUPT_OPEN, at, error, previous)
    return [(row[0], row[1], row[2]) for row in rows]
