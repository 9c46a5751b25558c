"""Runs: every due fire, run now and skip, with its outcome and bounded payloads."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from schedd.states import OPEN_RUN_STATES
from schedd.store.db import Database, WriteConnection, inserted_id

OPEN_STATES = OPEN_RUN_STATES
END_STATES = ("done", "failed", "canceled", "skipped", "interrupted")

# Records a run (or a skip) as it is created; the values in the order of `NewRun.values()`.
SQL_INSERT = (
    "INSERT INTO runs (uid, family, schedule_id, overlap_key, org_id, project_id, cube_id, trigger, state,"
    " full_build, cron, due_at, fires, created_at, started_at, ended_at, attempt, error, skip_reason, window_id,"
    " last_due_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The latest record of a schedule when it is a skip that a new skip may join: same reason,
# trigger and window, and begun since a time (a joined record covers a bounded span).
SQL_JOINABLE_SKIP = """
SELECT id, fires, due_at, created_at FROM runs
WHERE id = (SELECT max(id) FROM runs WHERE schedule_id = :schedule_id)
  AND state = 'skipped' AND skip_reason IS :reason AND trigger = :trigger AND window_id IS :window_id
  AND created_at >= :since"""
# Folds more skipped fires into a skip record: the count, the last due time and message.
SQL_JOIN_SKIP = """
UPDATE runs SET fires = fires + :fires, last_due_at = :last_due_at, ended_at = :at, error = :error
WHERE id = :id"""
# Marks a queued run as started.
SQL_START = "UPDATE runs SET state = 'inprogress', started_at = ? WHERE id = ? AND state = 'queued'"
# Records how a run ended, with what the executor kept; a run already closed (interrupted by
# the instance that took over firing) stays as it was closed.
SQL_FINISH = """
UPDATE runs SET state = :state, started_at = coalesce(:started_at, started_at), ended_at = :ended_at,
    attempt = :attempt, error = :error,
    exit_code = :exit_code, skip_reason = :skip_reason,
    timed_out = :timed_out, request_payload = :request_payload,
    response_status = :response_status, response_body = :response_body, complete = :complete
WHERE id = :id AND state IN ('queued', 'inprogress')"""
# Records when the executor of a run started its work.
SQL_RECORD_START = "UPDATE runs SET started_at = ? WHERE id = ?"
# Forgets a run that its job's history strategy does not keep.
SQL_DELETE = "DELETE FROM runs WHERE id = ?"
# Runs left open by a crash become interrupted (at start-up).
SQL_INTERRUPT_OPEN = """
UPDATE runs SET state = 'interrupted', ended_at = :at, error = :error
WHERE state IN ('queued', 'inprogress')
RETURNING id, schedule_id, uid"""
# One run by public uid.
SQL_GET_UID = "SELECT * FROM runs WHERE uid = ?"
# One run of a schedule by internal id (a service job's jobRunId).
SQL_GET_OF_SCHEDULE = "SELECT * FROM runs WHERE id = ? AND schedule_id = ?"
# The open (queued or in progress) runs for an overlap key, oldest first.
SQL_OPEN_FOR_KEY = (
    "SELECT * FROM runs WHERE overlap_key = ? AND state IN ('queued', 'inprogress') ORDER BY id"
)
# A page of a family's runs in an org, newest first, optionally by state/project/cube.
SQL_LIST_ORG = """
SELECT * FROM runs
WHERE family = :family AND org_id = :org_id
  AND (:state IS NULL OR state = :state)
  AND (:project_id IS NULL OR project_id = :project_id)
  AND (:cube_id IS NULL OR cube_id = :cube_id)
ORDER BY id DESC LIMIT :limit OFFSET :offset"""
# A page of one schedule's runs, newest first.
SQL_LIST_SCHEDULE = (
    "SELECT * FROM runs WHERE schedule_id = ? ORDER BY id DESC LIMIT ? OFFSET ?"
)
# A page of one schedule's runs, newest first: only what a history line shows.
SQL_SUMMARIES_SCHEDULE = (
    "SELECT id, state, cron, created_at, started_at, ended_at, complete FROM runs"
    " WHERE schedule_id = ? ORDER BY id DESC LIMIT ? OFFSET ?"
)
# How many runs a schedule has kept.
SQL_COUNT_SCHEDULE = "SELECT count(*) FROM runs WHERE schedule_id = ?"
# Durations of a cube's last successful builds (for estimateTime).
SQL_RECENT_DURATIONS = """
SELECT ended_at - started_at FROM runs
WHERE family = ? AND org_id = ? AND project_id = ? AND cube_id = ? AND state = 'done'
  AND started_at IS NOT NULL AND ended_at IS NOT NULL
ORDER BY id DESC LIMIT ?"""
# Whether a cube has had a successful build before (first-build maintenance trigger).
SQL_CUBE_HAS_BUILT = """
SELECT 1 FROM runs
WHERE family = ? AND org_id = ? AND project_id = ? AND cube_id = ? AND state = 'done'
  AND id != ? LIMIT 1"""
# Deletes a small batch of a schedule's runs created before a time (retention).
SQL_RETENTION_BATCH = """
DELETE FROM runs WHERE id IN (
    SELECT id FROM runs WHERE schedule_id = ? AND created_at < ? AND state NOT IN ('queued', 'inprogress')
    LIMIT ?)"""
# Deletes a small batch of the oldest ended runs created before a time that no retention
# period of their own covers: runs without a schedule, or of a schedule whose
# retention_days is 0 (the [scheduler] history_retention of org maintenance and cube builds).
SQL_RETENTION_UNKEPT_BATCH = """
DELETE FROM runs WHERE id IN (
    SELECT r.id FROM runs r LEFT JOIN schedules s ON s.id = r.schedule_id
    WHERE r.created_at < ? AND r.state NOT IN ('queued', 'inprogress')
      AND (r.schedule_id IS NULL OR s.retention_days = 0)
    ORDER BY r.created_at LIMIT ?)"""
# Sums the fires each schedule's records account for (crash-loop and tests).
SQL_FIRES_BY_SCHEDULE = "SELECT schedule_id, sum(fires) FROM runs WHERE schedule_id IS NOT NULL GROUP BY schedule_id"
# The latest creation time of any run record (index runs_created_at): how far handling got.
SQL_LATEST_CREATED = "SELECT max(created_at) FROM runs"


@dataclass(frozen=True, slots=True)
class NewRun:
    uid: str
    family: str
    overlap_key: str
    trigger: str
    state: str
    created_at: float
    schedule_id: int | None = None
    org_id: str | None = None
    project_id: str | None = None
    cube_id: str | None = None
    full_build: bool | None = None
    cron: str | None = None
    due_at: float | None = None
    fires: int = 1
    started_at: float | None = None
    ended_at: float | None = None
    attempt: int = 1
    error: str | None = None
    skip_reason: str | None = None
    window_id: int | None = None
    last_due_at: float | None = None

    def values(self) -> tuple[Any, ...]:
        return (
            self.uid, self.family, self.schedule_id, self.overlap_key, self.org_id,
            self.project_id, self.cube_id, self.trigger, self.state,
            None if self.full_build is None else int(self.full_build), self.cron, self.due_at,
            self.fires, self.created_at, self.started_at, self.ended_at, self.attempt,
            self.error, self.skip_reason, self.window_id, self.last_due_at,
        )


class RunSummary(NamedTuple):
    """The columns of a run that a history line shows (a service job's history)."""

    id: int
    state: str
    cron: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    complete: bool


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    uid: str
    family: str
    schedule_id: int | None
    overlap_key: str
    org_id: str | None
    project_id: str | None
    cube_id: str | None
    trigger: str
    state: str
    full_build: bool | None
    cron: str | None
    due_at: float | None
    fires: int
    created_at: float
    started_at: float | None
    ended_at: float | None
    attempt: int
    error: str | None
    exit_code: int | None
    timed_out: bool
    skip_reason: str | None
    window_id: int | None
    request_payload: str | None
    response_status: int | None
    response_body: str | None
    complete: bool
    last_due_at: float | None = None
    """Of a record of several skipped fires: the due time of the last (`due_at`: the first)."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Run:
        return cls(
            id=row["id"], uid=row["uid"], family=row["family"], schedule_id=row["schedule_id"],
            overlap_key=row["overlap_key"], org_id=row["org_id"], project_id=row["project_id"],
            cube_id=row["cube_id"], trigger=row["trigger"], state=row["state"],
            full_build=None if row["full_build"] is None else bool(row["full_build"]),
            cron=row["cron"], due_at=row["due_at"], fires=row["fires"],
            created_at=row["created_at"], started_at=row["started_at"], ended_at=row["ended_at"],
            attempt=row["attempt"], error=row["error"], exit_code=row["exit_code"],
            timed_out=bool(row["timed_out"]), skip_reason=row["skip_reason"],
            window_id=row["window_id"], request_payload=row["request_payload"],
            response_status=row["response_status"], response_body=row["response_body"],
            complete=bool(row["complete"]), last_due_at=row["last_due_at"],
        )


@dataclass(frozen=True, slots=True)
class Finish:
    """How a run ended, as recorded."""

    state: str
    ended_at: float
    started_at: float | None = None  # when the executor started the work; None keeps the recorded one
    attempt: int = 1
    error: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    request_payload: str | None = None
    response_status: int | None = None
    response_body: str | None = None
    complete: bool = False
    skip_reason: str | None = None


SkipText = Callable[[int, float, float], str]
"""The message of a skip record from its fire count and first and last due times."""


@dataclass(frozen=True, slots=True)
class Fired:
    """A schedule's due fire was handled: its next fire time, and `(run uid, status)` of the run it started."""

    schedule_id: int
    next_fire_at: float | None
    started: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run's end counts on its schedule (the last status, success and failure counts)."""

    schedule_id: int
    ok: bool
    counted: bool
    status: str
    run_uid: str
    at: float


# -- pieces of a larger transaction ------------------------------------------------

def op_insert(conn: WriteConnection, new: NewRun) -> int:
    return inserted_id(conn.execute(SQL_INSERT, new.values()))


def op_start(conn: WriteConnection, run_id: int, at: float) -> bool:
    return conn.execute(SQL_START, (at, run_id)).rowcount > 0


def op_record_starts(conn: WriteConnection, starts: Sequence[tuple[float, int]]) -> None:
    """Record `(started_at, run id)` of runs whose executors started their work."""
    conn.executemany(SQL_RECORD_START, starts)


def op_finish(conn: WriteConnection, run_id: int, finish: Finish) -> bool:
    """Close an open run; False when it was closed already."""
    return conn.execute(SQL_FINISH, {
        "id": run_id, "state": finish.state, "started_at": finish.started_at, "ended_at": finish.ended_at,
        "attempt": finish.attempt, "error": finish.error,
        "exit_code": finish.exit_code, "timed_out": int(finish.timed_out),
        "request_payload": finish.request_payload, "response_status": finish.response_status,
        "response_body": finish.response_body, "complete": int(finish.complete),
        "skip_reason": finish.skip_reason,
    }).rowcount > 0


def op_record_skip(conn: WriteConnection, new: NewRun, text: SkipText, *, since: float) -> tuple[int, bool]:
    """Record a skip, joined to the schedule's latest record when that is a skip of the same
    kind begun at or after `since`; returns (record id, joined)."""
    if new.schedule_id is not None:
        cur = conn.execute(SQL_JOINABLE_SKIP, {
            "schedule_id": new.schedule_id, "reason": new.skip_reason, "trigger": new.trigger,
            "window_id": new.window_id, "since": since,
        })
        row = cur.fetchone()
        if row is not None:
            fires = row["fires"] + new.fires
            first = row["due_at"] if row["due_at"] is not None else row["created_at"]
            last = _last_due(new)
            conn.execute(SQL_JOIN_SKIP, {
                "id": row["id"], "fires": new.fires, "last_due_at": last, "at": new.created_at,
                "error": text(fires, first, last),
            })
            return row["id"], True
    return op_insert(conn, new), False


def _last_due(new: NewRun) -> float:
    if new.last_due_at is not None:
        return new.last_due_at
    return new.due_at if new.due_at is not None else new.created_at


def op_delete(conn: WriteConnection, run_id: int) -> None:
    conn.execute(SQL_DELETE, (run_id,))


# -- whole operations --------------------------------------------------------------

def op_interrupt_open(conn: WriteConnection, at: float, error: str) -> list[tuple[int, int | None, str]]:
    """Close runs a crash left open; returns (run id, schedule id, uid) of each."""
    rows = conn.execute(SQL_INTERRUPT_OPEN, {"at": at, "error": error}).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


async def get_by_uid(db: Database, uid: str) -> Run | None:
    row = await db.fetchone(SQL_GET_UID, (uid,))
    return None if row is None else Run.from_row(row)


async def get_of_schedule(db: Database, schedule_id: int, run_id: int) -> Run | None:
    row = await db.fetchone(SQL_GET_OF_SCHEDULE, (run_id, schedule_id))
    return None if row is None else Run.from_row(row)


async def insert(db: Database, new: NewRun) -> int:
    """Record one run on its own (the runner records its runs inside larger transactions)."""
    return await db.write(lambda conn: op_insert(conn, new))


async def open_for_key(db: Database, overlap_key: str) -> list[Run]:
    return [Run.from_row(row) for row in await db.fetchall(SQL_OPEN_FOR_KEY, (overlap_key,))]


async def list_org(
    db: Database,
    family: str,
    org_id: str,
    *,
    limit: int,
    offset: int,
    state: str | None = None,
    project_id: str | None = None,
    cube_id: str | None = None,
) -> list[Run]:
    params = {
        "family": family, "org_id": org_id, "state": state, "project_id": project_id,
        "cube_id": cube_id, "limit": limit, "offset": offset,
    }
    return [Run.from_row(row) for row in await db.fetchall(SQL_LIST_ORG, params)]


async def list_schedule(db: Database, schedule_id: int, *, limit: int, offset: int) -> list[Run]:
    rows = await db.fetchall(SQL_LIST_SCHEDULE, (schedule_id, limit, offset))
    return [Run.from_row(row) for row in rows]


async def list_schedule_summaries(db: Database, schedule_id: int, *, limit: int, offset: int) -> list[RunSummary]:
    """`list_schedule` reduced to `RunSummary`: a seventh of the columns, no `Run` per row."""
    rows = await db.fetchall(SQL_SUMMARIES_SCHEDULE, (schedule_id, limit, offset))
    return [RunSummary(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]


async def count_schedule(db: Database, schedule_id: int) -> int:
    row = await db.fetchone(SQL_COUNT_SCHEDULE, (schedule_id,))
    return int(row[0]) if row else 0


async def recent_durations(
    db: Database, family: str, org_id: str, project_id: str, cube_id: str, n: int = 10,
) -> list[float]:
    rows = await db.fetchall(SQL_RECENT_DURATIONS, (family, org_id, project_id, cube_id, n))
    return [float(row[0]) for row in rows]


async def cube_has_built(
    db: Database, family: str, org_id: str, project_id: str, cube_id: str, *, other_than: int,
) -> bool:
    row = await db.fetchone(SQL_CUBE_HAS_BUILT, (family, org_id, project_id, cube_id, other_than))
    return row is not None


async def delete_older(db: Database, schedule_id: int, before: float, batch: int = 500) -> int:
    """Delete at most `batch` of a schedule's ended runs created before `before`."""
    return await db.execute(SQL_RETENTION_BATCH, (schedule_id, before, batch))


async def delete_unkept(db: Database, before: float, batch: int = 500) -> int:
    """Delete at most `batch` of the oldest ended runs before `before` that no job's own retention covers."""
    return await db.execute(SQL_RETENTION_UNKEPT_BATCH, (before, batch))


async def fires_by_schedule(db: Database) -> dict[int, int]:
    return {row[0]: int(row[1]) for row in await db.fetchall(SQL_FIRES_BY_SCHEDULE)}


async def latest_created(db: Database) -> float | None:
    """When the newest run record was created, or None without runs."""
    row = await db.fetchone(SQL_LATEST_CREATED)
    return None if row is None or row[0] is None else float(row[0])
