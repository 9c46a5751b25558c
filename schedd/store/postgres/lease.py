"""The firing lease in PostgreSQL: who fires, fenced by an epoch that only grows.

One row (`fire_lease`) says which instance holds the lease, at which epoch, until when by
the server's clock. `take` renews it for its holder (the same name and the same
incarnation: a process started again under the same name is another holder) or gives it
to another instance once it is free or lapsed, raising the epoch. The fire writes
(`PgFireStore.record_fires`, `mark_started`) read the row FOR SHARE in their own
transaction: a takeover, which updates the row, waits for a fire write under way, and
every fire write after it finds another epoch and raises LeaseLost. A fire write that does
not end (its process stopped mid-transaction: between pipelined messages no idle timeout
of the server applies) would keep the row locked for as long as its process is stopped;
once the lease has lapsed by the server's clock, the next holder ends such a session
(`SQL_END_STALLED`) and takes over within a beat. Instances beat in
`instances`; the runs an instance records are held by its name and incarnation, so the
runs of an instance that stopped beating (or started again) can be found and closed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

import asyncpg

from schedd.store.postgres.db import CONNECT_TIMEOUT, DRIVER_ERRORS, SESSION_SETTINGS, PgDatabase, translate
from schedd.store.protocol import LeaseHolder, LeaseLost

log = logging.getLogger("schedd.coordination")

STALL_GRACE = 0.2
"""Seconds a take waits on the lease row before it looks for a lapsed holder's session to end."""

# Takes the lease for $1 (incarnation $2) for $3 seconds when it is free, lapsed or already
# theirs; the epoch rises with every change of holder. The epoch held, or no row.
SQL_TAKE = """
UPDATE fire_lease
SET epoch = CASE WHEN holder = $1 AND incarnation = $2 THEN epoch ELSE epoch + 1 END,
    holder = $1, incarnation = $2, expires_at = extract(epoch FROM clock_timestamp()) + $3
WHERE id = 1
  AND (holder IS NULL OR (holder = $1 AND incarnation = $2)
       OR expires_at <= extract(epoch FROM clock_timestamp()))
RETURNING epoch"""
# Gives the lease up at once, if $1 still holds it at epoch $2.
SQL_RELEASE = """
UPDATE fire_lease SET holder = NULL, incarnation = NULL, expires_at = NULL
WHERE id = 1 AND holder = $1 AND epoch = $2"""
# Who holds the lease, at which epoch, and the seconds left of it.
SQL_CURRENT = "SELECT holder, epoch, expires_at - extract(epoch FROM clock_timestamp()) FROM fire_lease WHERE id = 1"
# This instance (incarnation $2) is alive for $3 seconds more.
SQL_BEAT = """
INSERT INTO instances (name, incarnation, alive_until)
VALUES ($1, $2, extract(epoch FROM clock_timestamp()) + $3)
ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation, alive_until = excluded.alive_until"""
# The instances alive now, with the seconds left of each one's beat.
SQL_INSTANCES = """
SELECT name, alive_until - extract(epoch FROM clock_timestamp()) FROM instances
WHERE alive_until > extract(epoch FROM clock_timestamp()) ORDER BY name"""
# Ends the sessions that keep the lease row locked from the take of session $1 by $2
# (incarnation $3), once the lease has lapsed by the server's clock and is another's: fire
# writes of a holder that stopped mid-transaction. A holder's own renewal ends nothing, and a
# session that is itself waiting for a lock (another instance's take) is left alone. How many ended.
SQL_END_STALLED = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid)) FROM pg_stat_activity a
WHERE a.pid = ANY(pg_blocking_pids($1)) AND a.wait_event_type IS DISTINCT FROM 'Lock'
  AND EXISTS (SELECT 1 FROM fire_lease
              WHERE id = 1 AND holder IS NOT NULL AND NOT (holder = $2 AND incarnation = $3)
                AND expires_at <= extract(epoch FROM clock_timestamp()))"""
# Whether $1 still holds the lease at epoch $2; the row stays locked for share until the
# transaction ends, so no takeover commits in between.
SQL_FENCE = "SELECT 1 FROM fire_lease WHERE id = 1 AND holder = $1 AND epoch = $2 FOR SHARE"


@dataclass(slots=True)
class Instance:
    """This store's instance: its name (given to `beat`), this process's incarnation, and the fence
    the fire writes carry (given to `set_fence`)."""

    name: str | None = None
    incarnation: str = field(default_factory=lambda: uuid.uuid4().hex)
    fence: tuple[str, int] | None = None

    def held(self) -> tuple[str | None, str | None]:
        """What the runs this instance records say holds them."""
        return (self.name, self.incarnation) if self.name is not None else (None, None)

    async def holds(self, conn: asyncpg.Connection) -> bool:
        """Whether the fence is still the lease (or there is none), checked and held for the transaction."""
        return self.fence is None or await conn.fetchrow(SQL_FENCE, *self.fence) is not None

    async def check(self, conn: asyncpg.Connection) -> None:
        """LeaseLost unless the fence is still the lease (checked and held for the transaction)."""
        if not await self.holds(conn):
            assert self.fence is not None  # noqa: S101 - no fence always holds
            raise LeaseLost(f"{self.fence[0]} no longer holds the firing lease at epoch {self.fence[1]}")


class PgLeaseStore:
    """The firing lease, shared by every instance on the database."""

    __slots__ = ("_db", "_me")

    def __init__(self, db: PgDatabase, me: Instance) -> None:
        self._db = db
        self._me = me

    @property
    def shared(self) -> bool:
        return True

    async def take(self, holder: str, ttl: float) -> int | None:
        try:
            async with self._db.pool().acquire() as conn:
                attempt = asyncio.ensure_future(conn.fetchval(SQL_TAKE, holder, self._me.incarnation, ttl))
                try:
                    done, _ = await asyncio.wait({attempt}, timeout=STALL_GRACE)
                    if not done:  # the row is locked: by a fire write under way, or by one that will not end
                        ended = await self._end_stalled(conn.get_server_pid(), holder)
                        if ended:
                            log.warning("action=lease_stalled_sessions_ended instance=%s sessions=%d", holder, ended)
                    epoch = await attempt
                finally:
                    if not attempt.done():
                        attempt.cancel()
        except DRIVER_ERRORS as exc:
            raise translate(exc, "write") from exc
        return None if epoch is None else int(epoch)

    async def _end_stalled(self, waiting: int, holder: str) -> int:
        """End the lapsed holder's sessions that block session `waiting`, from a connection of
        its own: the pool may have no other to lend (`[database] pool_size` = 1)."""
        side = await asyncpg.connect(self._db.url, timeout=CONNECT_TIMEOUT, server_settings=SESSION_SETTINGS)
        try:
            return int(await side.fetchval(SQL_END_STALLED, waiting, holder, self._me.incarnation))
        finally:
            await side.close()

    async def release(self, holder: str, epoch: int) -> None:
        await self._db.execute(SQL_RELEASE, holder, epoch)

    async def current(self) -> LeaseHolder:
        row = await self._db.fetchrow(SQL_CURRENT)
        if row is None or row[0] is None:
            return LeaseHolder(None, int(row[1]) if row else 0, 0.0)
        return LeaseHolder(row[0], int(row[1]), max(0.0, float(row[2])))

    async def beat(self, instance: str, ttl: float) -> None:
        self._me.name = instance
        await self._db.execute(SQL_BEAT, instance, self._me.incarnation, ttl)

    async def instances(self) -> list[tuple[str, float]]:
        return [(row[0], float(row[1])) for row in await self._db.fetch(SQL_INSTANCES)]
