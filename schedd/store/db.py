"""Connections, the group-committing writer, migrations and backup.

One writer connection: writes queued during one loop turn are committed in one
transaction, then their awaiters are released, so a caller that awaited `write()` knows
its change is durable. Reads go to separate connections and never wait behind the
writer (WAL).

The writer connection lives on a thread of its own, and a whole group commit runs there
in one hop: a write op is a plain `def op(conn)` (statements on `conn`, nothing else),
so the thread runs every op of the batch without the event loop. One hop per batch
instead of one per statement is what lets a thousand fires be recorded in milliseconds.

Reads follow the same model: each of `READERS` reader threads owns one read-only
connection, and a read is one hop to the next reader's thread (round robin). Every
connection is touched by its own thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from schedd.errors import StoreError, Unavailable

T = TypeVar("T")
log = logging.getLogger("schedd.store")

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
# After a checkpoint the write-ahead log is cut back to this size: without it the file keeps
# the largest size a burst of writes (or a long read holding a checkpoint back) ever gave it.
WAL_SIZE_LIMIT = 4 * 1024 * 1024
SQLITE_HEADER = b"SQLite format 3\x00"
READERS = 2
"""Reader threads, each with its own connection: SQLite runs a query without the GIL, so two
readers serve two reads at once on the machine's cores."""
FILE_MODE = 0o600
"""The database, its -wal and -shm (SQLite gives them the database's mode) and backups."""

# Creates the table that records which migrations have been applied.
SQL_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  REAL NOT NULL
)"""
# Turns foreign key enforcement off for the migrations (a no-op inside a transaction).
SQL_FOREIGN_KEYS_OFF = "PRAGMA foreign_keys=OFF"
# Turns it back on once the migrations are done.
SQL_FOREIGN_KEYS_ON = "PRAGMA foreign_keys=ON"
# Lists rows whose foreign key refers to no row.
SQL_FOREIGN_KEY_CHECK = "PRAGMA foreign_key_check"
# Lists applied migration versions.
SQL_APPLIED = "SELECT version FROM schema_migrations"
# The newest migration a database has applied (its schema version).
SQL_SCHEMA_VERSION = "SELECT max(version) FROM schema_migrations"
# Checks every page, index and constraint of a database file.
SQL_INTEGRITY = "PRAGMA integrity_check"
# Makes a copy a single file with a rollback journal instead of a write-ahead log.
SQL_JOURNAL_DELETE = "PRAGMA journal_mode=DELETE"
# Moves everything in the write-ahead log into the database file and empties the log.
SQL_CHECKPOINT = "PRAGMA wal_checkpoint(TRUNCATE)"


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


WriteCursor = sqlite3.Cursor
"""What `WriteConnection.execute` returns: the cursor of the statement, already run."""


class WriteConnection:
    """The connection a write op gets, inside the open transaction of its group commit.

    Only statements: a write op cannot commit, roll back or close the transaction it shares
    with the rest of its batch.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> WriteCursor:
        return self._conn.execute(sql, parameters)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> WriteCursor:
        return self._conn.executemany(sql, rows)


WriteOp = Callable[[WriteConnection], T]
"""A write: a plain function of the connection, run on the writer's thread."""


def _run_op(op: WriteOp[T], conn: WriteConnection) -> T:
    """Run one write op; a coroutine function is refused (it would never be awaited)."""
    result = op(conn)
    if inspect.iscoroutine(result):
        result.close()
        raise TypeError("a write op is a plain function of its connection, not an async one")
    return result


class _Reader:
    """One read-only connection and the one thread that uses it."""

    __slots__ = ("thread", "conn")

    def __init__(self, name: str) -> None:
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.conn: sqlite3.Connection | None = None

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, work, *args)

    def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[sqlite3.Row]:
        if self.conn is None:
            raise StoreError("database is not open")
        return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _is_full(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "full" in str(exc) or "disk I/O" in str(exc) or "readonly" in str(exc)
    )


class Database:
    """The SQLite file: one group-committing writer, one reader."""

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        on_commit: Callable[[int, float], None] | None = None,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.path = str(path)
        self.synchronous = synchronous.upper()
        self._on_commit = on_commit
        self._writer: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._readers: list[_Reader] = []
        self._next_reader = 0
        self._pending: list[tuple[WriteOp[Any], asyncio.Future[Any]]] = []
        self._kick = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.applied: list[int] = []
        """The migrations `open()` applied (all of them for a new file)."""

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="schedd-writer")
        try:
            await self._on_writer(self._connect_writer)
            self.applied = await self.migrate()
            for n in range(READERS):
                reader = _Reader(f"schedd-reader-{n}")
                self._readers.append(reader)
                reader.conn = await reader.run(self._connect)
        except BaseException:
            await self.close()
            raise
        self._task = asyncio.create_task(self._write_loop(), name="schedd-writer")

    async def _on_writer(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(*args)` on the writer's thread, the only thread that touches its connection."""
        if self._thread is None:
            raise StoreError("database is not open")
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    def _connect_writer(self) -> None:
        check_database_file(self.path)
        create_private(self.path)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            for pragma in (f"synchronous={self.synchronous}", "foreign_keys=ON", "busy_timeout=5000",
                           "journal_mode=WAL", f"journal_size_limit={WAL_SIZE_LIMIT}"):
                conn.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        self._writer = conn

    def _connect(self) -> sqlite3.Connection:
        """A read-only connection, made on the reader thread that will use it."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            for pragma in (f"synchronous={self.synchronous}", "foreign_keys=ON", "busy_timeout=5000",
                           "query_only=ON"):
                conn.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
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
        for reader in self._readers:
            await reader.run(reader.close)
            reader.thread.shutdown(wait=True)
        self._readers = []
        if self._writer is not None:
            await self._on_writer(self._writer.close)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        self._writer, self._thread = None, None

    async def migrate(self) -> list[int]:
        """Apply the migrations this file lacks; returns the versions applied."""
        return await self._on_writer(self._migrate)

    def _migrate(self) -> list[int]:
        conn = self._writer
        if conn is None:
            raise StoreError("database is not open")
        try:
            conn.execute(SQL_CREATE_MIGRATIONS)
            applied = {row[0] for row in conn.execute(SQL_APPLIED)}
        except sqlite3.Error as exc:
            raise StoreError(f"cannot migrate database {self.path}: {exc}") from exc
        done: list[int] = []
        pending = [m for m in migrations() if m.version not in applied]
        if not pending:
            return done
        # A migration may rebuild a table others refer to (SQLite's way of changing a
        # constraint): foreign keys are off while migrations run, and checked before each commits.
        log.info("action=migrate_start path=%s versions=%s", self.path, ",".join(str(m.version) for m in pending))
        conn.execute(SQL_FOREIGN_KEYS_OFF)
        try:
            for m in pending:
                started = time.monotonic()
                self._apply(conn, m)
                log.info("action=migrate version=%d name=%s ms=%.0f", m.version, m.name,
                         (time.monotonic() - started) * 1000)
                done.append(m.version)
        finally:
            conn.execute(SQL_FOREIGN_KEYS_ON)
        return done

    @staticmethod
    def _apply(conn: sqlite3.Connection, m: Migration) -> None:
        """One migration in one transaction, kept only if every foreign key still holds."""
        script = (
            f"BEGIN IMMEDIATE;\n{m.sql}\n"
            f"INSERT INTO schema_migrations (version, name, applied_at) "
            f"VALUES ({m.version:d}, '{m.name.replace(chr(39), '')}', {time.time():f});"
        )
        try:
            conn.executescript(script)
            broken = conn.execute(SQL_FOREIGN_KEY_CHECK).fetchall()
            if broken:
                raise sqlite3.IntegrityError(
                    f"{len(broken)} rows would refer to nothing (first: {broken[0][0]} row {broken[0][1]})")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"migration {m.version:04d}_{m.name} failed: {exc}") from exc

    # -- reads -----------------------------------------------------------------------

    def _reader(self) -> _Reader:
        """The reader the next read goes to, in turn."""
        if not self._readers:
            raise StoreError("database is not open")
        self._next_reader = (self._next_reader + 1) % len(self._readers)
        return self._readers[self._next_reader]

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        reader = self._reader()
        try:
            return await reader.run(reader.fetchall, sql, params)
        except sqlite3.Error as exc:
            if _is_full(exc):
                raise Unavailable(f"database cannot be read: {exc}") from exc
            raise StoreError(f"read failed: {exc}") from exc

    async def chunks(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = (), size: int = 50_000
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The rows of a large read, `size` at a time, as plain tuples.

        For reads of the whole table (the heap at start-up): the caller keeps what it needs
        of each chunk and drops the rest before the next, so a million rows never sit in
        memory twice.
        """
        reader = self._reader()
        conn = reader.conn
        if conn is None:
            raise StoreError("database is not open")

        def first() -> sqlite3.Cursor:
            return conn.execute(sql, params)

        def more(cursor: sqlite3.Cursor) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in cursor.fetchmany(size)]

        try:
            cursor = await reader.run(first)
            try:
                while rows := await reader.run(more, cursor):
                    yield rows
            finally:
                await reader.run(cursor.close)
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

        def op(conn: WriteConnection) -> int:
            cur = conn.execute(sql, params)
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

    async def _transaction(self, ops: list[WriteOp[Any]]) -> list[Any]:
        return await self._on_writer(self._run_transaction, ops)

    def _run_transaction(self, ops: list[WriteOp[Any]]) -> list[Any]:
        """One group commit, on the writer's thread: every op, then COMMIT (or ROLLBACK)."""
        conn = self._writer
        if conn is None:
            raise StoreError("database is not open")
        shim = WriteConnection(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [_run_op(op, shim) for op in ops]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
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


def inserted_id(cur: WriteCursor) -> int:
    """The rowid an INSERT just made."""
    if cur.lastrowid is None:
        raise StoreError("an insert gave no row id")
    return cur.lastrowid


def written_row(conn: WriteConnection, sql: str, params: Sequence[Any]) -> sqlite3.Row:
    """A row the current write transaction has just made or changed, read back."""
    row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
    if row is None:
        raise StoreError("a row written in this transaction is not there")
    return row


def check_database_file(path: str | Path) -> None:
    """StoreError unless `path` is missing, empty or starts as an SQLite database does."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read database {path}: {exc.strerror}") from exc
    if head and head != SQLITE_HEADER:
        raise StoreError(f"{path} is not an SQLite database")


def create_private(path: str | Path, *, exclusive: bool = False) -> None:
    """Create `path` empty with mode 0600 unless it exists (with `exclusive`: StoreError if it does).

    SQLite creates the -wal and -shm files with the mode of the database, so the three
    stay readable by their owner only. An existing file keeps the mode it has.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError as exc:
        raise StoreError(f"{path} exists; refusing to overwrite it") from exc
    except OSError as exc:
        what = "create" if exclusive else "open database"
        raise StoreError(f"cannot {what} {path}: {exc.strerror}") from exc
    os.close(fd)


def backup(source: str | Path, target: str | Path, progress: Callable[[int, int], None] | None = None) -> None:
    """Copy a live database with SQLite's online backup, calling `progress(done, total)` pages.

    The copy is created mode 0600, and removed again if the backup fails.
    """
    check_database_file(source)
    create_private(target, exclusive=True)
    try:
        _copy(_read_only(source), str(target), progress)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise


def _read_only(path: str | Path) -> str:
    """The URI that opens `path` read-only (any character in the name is quoted)."""
    return Path(path).absolute().as_uri() + "?mode=ro"


def _backup_uri(path: str | Path) -> str:
    """The URI that reads a backup without leaving -wal or -shm files beside it.

    `immutable`: a backup is not written while it is read; a backup with a write-ahead
    log beside it is read through the log instead.
    """
    uri = _read_only(path)
    return uri if os.path.exists(f"{path}-wal") else uri + "&immutable=1"


def _copy(source_uri: str, target: str, progress: Callable[[int, int], None] | None = None) -> None:
    def step(status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(total - remaining, total)

    try:
        src = sqlite3.connect(source_uri, uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {unquote(urlsplit(source_uri).path)}: {exc}") from exc
    try:
        dst = sqlite3.connect(target)
    except sqlite3.Error as exc:
        src.close()
        raise StoreError(f"cannot open {target}: {exc}") from exc
    try:
        src.backup(dst, pages=4096, progress=step)
        # One self-contained file: the copy has the source's WAL flag, and no log of its own.
        dst.execute(SQL_JOURNAL_DELETE)
    except sqlite3.Error as exc:
        raise StoreError(f"backup failed: {exc}") from exc
    finally:
        dst.close()
        src.close()


def check_backup(path: str | Path) -> int:
    """The schema version of a backup fit to restore; StoreError saying what is wrong with it.

    Fit means: an SQLite file that passes `PRAGMA integrity_check`, made by schedd (it has
    applied migrations), none newer than this schedd knows.
    """
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise StoreError(f"no backup at {path}")
    check_database_file(path)
    try:
        conn = sqlite3.connect(_backup_uri(path), uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        problems = [row[0] for row in conn.execute(SQL_INTEGRITY).fetchall()]
        if problems != ["ok"]:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise StoreError(f"{path} fails its integrity check: {problems[0]}{more}")
        try:
            version = conn.execute(SQL_SCHEMA_VERSION).fetchone()[0]
        except sqlite3.OperationalError:
            version = None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} fails its integrity check: {exc}") from exc
    finally:
        conn.close()
    if version is None:
        raise StoreError(f"{path} is not a schedd database (it has no schema_migrations)")
    known = max(m.version for m in migrations())
    if version > known:
        raise StoreError(f"{path} has schema version {version}, newer than this schedd knows ({known}); "
                         "restore it with the schedd that made it")
    return int(version)


def restore(backup_path: str | Path, db_path: str | Path, *, stamp: str) -> str | None:
    """Replace the database with a copy of a checked backup; the old file is kept aside.

    Call with the database lock held. The copy is made beside the database first (mode
    0600, synced), then the old database, emptied of its write-ahead log when it can be
    opened, is renamed to `<db>.replaced-<stamp>` together with any -wal and -shm left, and
    the copy takes its place. Returns the name the old database was kept under, if any.
    """
    check_backup(backup_path)
    target = os.path.realpath(db_path)
    staged = target + ".restoring"
    for leftover in (staged, staged + "-journal"):  # from a restore that was killed
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
    create_private(staged, exclusive=True)
    try:
        _copy(_backup_uri(backup_path), staged)
        _fsync(staged)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(staged)
        raise
    aside = None
    if os.path.exists(target):
        _checkpoint(target)
        aside = _aside_name(target, stamp)
        for suffix in ("-wal", "-shm", ""):  # the log first: a database never meets a log not its own
            if os.path.exists(target + suffix):
                os.rename(target + suffix, aside + suffix)
    os.rename(staged, target)
    _fsync(os.path.dirname(target))
    return aside


def _checkpoint(path: str) -> None:
    """Fold a database's write-ahead log into it, if the file can be opened at all."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        conn.execute(SQL_CHECKPOINT)
    except sqlite3.Error as exc:
        log.warning("action=restore_checkpoint_failed db=%s error=%r", path, str(exc))
    finally:
        conn.close()


def _aside_name(target: str, stamp: str) -> str:
    name, n = f"{target}.replaced-{stamp}", 1
    while any(os.path.exists(name + suffix) for suffix in ("", "-wal", "-shm")):
        n += 1
        name = f"{target}.replaced-{stamp}-{n}"
    return name


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
