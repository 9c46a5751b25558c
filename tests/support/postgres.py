"""A throwaway PostgreSQL cluster: initdb in a temporary directory, a Unix socket there, removed after.

The tests start it themselves (session-scoped fixture `pg_cluster` in conftest.py) from
Debian's binaries (/usr/lib/postgresql/<version>/bin, or the directory in
$SCHEDD_PG_BIN). initdb refuses to run as root, so as root the cluster belongs to the
`postgres` system user (`runuser -u postgres --`) and its directory is chowned to it. The
server listens on no TCP port, only on the socket in its directory. Each test gets a
database of its own, made with `CREATE DATABASE ... TEMPLATE` from one database migrated
once per session (tens of milliseconds instead of migrating again).

`Cluster.find()` is None when no PostgreSQL server is installed: the fixtures then skip,
saying so (and under SCHEDD_CI=1 a skip fails the run).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from schedd.store.postgres.db import PgDatabase

SUPERUSER = "postgres"
TEMPLATE = "schedd_template"
COPY = "STRATEGY = FILE_COPY"
"""A copy of a template's files (PostgreSQL 15 and newer), six times faster than through the WAL."""
NOT_INSTALLED = ("PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or $SCHEDD_PG_BIN): "
                 "the PostgreSQL store was not tested")


def _bindir() -> Path | None:
    wanted = os.environ.get("SCHEDD_PG_BIN")
    candidates = [wanted] if wanted else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                                 key=lambda p: int(Path(p).parent.name), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


class Cluster:
    """One PostgreSQL server of the tests' own; `url(name)` reaches a database on it."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable
        self.dir = Path(tempfile.mkdtemp(prefix="schedd-pg-"))
        self.data = self.dir / "data"
        self._owner: str | None = None
        self._databases = 0
        self._template = False

    @classmethod
    def find(cls, *, durable: bool = False) -> Cluster | None:
        """A cluster not yet started, or None without a PostgreSQL server on this machine."""
        bindir = _bindir()
        return None if bindir is None else cls(bindir, durable=durable)

    def _run(self, *command: str) -> None:
        argv = [str(self.bindir / command[0]), *command[1:]]
        if self._owner is not None:
            argv = ["runuser", "-u", self._owner, "--", *argv]
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError as exc:
                raise RuntimeError("running as root, and there is no `postgres` user to own the cluster") from exc
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._owner = SUPERUSER
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-instructions", *([] if self.durable else ["--no-sync"]))
        options = [f"-k {self.dir}", "-c listen_addresses=''", "-c max_connections=300",
                   "-c shared_buffers=64MB"]
        if not self.durable:
            # The tests check meanings, not durability across power cuts: no fsync keeps them fast.
            options += ["-c fsync=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-t", "60",
                  "-o", " ".join(options), "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.dir}"

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def new_database(self, *, migrated: bool = True, template: str | None = None) -> str:
        """The URL of a new empty database (migrated: made from the session's migrated template), or a
        copy of the database `template` names (one `new_template` made)."""
        if template is not None:
            self._databases += 1
            name = f"t{os.getpid()}_{self._databases}"
            await self._admin(f"CREATE DATABASE {name} TEMPLATE {template} {COPY}")
            return self.url(name)
        if migrated and not self._template:
            await self._admin(f"CREATE DATABASE {TEMPLATE}")
            made = PgDatabase(self.url(TEMPLATE), pool_size=1)
            await made.open()
            await made.close()
            self._template = True
        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        await self._admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {TEMPLATE} {COPY}" if migrated else ""))
        return self.url(name)

    async def new_template(self, name: str) -> str:
        """A migrated database to fill once and copy for each test (`new_database(template=name)`)."""
        await self.new_database()  # the migrated template exists from here on
        await self._admin(f"DROP DATABASE IF EXISTS {name}")  # left by a set-up that failed
        await self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} {COPY}")
        return self.url(name)

    async def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        await self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# The tables of a database, but the record of its migrations.
SQL_TABLES = """
SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
ORDER BY tablename"""
# Each sequence's last value, to set again after a reset.
SQL_SEQUENCES = "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"


class Snapshot:
    """One database's rows, taken once and put back before each test that reuses the database:
    a reset costs a DELETE and a COPY per table (milliseconds) where a new database costs a
    checkpoint (a tenth of a second and more)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.rows: dict[str, list[tuple]] = {}
        self.columns: dict[str, list[str]] = {}
        self.sequences: list[tuple[str, int | None]] = []

    async def take(self) -> Snapshot:
        conn = await asyncpg.connect(self.url)
        try:
            for (table,) in await conn.fetch(SQL_TABLES):
                records = await conn.fetch(f'SELECT * FROM "{table}"')  # noqa: S608 - a name from pg_tables
                self.rows[table] = [tuple(r) for r in records]
                self.columns[table] = [a.name for a in (await conn.prepare(f'SELECT * FROM "{table}"')).get_attributes()]
            self.sequences = [(row[0], row[1]) for row in await conn.fetch(SQL_SEQUENCES)]
        finally:
            await conn.close()
        return self

    async def restore(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")  # no foreign key checks
                # DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE makes new files.
                await conn.execute(";".join(f'DELETE FROM "{table}"' for table in self.rows))
                for table, rows in self.rows.items():
                    if rows:
                        await conn.copy_records_to_table(table, records=rows, columns=self.columns[table])
                await conn.executemany("SELECT setval($1::regclass, $2, $3)",
                                       [(name, value or 1, value is not None) for name, value in self.sequences])
        finally:
            await conn.close()

