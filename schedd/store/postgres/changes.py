"""Changes committed by any instance, heard by each: LISTEN on the `schedd_changes` channel.

The schedule and window operations send `schedule:<id>` or `window:<id>` with pg_notify in
their own statement, so the notice is delivered when, and only when, the change commits.
A listener holds one connection of its own; when it is lost, the listener connects again
(changes committed meanwhile are not heard: the firing instance arms every schedule again
when it takes the lease).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from schedd.store.postgres.db import CONNECT_TIMEOUT, DRIVER_ERRORS, PgDatabase, translate

CHANNEL = "schedd_changes"
KINDS = ("schedule", "window")
RECONNECT = 1.0
"""Seconds between two attempts to connect again."""
log = logging.getLogger("schedd.store")


class PgChangeListener:
    """Calls `on_change(kind, id)` for each change notice, from `start()` until `close()`."""

    def __init__(self, db: PgDatabase, on_change: Callable[[str, int], None]) -> None:
        self._db = db
        self._on_change = on_change
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listening when this returns; a lost connection is made again beside the loop."""
        await self._connect()
        self._task = asyncio.create_task(self._keep(), name="schedd-pg-changes")

    async def _connect(self) -> None:
        try:
            conn = await asyncpg.connect(self._db.url, timeout=CONNECT_TIMEOUT)
            await conn.add_listener(CHANNEL, self._notice)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "listening for changes") from exc
        self._conn = conn

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(RECONNECT)
            if self._conn is not None and not self._conn.is_closed():
                continue
            try:
                await self._connect()
                log.info("action=change_listener_reconnected")
            except Exception as exc:
                log.warning("action=change_listener_failed error=%r", str(exc))

    def _notice(self, conn: object, pid: int, channel: str, payload: str) -> None:
        kind, _, ident = payload.partition(":")
        if kind in KINDS and ident.isdecimal():
            self._on_change(kind, int(ident))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT)
            except (asyncio.TimeoutError, *DRIVER_ERRORS):
                conn.terminate()
