"""The PostgreSQL connection pool, its transactions and the migrations.

Every operation is one transaction on one pooled connection: PostgreSQL commits
concurrent transactions side by side and syncs their WAL records together (its own
group commit), so `pool_size` writes are in flight at once. A write returns once its
commit is durable (`synchronous_commit` stays at its default, on).

Errors: what the server refuses becomes `StoreError` (the operations turn the refusals
they expect, such as a taken name, into `Conflict` first); a server that cannot be
reached, or a connection lost, becomes `Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from schedd.errors import StoreError, Unavailable
from schedd.store.db import Migration

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")
Batch = Callable[[asyncpg.Connection, list[A]], Awaitable[Sequence[R]]]
"""Writes several items inside one transaction; one answer per item, in order."""
log = logging.getLogger("schedd.store")

URL_SCHEMES = ("postgresql", "postgres")
POOL_SIZE = 10
"""Connections a store keeps open by default ([database] pool_size)."""
POOL_SIZE_MAX = 200
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the server when a connection is opened."""
IDLE_IN_TRANSACTION_MS = 1000
"""The server ends a session of schedd's that sits in an open transaction this long. A process
stopped (SIGSTOP, a frozen VM) inside a fire write would otherwise hold its share lock on the
lease row for as long as it is stopped, and no other instance could take the lease over."""
SESSION_SETTINGS = {
    "application_name": "schedd",
    "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_MS),
}
MIGRATION_LOCK = 7_106_520_050_211_337_001
"""The advisory lock key that serializes migrations between instances starting at once."""

# Serializes the migrations of every instance on this database until the transaction ends.
SQL_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock($1)"
# Creates the table that records which migrations have been applied.
SQL_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  double precision NOT NULL
)"""
# Lists applied migration versions.
SQL_APPLIED = "SELECT version FROM schema_migrations"
# Records one applied migration.
SQL_RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)"
# Whether the database has the table of applied migrations (made by schedd at all).
SQL_HAS_MIGRATIONS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
# The newest migration a database has applied (its schema version).
SQL_SCHEMA_VERSION = "SELECT max(version) FROM schema_migrations"


def is_url(target: str) -> bool:
    """Whether a --db value names a PostgreSQL database (`postgresql://...`) rather than an SQLite file."""
    return urlsplit(str(target)).scheme in URL_SCHEMES


def shown(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def migrations() -> list[Migration]:
    """The packaged PostgreSQL migrations, `NNNN_name.sql`, in order."""
    found = []
    for entry in resources.files("schedd.store.postgres").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def translate(exc: BaseException, what: str) -> BaseException:
    """The schedd error for a driver error: Unavailable when the server is out of reach."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError,
                        asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
                        asyncpg.ConnectionFailureError)):
        return Unavailable(f"database is unavailable: {exc}")
    return StoreError(f"{what} failed: {exc}")


DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


class PgDatabase:
    """A pool of connections to one PostgreSQL database, opened (and migrated) by `open()`."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        if not is_url(url):
            raise StoreError(f"{url!r} is not a postgresql:// URL")
        if not 1 <= pool_size <= POOL_SIZE_MAX:
            raise ValueError(f"pool_size must be between 1 and {POOL_SIZE_MAX}")
        self.url = url
        self.path = shown(url)
        """How messages name the database (its URL without the password)."""
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._writes = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._queue: list[tuple[Batch[Any, Any], Any, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.applied: list[int] = []
        """The migrations `open()` applied (all of them for a new database)."""

    @property
    def is_open(self) -> bool:
        return self._pool is not None and not self._pool.is_closing()

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, timeout=CONNECT_TIMEOUT, reset=_reset,
                server_settings=SESSION_SETTINGS)
        except DRIVER_ERRORS as exc:
            raise Unavailable(f"cannot connect to {self.path}: {exc}") from exc
        except ValueError as exc:  # a malformed URL
            raise StoreError(f"cannot connect to {self.path}: {exc}") from exc
        try:
            self.applied = await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self.flush()
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=CONNECT_TIMEOUT)
            except (asyncio.TimeoutError, *DRIVER_ERRORS):
                pool.terminate()

    async def flush(self) -> None:
        """Wait until every write under way has committed."""
        await self._idle.wait()

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("database is not open")
        return self._pool

    # -- migrations ------------------------------------------------------------------

    async def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, in one transaction under an advisory lock."""
        async with self.pool().acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(SQL_MIGRATION_LOCK, MIGRATION_LOCK)
                    await conn.execute(SQL_CREATE_MIGRATIONS)
                    applied = {row[0] for row in await conn.fetch(SQL_APPLIED)}
                    done = []
                    for m in migrations():
                        if m.version in applied:
                            continue
                        try:
                            await conn.execute(m.sql)
                        except asyncpg.PostgresError as exc:
                            raise StoreError(f"migration {m.version:04d}_{m.name} failed: {exc}") from exc
                        await conn.execute(SQL_RECORD_MIGRATION, m.version, m.name, time.time())
                        done.append(m.version)
            except DRIVER_ERRORS as exc:
                raise translate(exc, f"migrating {self.path}") from exc
        for version in done:
            log.info("action=migrate version=%d db=%s", version, self.path)
        return done

    async def schema_version(self) -> int | None:
        """The newest migration applied, None for a database schedd has not made."""
        if not await self.fetchval(SQL_HAS_MIGRATIONS):
            return None
        return await self.fetchval(SQL_SCHEMA_VERSION)

    # -- reads -----------------------------------------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self.pool().fetch(sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "read") from exc

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self.pool().fetchrow(sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "read") from exc

    async def fetchval(self, sql: str, *args: Any) -> Any:
        try:
            return await self.pool().fetchval(sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "read") from exc

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a read-only, repeatable-read transaction: several reads, one snapshot."""
        try:
            async with self.pool().acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                yield conn
        except DRIVER_ERRORS as exc:
            raise translate(exc, "read") from exc

    # -- writes ----------------------------------------------------------------------

    def _begin(self) -> None:
        self._writes += 1
        self._idle.clear()

    def _end(self) -> None:
        self._writes -= 1
        if self._writes == 0:
            self._idle.set()

    async def write(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `await op(conn)` in one transaction; returns once the commit is durable."""
        self._begin()
        try:
            async with self.pool().acquire() as conn, conn.transaction():
                return await op(conn)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "write") from exc
        finally:
            self._end()

    async def grouped(self, sql: str, *args: Any) -> None:
        """One statement whose answer is not needed, group-committed (see `batched`): the
        statements of one text in a group go in one pipelined round trip (executemany)."""
        await self.batched(_statements(sql), args)

    async def batched(self, batch: Batch[A, R], item: A) -> R:
        """`item`, written by `batch` together with the items queued meanwhile; its answer.

        Group commit: what is queued while the previous group commits goes in the next
        transaction, each `Batch` called once with all its items, so a thousand runs
        starting at once cost a few round trips and one WAL flush. Returns once the commit
        is durable; an item that fails fails alone (a failed group is retried item by item).
        """
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((batch, item, fut))
        self._begin()
        try:
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_groups(), name="schedd-pg-group-commit")
            return await fut
        finally:
            self._end()

    async def _flush_groups(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            await self._commit_group(group)

    async def _commit_group(self, group: list[tuple[Batch[Any, Any], Any, asyncio.Future[Any]]]) -> None:
        by_batch: dict[Batch[Any, Any], list[Any]] = {}
        for batch, item, _ in group:
            by_batch.setdefault(batch, []).append(item)
        answers: dict[Batch[Any, Any], Iterator[Any]] = {}
        try:
            async with self.pool().acquire() as conn, conn.transaction():
                for batch, items in by_batch.items():
                    answers[batch] = iter(await batch(conn, items))
        except Exception as exc:
            if len(group) > 1:
                for entry in group:
                    await self._commit_group([entry])
            elif not group[0][2].done():
                group[0][2].set_exception(translate(exc, "write") if isinstance(exc, DRIVER_ERRORS) else exc)
            return
        for batch, _, fut in group:
            if not fut.done():
                fut.set_result(next(answers[batch]))

    async def execute(self, sql: str, *args: Any) -> int:
        """One statement as a write (its own transaction, durable on return); how many rows it changed."""
        return rowcount(await self.write_one("execute", sql, *args))

    async def write_one(self, method: str, sql: str, *args: Any) -> Any:
        """One statement as a write, by the pool's `method` (execute, fetch, fetchrow, fetchval).

        A single statement is a transaction of its own: no BEGIN and COMMIT to send.
        """
        self._begin()
        try:
            return await getattr(self.pool(), method)(sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "write") from exc
        finally:
            self._end()


_STATEMENTS: dict[str, Batch[tuple[Any, ...], None]] = {}


def _statements(sql: str) -> Batch[tuple[Any, ...], None]:
    """The batch that runs one statement text for each item's arguments, pipelined (one per text)."""
    found = _STATEMENTS.get(sql)
    if found is None:
        async def run(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> list[None]:
            await conn.executemany(sql, rows)
            return [None] * len(rows)

        found = _STATEMENTS[sql] = run
    return found


async def _reset(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: no open transaction.

    Nothing else: schedd sets no session state, and its advisory locks end with their
    transactions, so the default reset (RESET ALL, UNLISTEN, unlock all: one more round
    trip per operation) is not needed.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def rowcount(status: str) -> int:
    """The row count of a command status such as `UPDATE 3` or `INSERT 0 1`."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdecimal() else 0


@contextlib.asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection outside any pool (copies, tests), closed after."""
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    except DRIVER_ERRORS as exc:
        raise Unavailable(f"cannot connect to {shown(url)}: {exc}") from exc
    except ValueError as exc:
        raise StoreError(f"cannot connect to {shown(url)}: {exc}") from exc
    try:
        yield conn
    finally:
        await conn.close()
