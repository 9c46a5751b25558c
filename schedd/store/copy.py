"""`schedd db copy SRC DST`: every table from one store to another, SQLite or PostgreSQL either way.

The source is read in one snapshot (an SQLite read transaction, a PostgreSQL repeatable-read
transaction), table by table in the order their references need, in chunks. The destination
is made (or migrated) to the same schema version first and must hold no rows; its rows are
written in one transaction, so a copy that fails leaves it as empty as it was. Afterwards
the rows of every table are counted on both sides and must agree. An SQLite file on either
side is locked as `schedd serve` locks it (schedd/store/lock.py): no daemon may hold it
while it is copied.

Not copied: `schema_migrations` (each side keeps its own, each at its backend's newest), and
what only PostgreSQL has, for several instances (the firing lease, the instances, which
instance holds each run): a copy holds no open run of a live instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schedd.errors import ScheddError, StoreError
from schedd.store import db as sqlite_db
from schedd.store.lock import DatabaseInUse, DatabaseLock

CHUNK = 5000
"""Rows read and written at a time."""

# Every table of the schema at its current version, in an order that inserts each row after
# the rows it references, with its columns (the same names on both backends).
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("orgs", ("id", "created_at")),
    ("users", ("id", "name", "email", "password_hash", "is_admin", "created_at", "disabled_at")),
    ("user_orgs", ("user_id", "org_id")),
    ("tokens", ("id", "user_id", "token_hash", "kind", "name", "created_at", "expires_at", "revoked_at")),
    ("schedules", (
        "id", "uid", "family", "org_id", "project_id", "cube_id", "name", "description", "cron",
        "cron_normalized", "timezone", "full_build", "spec", "active", "next_fire_at", "misfire_policy",
        "overlap_policy", "timeout", "retries", "history_strategy", "retention_days", "success_count",
        "fail_count", "last_run_uid", "last_run_at", "last_run_status", "created_by", "created_at", "updated_by",
        "updated_at")),
    ("runs", (
        "id", "uid", "family", "schedule_id", "overlap_key", "org_id", "project_id", "cube_id", "trigger", "state",
        "full_build", "cron", "due_at", "fires", "created_at", "started_at", "ended_at", "attempt", "error",
        "exit_code", "timed_out", "skip_reason", "window_id", "request_payload", "response_status",
        "response_body", "complete", "last_due_at")),
    ("windows", (
        "id", "name", "description", "external_reference", "external_link", "status", "scope_id", "service_id",
        "service_status", "creation_date", "scheduled_start_date", "scheduled_end_date", "start_date",
        "end_date")),
    ("window_events", ("id", "window_id", "creation_date", "content", "internal", "type", "author_id")),
    ("scope_grants", ("user_id", "scope_id", "granted_at")),
    ("auth_epoch", ("id", "epoch")),
)
SCHEMA_VERSION = 7
"""The schema version TABLES describes: the newest migration of both backends, which have the
same numbers and meanings (PostgreSQL's 0006 adds what several instances need, PG_ONLY;
SQLite's 0006 is empty)."""
PG_ONLY: dict[str, tuple[str, ...]] = {
    "runs": ("held_by", "held_inc"),
    "fire_lease": ("id", "holder", "incarnation", "epoch", "expires_at"),
    "instances": ("name", "incarnation", "alive_until"),
}
"""Columns and tables only PostgreSQL has; not copied (NULL, or the migrations' own rows)."""
PRESET = frozenset({"auth_epoch"})
"""Tables the migrations fill with one row: replaced by the source's, not counted as content."""
SERIAL = ("users", "tokens", "schedules", "runs", "windows", "window_events")
"""Tables whose id PostgreSQL generates: its sequence moves past the copied ids."""


def _select(table: str, columns: tuple[str, ...]) -> str:
    """Reads a whole table in key order (names from TABLES only)."""
    return f"SELECT {', '.join(columns)} FROM {table} ORDER BY {columns[0]}"  # noqa: S608 - constants only


def _count(table: str) -> str:
    """Counts a table's rows (names from TABLES only)."""
    return f"SELECT count(*) FROM {table}"  # noqa: S608 - constants only


def _insert_sqlite(table: str, columns: tuple[str, ...]) -> str:
    """Inserts one row of a table into SQLite (names from TABLES only)."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608


# Empties the table the migrations filled, before the source's row replaces it.
SQL_CLEAR_PRESET = "DELETE FROM auth_epoch"
# Moves a PostgreSQL identity sequence past the largest id copied into its table.
SQL_SETVAL = (
    "SELECT setval(pg_get_serial_sequence($1, 'id'), coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
)
# The newest migration an SQLite file has applied.
SQL_SQLITE_VERSION = "SELECT max(version) FROM schema_migrations"


@dataclass(frozen=True, slots=True)
class Copied:
    """What a copy moved: rows per table, as counted on both sides."""

    counts: dict[str, int]


def is_url(target: str | Path) -> bool:
    return str(target).split("://", 1)[0] in ("postgresql", "postgres") and "://" in str(target)


def shown(target: str) -> str:
    """How messages name a database: its path, or its URL without the password."""
    if not is_url(target):
        return target
    from schedd.store.postgres.db import shown

    return shown(target)


# -- SQLite ------------------------------------------------------------------------------

class _SqliteSource:
    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if not os.path.isfile(self.path) or os.path.getsize(self.path) == 0:
            raise StoreError(f"no database at {self.path}")
        sqlite_db.check_database_file(self.path)
        uri = Path(self.path).absolute().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            self.conn = conn
            conn.execute("BEGIN")  # one snapshot for every table
            version = conn.execute(SQL_SQLITE_VERSION).fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from exc
        _check_version(self.path, version, _sqlite_latest())

    async def count(self, table: str) -> int:
        return await asyncio.to_thread(lambda: int(self._conn().execute(_count(table)).fetchone()[0]))

    async def rows(self, table: str, columns: tuple[str, ...]) -> AsyncIterator[list[tuple[Any, ...]]]:
        cursor = await asyncio.to_thread(self._conn().execute, _select(table, columns))
        while chunk := await asyncio.to_thread(cursor.fetchmany, CHUNK):
            yield [tuple(row) for row in chunk]

    def _conn(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StoreError("the source is not open")
        return self.conn

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class _SqliteDestination:
    def __init__(self, path: str, *, new: bool = False) -> None:
        self.path = path
        self.new = new
        self.created = False
        self.conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self.new:
            sqlite_db.create_private(self.path, exclusive=True)
            self.created = True
        made = sqlite_db.Database(self.path)
        await made.open()  # creates or migrates the schema
        await made.close()
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in ("synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
            self.conn.execute(f"PRAGMA {pragma}")
        _check_version(self.path, self.conn.execute(SQL_SQLITE_VERSION).fetchone()[0], _sqlite_latest())

    def _conn(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StoreError("the destination is not open")
        return self.conn

    async def count(self, table: str) -> int:
        return int(self._conn().execute(_count(table)).fetchone()[0])

    async def begin(self) -> None:
        self._conn().execute("BEGIN IMMEDIATE")
        self._conn().execute(SQL_CLEAR_PRESET)

    async def write(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        await asyncio.to_thread(self._conn().executemany, _insert_sqlite(table, columns), rows)

    async def commit(self) -> None:
        self._conn().execute("COMMIT")

    async def rollback(self) -> None:
        conn = self._conn()
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    async def single_file(self) -> None:
        """Leave one self-contained file, with no write-ahead log beside it (a backup)."""
        self._conn().execute(sqlite_db.SQL_JOURNAL_DELETE)

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# -- PostgreSQL ----------------------------------------------------------------------------

class _PgSide:
    """A PostgreSQL database as the source (one repeatable-read snapshot) or the destination."""

    def __init__(self, url: str, *, source: bool) -> None:
        self.url = url
        self.source = source
        self.conn: Any = None
        self.tx: Any = None

    async def open(self) -> None:
        try:
            from schedd.store.postgres.db import PgDatabase, connection
        except ImportError as exc:
            raise ScheddError("a postgresql:// database needs asyncpg: pip install 'schedd[postgres]'") from exc

        if not self.source:
            made = PgDatabase(self.url, pool_size=1)
            await made.open()  # creates or migrates the schema
            await made.close()
        self._cm = connection(self.url)
        self.conn = await self._cm.__aenter__()
        if self.source:
            self.tx = self.conn.transaction(isolation="repeatable_read", readonly=True)
            await self.tx.start()
        from schedd.store.postgres.db import migrations

        version = await self._version()
        _check_version(shown(self.url), version, max(m.version for m in migrations()))

    async def _version(self) -> int | None:
        from schedd.store.postgres.db import SQL_HAS_MIGRATIONS, SQL_SCHEMA_VERSION

        if not await self.conn.fetchval(SQL_HAS_MIGRATIONS):
            return None
        value = await self.conn.fetchval(SQL_SCHEMA_VERSION)
        return None if value is None else int(value)

    async def count(self, table: str) -> int:
        return int(await self.conn.fetchval(_count(table)))

    async def rows(self, table: str, columns: tuple[str, ...]) -> AsyncIterator[list[tuple[Any, ...]]]:
        cursor = await self.conn.cursor(_select(table, columns))
        while chunk := await cursor.fetch(CHUNK):
            yield [tuple(row) for row in chunk]

    async def begin(self) -> None:
        self.tx = self.conn.transaction()
        await self.tx.start()
        await self.conn.execute(SQL_CLEAR_PRESET)

    async def write(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        await self.conn.copy_records_to_table(table, records=rows, columns=list(columns))

    async def commit(self) -> None:
        for table in SERIAL:
            await self.conn.fetchval(SQL_SETVAL.format(table=table), table)
        await self.tx.commit()
        self.tx = None

    async def rollback(self) -> None:
        if self.tx is not None:
            await self.tx.rollback()
            self.tx = None

    async def close(self) -> None:
        if self.conn is not None:
            if self.tx is not None:
                with contextlib.suppress(Exception):
                    await self.tx.rollback()
            await self._cm.__aexit__(None, None, None)
            self.conn = None


def _sqlite_latest() -> int:
    return max(m.version for m in sqlite_db.migrations())


def _check_version(name: str, version: int | None, latest: int) -> None:
    if version is None:
        raise StoreError(f"{name} is not a schedd database (it has no schema_migrations)")
    if version != latest:
        raise StoreError(f"{name} has schema version {version}, this schedd's is {latest}"
                         f" (run `schedd db migrate` on it first)")


# -- the copy ------------------------------------------------------------------------------

async def _copy(source: Any, destination: Any, progress: Callable[[int, int], None] | None = None) -> Copied:
    await source.open()
    await destination.open()
    for table, _ in TABLES:
        if table not in PRESET and (held := await destination.count(table)):
            raise ScheddError(f"the destination is not empty ({table} holds {held} rows); "
                              "copy into a new database")
    counts = {table: await source.count(table) for table, _ in TABLES}
    total, done = sum(counts.values()), 0
    await destination.begin()
    try:
        for table, columns in TABLES:
            async for chunk in source.rows(table, columns):
                await destination.write(table, columns, chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        await destination.commit()
    except BaseException:
        await destination.rollback()
        raise
    for table, _ in TABLES:
        copied = await destination.count(table)
        if copied != counts[table]:
            raise StoreError(f"{table}: {counts[table]} rows in the source but {copied} in the destination")
    return Copied(counts)


def _side(target: str, *, source: bool) -> Any:
    if is_url(target):
        return _PgSide(target, source=True) if source else _PgSide(target, source=False)
    return _SqliteSource(target) if source else _SqliteDestination(target)


async def copy(source: str, destination: str, progress: Callable[[int, int], None] | None = None) -> Copied:
    """Copy every table from `source` to `destination` (an SQLite path or a postgresql:// URL each).

    ScheddError when the destination holds rows, an SQLite side is held by a daemon, the
    two name one database, or the counts disagree afterwards.
    """
    if _same(source, destination):
        raise ScheddError("the source and the destination are the same database")
    with contextlib.ExitStack() as locks:
        for n, target in enumerate((source, destination)):
            if not is_url(target):
                if n == 0 and not os.path.isfile(target):
                    raise StoreError(f"no database at {target}")
                sqlite_db.check_database_file(target)  # a mistyped path never gets a lock file beside it
                try:
                    locks.enter_context(DatabaseLock.acquire(target))
                except DatabaseInUse as exc:
                    raise ScheddError(f"{exc}; stop it before copying") from exc
        src, dst = _side(source, source=True), _side(destination, source=False)
        try:
            return await _copy(src, dst, progress)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"copy failed: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("asyncpg"):
                raise StoreError(f"copy failed: {exc}") from exc
            raise
        finally:
            await src.close()
            await dst.close()


def _same(a: str, b: str) -> bool:
    if is_url(a) or is_url(b):
        return a == b
    return os.path.realpath(a) == os.path.realpath(b)


async def backup_to_sqlite(url: str, target: str | Path, progress: Callable[[int, int], None] | None = None) -> None:
    """Every table of a live PostgreSQL store into a new SQLite file (mode 0600), read in one snapshot.

    The file must not exist; it is removed again if the copy fails.
    """
    src, dst = _PgSide(url, source=True), _SqliteDestination(str(target), new=True)
    try:
        await _copy(src, dst, progress)
        await dst.single_file()
    except BaseException:
        await dst.close()
        if dst.created:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{target}{suffix}")
        raise
    finally:
        await src.close()
        await dst.close()
