"""Connections, the group-committing writer, migrations and backup.

One writer connection: writes queued during one loop turn are committed in one
transaction, then their awaiters are released, so a caller that awaited `write()` knows
its change is durable. Reads go to a separate connection and never wait behind the
writer (WAL).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from schedd.errors import StoreError, Unavailable

T = TypeVar("T")
WriteOp = Callable[[aiosqlite.Connection], Awaitable[T]]
log = logging.getLogger("schedd.store")

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")

# Creates the table that records which migrations have been applied.
SQL_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  REAL NOT NULL
)"""
# Lists applied migration versions.
SQL_APPLIED = "SELECT version FROM schema_migrations"


class Migration:
    __slots__ = ("version", "name", "sql")

    def __init__(self, version: int, name: str, sql: str) -> None:
        self.version, self.name, self.sql = version, name, sql


def migrations() -> list[Migration]:
    """The packaged migrations, `NNNN_name.sql`, in order."""
    found = []
    for entry in resources.files("schedd.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def _is_full(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "full" in str(exc) or "disk I/O" in str(exc) or "readonly" in str(exc)
    )


class Database:
    """The SQLite file: one group-committing writer, one reader."""

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "NORMAL",
        on_commit: Callable[[int, float], None] | None = None,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.path = str(path)
        self.synchronous = synchronous.upper()
        self._on_commit = on_commit
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: list[tuple[WriteOp[Any], asyncio.Future[Any]]] = []
        self._kick = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        self._writer = await self._connect()
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self.migrate()
        self._reader = await self._connect()
        await self._reader.execute("PRAGMA query_only=ON")
        self._task = asyncio.create_task(self._write_loop(), name="schedd-writer")

    async def _connect(self) -> aiosqlite.Connection:
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA synchronous={self.synchronous}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
        return conn

    @property
    def is_open(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        if self._task is not None:
            await self.flush()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def migrate(self) -> list[int]:
        """Apply the migrations this file lacks; returns the versions applied."""
        conn = self._writer
        if conn is None:
            raise StoreError("database is not open")
        await conn.execute(SQL_CREATE_MIGRATIONS)
        applied = {row[0] for row in await conn.execute_fetchall(SQL_APPLIED)}
        done = []
        for m in migrations():
            if m.version in applied:
                continue
            script = (
                f"BEGIN IMMEDIATE;\n{m.sql}\n"
                f"INSERT INTO schema_migrations (version, name, applied_at) "
                f"VALUES ({m.version:d}, '{m.name.replace(chr(39), '')}', {time.time():f});\nCOMMIT;"
            )
            try:
                await conn.executescript(script)
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise StoreError(f"migration {m.version:04d}_{m.name} failed: {exc}") from exc
            log.info("action=migrate version=%d name=%s", m.version, m.name)
            done.append(m.version)
        return done

    # -- reads -----------------------------------------------------------------------

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StoreError("database is not open")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            if _is_full(exc):
                raise Unavailable(f"database cannot be read: {exc}") from exc
            raise StoreError(f"read failed: {exc}") from exc

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    # -- writes ----------------------------------------------------------------------

    async def write(self, op: WriteOp[T]) -> T:
        """Run `op(conn)` inside the next group commit; returns once it is durable."""
        if self._task is None:
            raise StoreError("database is not open")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, fut))
        self._idle.clear()
        self._kick.set()
        return await fut

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """One statement as a write; returns lastrowid (inserts) or rowcount."""

        async def op(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(sql, params)
            return inserted_id(cur) if sql.lstrip()[:6].upper() == "INSERT" else cur.rowcount

        return await self.write(op)

    async def flush(self) -> None:
        """Wait until every write queued so far is committed."""
        await self._idle.wait()

    async def _write_loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                await self._commit(batch)
            self._idle.set()

    async def _commit(self, batch: list[tuple[WriteOp[Any], asyncio.Future[Any]]]) -> None:
        started = time.perf_counter()
        try:
            results = await self._transaction([op for op, _ in batch])
        except Exception as exc:
            if len(batch) > 1:
                # One op failed: run each alone so that only the failing one fails.
                for item in batch:
                    await self._commit([item])
            elif not batch[0][1].done():
                if _is_full(exc):
                    log.error("action=write_failed error=%r", str(exc))
                batch[0][1].set_exception(self._translate(exc))
            return
        if self._on_commit is not None:
            self._on_commit(len(batch), time.perf_counter() - started)
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def _transaction(self, ops: Iterable[WriteOp[Any]]) -> list[Any]:
        conn = self._writer
        if conn is None:
            raise StoreError("database is not open")
        await conn.execute("BEGIN IMMEDIATE")
        try:
            results = [await op(conn) for op in ops]
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    await conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("action=rollback_failed")
            raise
        return results

    @staticmethod
    def _translate(exc: BaseException) -> BaseException:
        translated: BaseException
        if _is_full(exc):
            translated = Unavailable(f"database is not writable: {exc}")
        elif isinstance(exc, sqlite3.Error):
            translated = StoreError(f"write failed: {exc}")
        else:
            return exc
        translated.__cause__ = exc
        return translated


def inserted_id(cur: aiosqlite.Cursor) -> int:
    """The rowid an INSERT just made."""
    if cur.lastrowid is None:
        raise StoreError("an insert gave no row id")
    return cur.lastrowid


async def written_row(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> sqlite3.Row:
    """A row the current write transaction has just made or changed, read back."""
    row = await (await conn.execute(sql, params)).fetchone()
    if row is None:
        raise StoreError("a row written in this transaction is not there")
    return row


def backup(source: str | Path, target: str | Path, progress: Callable[[int, int], None] | None = None) -> None:
    """Copy a live database with SQLite's online backup, calling `progress(done, total)` pages."""
    if Path(target).exists():
        raise StoreError(f"{target} exists; refusing to overwrite it")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(str(target))
    try:
        def step(status: int, remaining: int, total: int) -> None:
            if progress is not None:
                progress(total - remaining, total)

        src.backup(dst, pages=4096, progress=step)
    except sqlite3.Error as exc:
        raise StoreError(f"backup failed: {exc}") from exc
    finally:
        dst.close()
        src.close()
