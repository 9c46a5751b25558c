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
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from schedd.errors import StoreError, Unavailable
from schedd.store.db import Migration

T = TypeVar("T")
log = logging.getLogger("schedd.store")

URL_SCHEMES = ("postgresql", "postgres")
POOL_SIZE = 10
"""Connections a store keeps open by default ([database] pool_size)."""
POOL_SIZE_MAX = 200
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the server when a connection is opened."""
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
        self.applied: list[int] = []
        """The migrations `open()` applied (all of them for a new database)."""

    @property
    def is_open(self) -> bool:
        return self._pool is not None and not self._pool.is_closing()

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, timeout=CONNECT_TIMEOUT,
                server_settings={"application_name": "schedd"})
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

    async def chunks(self, sql: str, *args: Any, size: int = 50_000) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The rows of a large read, `size` at a time, through a server-side cursor in one snapshot."""
        try:
            async with self.pool().acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                cursor = await conn.cursor(sql, *args)
                while rows := await cursor.fetch(size):
                    yield [tuple(row) for row in rows]
        except DRIVER_ERRORS as exc:
            raise translate(exc, "read") from exc

    # -- writes ----------------------------------------------------------------------

    async def write(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `await op(conn)` in one transaction; returns once the commit is durable."""
        self._writes += 1
        self._idle.clear()
        try:
            async with self.pool().acquire() as conn, conn.transaction():
                return await op(conn)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "write") from exc
        finally:
            self._writes -= 1
            if self._writes == 0:
                self._idle.set()

    async def execute(self, sql: str, *args: Any) -> int:
        """One statement as a write; returns how many rows it changed."""

        async def op(conn: asyncpg.Connection) -> int:
            return rowcount(await conn.execute(sql, *args))

        return await self.write(op)


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
