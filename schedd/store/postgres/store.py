"""The PostgreSQL backend of `schedd.store.protocol.Store`: its groups of operations over one pool."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from schedd.config import DatabaseConfig
from schedd.store.postgres.accounts import PgAccountStore
from schedd.store.postgres.changes import PgChangeListener
from schedd.store.postgres.db import POOL_SIZE, PgDatabase
from schedd.store.postgres.lease import Instance, PgLeaseStore
from schedd.store.postgres.reports import PgReportStore
from schedd.store.postgres.runs import PgFireStore, PgRunStore
from schedd.store.postgres.schedules import PgScheduleStore
from schedd.store.postgres.windows import PgGrantStore, PgWindowStore
from schedd.store.protocol import Store


class PgStore:
    """A store in one PostgreSQL database, reached through a pool of `pool_size` connections."""

    __slots__ = ("db", "me", "accounts", "schedules", "runs", "fires", "lease", "windows", "grants", "reports",
                 "_listener")

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self.me = Instance()
        self.accounts = PgAccountStore(db)
        self.schedules = PgScheduleStore(db)
        self.runs = PgRunStore(db)
        self.fires = PgFireStore(db, self.me)
        self.lease = PgLeaseStore(db, self.me)
        self.windows = PgWindowStore(db)
        self.grants = PgGrantStore(db)
        self.reports = PgReportStore(db)
        self._listener: PgChangeListener | None = None

    @classmethod
    def at(cls, url: str, *, pool_size: int = POOL_SIZE) -> PgStore:
        """The store of the database at `url` (`postgresql://user@host/db`); `open()` connects."""
        return cls(PgDatabase(url, pool_size=pool_size))

    @classmethod
    def from_url(cls, url: str, database: DatabaseConfig) -> PgStore:
        """The store `--db` / `[database] url` names, with the configured pool size."""
        return cls.at(url, pool_size=database.pool_size)

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
        return None

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        self.accounts.close_watches()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self.db.close()

    async def listen(self, on_change: Callable[[str, int], None]) -> None:
        """Hear every schedule and window change any instance commits, until `close()`."""
        if self._listener is not None:
            await self._listener.close()
        self._listener = PgChangeListener(self.db, on_change)
        await self._listener.start()

    async def flush(self) -> None:
        await self.db.flush()

    async def backup(self, target: str | Path, progress: Callable[[int, int], None] | None = None) -> None:
        """A new SQLite file at `target` holding every table, read in one snapshot (`schedd db restore` takes it)."""
        from schedd.store.copy import backup_to_sqlite

        await self.flush()
        await backup_to_sqlite(self.db.url, target, progress)


_: type[Store] = PgStore
"""mypy checks here that PgStore satisfies the Store Protocol."""
