"""The SQLite backend of `schedd.store.protocol.Store`: the store modules' functions, bound to one `Database`."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from schedd.store import accounts, grants, reports, runs, schedules, windows
from schedd.store.accounts import TokenInfo, TokenRecord, User
from schedd.store.db import Database, WriteConnection, backup
from schedd.store.protocol import LeaseHolder, Store
from schedd.store.reports import HourDelay, Visibility
from schedd.store.runs import Finish, Fired, NewRun, Outcome, Run, RunSummary, SkipText
from schedd.store.schedules import Cap, NewSchedule, Schedule, Scope
from schedd.store.windows import NewEvent, Window


class SqliteAccountStore:
    """Organizations, users and their tokens, in SQLite (schedd/store/accounts.py)."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure_org(self, org_id: str, at: float) -> None:
        return await accounts.ensure_org(self._db, org_id, at)

    async def create_org(self, org_id: str, at: float) -> bool:
        return await accounts.create_org(self._db, org_id, at)

    async def org_exists(self, org_id: str) -> bool:
        return await accounts.org_exists(self._db, org_id)

    async def list_orgs(self) -> list[str]:
        return await accounts.list_orgs(self._db)

    async def create_user(
        self,
        name: str,
        password_hash: str,
        *,
        email: str | None,
        is_admin: bool,
        orgs: tuple[str, ...],
        create_orgs: bool = True,
        at: float,
    ) -> int:
        return await accounts.create_user(
            self._db, name, password_hash, email=email, is_admin=is_admin, orgs=orgs, create_orgs=create_orgs, at=at
        )

    async def get_user(self, name: str) -> User:
        return await accounts.get_user(self._db, name)

    async def find_user(self, name: str) -> User | None:
        return await accounts.find_user(self._db, name)

    async def find_password_hash(self, name: str) -> str | None:
        return await accounts.find_password_hash(self._db, name)

    async def add_tokens(
        self, user_id: int, tokens: Sequence[tuple[bytes, str, float]], *, name: str | None, at: float
    ) -> None:
        return await accounts.add_tokens(self._db, user_id, tokens, name=name, at=at)

    async def lookup_token(self, token_hash: bytes) -> TokenRecord | None:
        return await accounts.lookup_token(self._db, token_hash)

    async def revoke_token(self, token_hash: bytes, at: float) -> bool:
        return await accounts.revoke_token(self._db, token_hash, at)

    async def revoke_token_id(self, token_id: int, at: float) -> bool:
        return await accounts.revoke_token_id(self._db, token_id, at)

    async def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        return await accounts.list_tokens(self._db, user)

    async def list_users(self) -> list[User]:
        return await accounts.list_users(self._db)

    async def set_disabled(self, name: str, disabled_at: float | None, at: float) -> int:
        return await accounts.set_disabled(self._db, name, disabled_at, at)

    async def set_password(self, name: str, password_hash: str, *, revoke_tokens: bool, at: float) -> int:
        return await accounts.set_password(self._db, name, password_hash, revoke_tokens=revoke_tokens, at=at)

    async def remove_member(self, name: str, org_id: str) -> bool:
        return await accounts.remove_member(self._db, name, org_id)

    async def purge_tokens(self, before: float) -> int:
        return await accounts.purge_tokens(self._db, before)

    def revocation_watch(self) -> accounts.RevocationWatch:
        return accounts.RevocationWatch(self._db.path)


class SqliteScheduleStore:
    """Schedules of every family, in SQLite (schedd/store/schedules.py)."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, new: NewSchedule, *, cap: Cap | None = None) -> Schedule:
        return await schedules.insert(self._db, new, cap=cap)

    async def replace(self, schedule_id: int, new: NewSchedule, *, by: str | None, at: float) -> Schedule:
        return await schedules.replace(self._db, schedule_id, new, by=by, at=at)

    async def get(self, schedule_id: int) -> Schedule | None:
        return await schedules.get(self._db, schedule_id)

    async def get_many(self, ids: list[int]) -> dict[int, Schedule]:
        return await schedules.get_many(self._db, ids)

    async def get_by_uid(self, family: str, uid: str) -> Schedule | None:
        return await schedules.get_by_uid(self._db, family, uid)

    async def list_scope(
        self,
        family: str,
        org_id: str,
        *,
        project_id: str | None = None,
        cube_id: str | None = None,
        active: bool | None = None,
    ) -> list[Schedule]:
        return await schedules.list_scope(
            self._db, family, org_id, project_id=project_id, cube_id=cube_id, active=active
        )

    async def list_family(self, family: str) -> list[Schedule]:
        return await schedules.list_family(self._db, family)

    def scope_batches(
        self,
        scope: Scope,
        *,
        offset: int = 0,
        limit: int | None = None,
        size: int | None = None,
        with_kept: bool = False,
    ) -> AsyncIterator[list[tuple[Schedule, int]]]:
        return schedules.scope_batches(self._db, scope, offset=offset, limit=limit, size=size, with_kept=with_kept)

    def due_index(self) -> AsyncIterator[list[tuple[int, float]]]:
        return schedules.due_index(self._db)

    async def set_active(
        self, schedule_id: int, active: bool, next_fire_at: float | None, *, by: str | None, at: float
    ) -> bool:
        return await schedules.set_active(self._db, schedule_id, active, next_fire_at, by=by, at=at)

    async def delete(self, schedule_id: int) -> bool:
        return await schedules.delete(self._db, schedule_id)

    async def retention_list(self, at: float) -> list[tuple[int, int]]:
        return await schedules.retention_list(self._db, at)

    async def last_success(self) -> dict[str, float]:
        return await schedules.last_success(self._db)


class SqliteRunStore:
    """Runs: reads, and the retention sweep, in SQLite (schedd/store/runs.py)."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, new: NewRun) -> int:
        return await runs.insert(self._db, new)

    async def get_by_uid(self, uid: str) -> Run | None:
        return await runs.get_by_uid(self._db, uid)

    async def get_of_schedule(self, schedule_id: int, run_id: int) -> Run | None:
        return await runs.get_of_schedule(self._db, schedule_id, run_id)

    async def open_for_key(self, overlap_key: str) -> list[Run]:
        return await runs.open_for_key(self._db, overlap_key)

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
        return await runs.list_org(
            self._db, family, org_id, limit=limit, offset=offset, state=state, project_id=project_id, cube_id=cube_id
        )

    async def list_schedule(self, schedule_id: int, *, limit: int, offset: int) -> list[Run]:
        return await runs.list_schedule(self._db, schedule_id, limit=limit, offset=offset)

    async def list_schedule_summaries(self, schedule_id: int, *, limit: int, offset: int) -> list[RunSummary]:
        return await runs.list_schedule_summaries(self._db, schedule_id, limit=limit, offset=offset)

    async def count_schedule(self, schedule_id: int) -> int:
        return await runs.count_schedule(self._db, schedule_id)

    async def recent_durations(
        self, family: str, org_id: str, project_id: str, cube_id: str, n: int = 10,
    ) -> list[float]:
        return await runs.recent_durations(self._db, family, org_id, project_id, cube_id, n)

    async def cube_has_built(
        self, family: str, org_id: str, project_id: str, cube_id: str, *, other_than: int,
    ) -> bool:
        return await runs.cube_has_built(self._db, family, org_id, project_id, cube_id, other_than=other_than)

    async def delete_older(self, schedule_id: int, before: float, batch: int = 500) -> int:
        return await runs.delete_older(self._db, schedule_id, before, batch)

    async def delete_unkept(self, before: float, batch: int = 500) -> int:
        return await runs.delete_unkept(self._db, before, batch)

    async def fires_by_schedule(self) -> dict[int, int]:
        return await runs.fires_by_schedule(self._db)

    async def latest_created(self) -> float | None:
        return await runs.latest_created(self._db)


class SqliteFireStore:
    """The runner's writes, each composed of the store modules' pieces in one transaction."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def set_fence(self, holder: str | None, epoch: int | None) -> None:
        """One process owns the file (schedd/store/lock.py): there is no one to fence out."""

    async def interrupt_open(
        self, at: float, error: str, *, previous: str | None = None
    ) -> list[tuple[int, int | None, str]]:
        def op(conn: WriteConnection) -> list[tuple[int, int | None, str]]:
            closed = runs.op_interrupt_open(conn, at, error)
            for _, schedule_id, uid in closed:
                if schedule_id is not None:
                    schedules.op_record_outcome(
                        conn, schedule_id, ok=False, counted=True, status="interrupted", run_uid=uid, at=at)
            return closed

        return await self._db.write(op)

    async def record_fires(
        self, rows: Sequence[tuple[NewRun, SkipText | None]], fired: Sequence[Fired], *,
        skip_since: float, at: float,
    ) -> tuple[list[int], list[str]]:
        def op(conn: WriteConnection) -> tuple[list[int], list[str]]:
            ids, joined = [], []
            for row, text in rows:
                if text is None:
                    ids.append(runs.op_insert(conn, row))
                    continue
                run_id, was_joined = runs.op_record_skip(conn, row, text, since=skip_since)
                ids.append(run_id)
                if was_joined:
                    joined.append(row.family)
            for each in fired:
                schedules.op_fired(conn, each.schedule_id, each.next_fire_at, each.started, at)
            return ids, joined

        return await self._db.write(op)

    async def start_now(self, row: NewRun, schedule_id: int | None) -> int:
        def op(conn: WriteConnection) -> int:
            run_id = runs.op_insert(conn, row)
            if schedule_id is not None:
                schedules.op_record_start(conn, schedule_id, row.uid, row.created_at, row.state)
            return run_id

        return await self._db.write(op)

    async def record_skip(self, row: NewRun, text: SkipText, *, since: float) -> tuple[int, bool]:
        return await self._db.write(lambda conn: runs.op_record_skip(conn, row, text, since=since))

    async def mark_started(self, run_id: int, at: float) -> bool:
        return await self._db.write(lambda conn: runs.op_start(conn, run_id, at))

    async def record_starts(self, starts: Sequence[tuple[float, int]]) -> None:
        await self._db.write(lambda conn: runs.op_record_starts(conn, starts))

    async def finish(self, run_id: int, finish: Finish | None, outcome: Outcome | None) -> None:
        def op(conn: WriteConnection) -> None:
            if finish is None:
                runs.op_delete(conn, run_id)
            elif not runs.op_finish(conn, run_id, finish):
                return  # closed already: counted when it was closed
            if outcome is not None:
                schedules.op_record_outcome(
                    conn, outcome.schedule_id, ok=outcome.ok, counted=outcome.counted, status=outcome.status,
                    run_uid=outcome.run_uid, at=outcome.at)

        await self._db.write(op)


class SqliteLeaseStore:
    """The firing lease of a store one process owns: the file lock is the lease, held until the process ends."""

    __slots__ = ("_holder",)

    def __init__(self) -> None:
        self._holder: str | None = None

    @property
    def shared(self) -> bool:
        return False

    async def take(self, holder: str, ttl: float) -> int | None:
        self._holder = holder
        return 1

    async def release(self, holder: str, epoch: int) -> None:
        if self._holder == holder:
            self._holder = None

    async def current(self) -> LeaseHolder:
        return LeaseHolder(self._holder, 1 if self._holder else 0, math.inf if self._holder else 0.0)

    async def beat(self, instance: str, ttl: float) -> None:
        return None

    async def instances(self) -> list[tuple[str, float]]:
        return [] if self._holder is None else [(self._holder, math.inf)]


class SqliteWindowStore:
    """Maintenance windows and their events, in SQLite (schedd/store/windows.py)."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, window: Window, event: NewEvent, *, at: float) -> Window:
        return await windows.insert(self._db, window, event, at=at)

    async def save(self, window: Window, events: list[NewEvent], *, at: float) -> Window | None:
        return await windows.save(self._db, window, events, at=at)

    async def add_event(self, window_id: int, event: NewEvent, *, at: float) -> bool:
        return await windows.add_event(self._db, window_id, event, at=at)

    async def delete(self, window_id: int) -> bool:
        return await windows.delete(self._db, window_id)

    async def get(self, window_id: int, *, internal: bool) -> Window | None:
        return await windows.get(self._db, window_id, internal=internal)

    async def list_page(
        self, filters: dict[str, Any], *, limit: int, offset: int, internal: bool, timelines: bool = True
    ) -> tuple[list[Window], int]:
        return await windows.list_page(
            self._db, filters, limit=limit, offset=offset, internal=internal, timelines=timelines
        )

    def ending_after(self, at: float, *, size: int | None = None) -> AsyncIterator[list[Window]]:
        return windows.ending_after(self._db, at, size=size)

    async def open_windows(self) -> list[Window]:
        return await windows.open_windows(self._db)


class SqliteGrantStore:
    """Which window scopes a user may write, in SQLite (schedd/store/grants.py)."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def grant(self, user_id: int, scope_id: int, *, at: float) -> bool:
        return await grants.grant(self._db, user_id, scope_id, at=at)

    async def revoke(self, user_id: int, scope_id: int) -> bool:
        return await grants.revoke(self._db, user_id, scope_id)

    async def scopes_of(self, user_id: int) -> frozenset[int]:
        return await grants.scopes_of(self._db, user_id)


class SqliteReportStore:
    """Reports across families for the operator view, in SQLite (schedd/store/reports.py)."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_runs(
        self, seen: Visibility, *, family: str | None, org_id: str | None, state: str | None, limit: int, offset: int
    ) -> list[Run]:
        return await reports.list_runs(
            self._db, seen, family=family, org_id=org_id, state=state, limit=limit, offset=offset
        )

    async def outcomes_by_hour(self, seen: Visibility, *, since: float) -> dict[int, dict[str, int]]:
        return await reports.outcomes_by_hour(self._db, seen, since=since)

    async def delays_by_hour(self, seen: Visibility, *, since: float) -> list[HourDelay]:
        return await reports.delays_by_hour(self._db, seen, since=since)

    async def list_schedules(
        self, seen: Visibility, *, family: str | None, org_id: str | None, active: bool | None, limit: int, offset: int
    ) -> tuple[list[Schedule], int]:
        return await reports.list_schedules(
            self._db, seen, family=family, org_id=org_id, active=active, limit=limit, offset=offset
        )


class SqliteStore:
    """A store in one SQLite file; `db` is the `Database` for callers not yet on the Protocol."""

    __slots__ = ("db", "accounts", "schedules", "runs", "fires", "lease", "windows", "grants", "reports")

    def __init__(self, db: Database) -> None:
        self.db = db
        self.accounts = SqliteAccountStore(db)
        self.schedules = SqliteScheduleStore(db)
        self.runs = SqliteRunStore(db)
        self.fires = SqliteFireStore(db)
        self.lease = SqliteLeaseStore()
        self.windows = SqliteWindowStore(db)
        self.grants = SqliteGrantStore(db)
        self.reports = SqliteReportStore(db)

    @classmethod
    def at(
        cls, path: str | Path, synchronous: str = "FULL", on_commit: Callable[[int, float], None] | None = None
    ) -> SqliteStore:
        return cls(Database(path, synchronous=synchronous, on_commit=on_commit))

    @property
    def is_open(self) -> bool:
        return self.db.is_open

    @property
    def location(self) -> str:
        return self.db.path

    @property
    def applied_migrations(self) -> list[int]:
        return list(self.db.applied)

    @property
    def local_file(self) -> str | None:
        return self.db.path

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def flush(self) -> None:
        await self.db.flush()

    async def listen(self, on_change: Callable[[str, int], None]) -> None:
        """Only this process writes the file: its own changes are applied where they are made."""

    async def backup(self, target: str | Path, progress: Callable[[int, int], None] | None = None) -> None:
        await self.flush()
        await asyncio.to_thread(backup, self.db.path, target, progress)


def _conforms(db: Database) -> Store:
    """mypy checks here that SqliteStore satisfies the Store Protocol."""
    return SqliteStore(db)
