"""Housekeeping: the periodic sweep that deletes runs past their job's retention period,
runs no job's own period covers past `history_retention`, and forgets access tokens a
day after they expired.

The sweep is one engine timer (`HOUSEKEEPING`, ident `RETENTION_SWEEP`): armed a minute
after start-up (or sooner, when the interval is shorter), then every `interval` seconds.
Deletes go a small batch per write, so a large backlog never holds the writer for long.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from schedd.engine import HOUSEKEEPING, Engine
from schedd.pages import PageCache
from schedd.store.protocol import Store

log = logging.getLogger("schedd.retention")

RETENTION_SWEEP = 0  # housekeeping timer ident
RETENTION_BATCH = 500
EXPIRED_TOKENS_KEPT = 86400.0  # an expired token answers "token expired" for a day, then is forgotten
FIRST_SWEEP_AFTER = 60.0


def first_sweep_at(at: float, interval: float) -> float:
    """When the first sweep after start-up is due: a minute in, or one interval if shorter."""
    return at + min(FIRST_SWEEP_AFTER, interval)


def retention_cutoff(at: float, days: int) -> float:
    """Runs created before this time are past a retention period of `days` days."""
    return at - days * 86400.0


class Retention:
    """The housekeeping timer and what it does when due."""

    def __init__(self, store: Store, engine: Engine, *, interval: float = 3600.0,
                 history_retention: float = 90 * 86400.0, pages: PageCache | None = None) -> None:
        self.store = store
        self.pages = pages if pages is not None else PageCache()  # kept history pages: dropped once runs were deleted
        self.engine = engine
        self.interval = interval
        self.history_retention = history_retention  # 0: such runs are kept
        engine.on(HOUSEKEEPING, self.on_due)

    def arm(self, at: float) -> None:
        """Set the first sweep after start-up."""
        self.engine.set(HOUSEKEEPING, RETENTION_SWEEP, first_sweep_at(at, self.interval))

    async def on_due(self, items: list[tuple[int, float]], at: float) -> None:
        for ident, _ in items:
            if ident == RETENTION_SWEEP:
                deleted = await self.sweep(at)
                if deleted:
                    log.info("action=retention_sweep deleted=%d", deleted)
                purged = await self.store.accounts.purge_tokens(at - EXPIRED_TOKENS_KEPT)
                if purged:
                    log.info("action=tokens_purged count=%d", purged)
                self.engine.set(HOUSEKEEPING, RETENTION_SWEEP, at + self.interval)

    async def sweep(self, at: float) -> int:
        """Delete runs older than each job's retention period, and the runs no job's own period
        covers (org maintenance, cube builds, run-now without a job) older than
        `history_retention`, a small batch per write."""
        total = 0
        for schedule_id, days in await self.store.schedules.retention_list(at):
            total += await self._deleting(functools.partial(
                self.store.runs.delete_older, schedule_id, retention_cutoff(at, days), RETENTION_BATCH))
        if self.history_retention > 0:
            total += await self._deleting(functools.partial(
                self.store.runs.delete_unkept, at - self.history_retention, RETENTION_BATCH))
        return total

    async def _deleting(self, delete: Callable[[], Awaitable[int]]) -> int:
        try:
            deleted = await _in_batches(delete)
        finally:
            self.pages.clear()
        return deleted


async def _in_batches(delete: Callable[[], Awaitable[int]]) -> int:
    """Call `delete()` (one write of at most RETENTION_BATCH rows) until it deletes fewer, yielding between."""
    total = 0
    while True:
        deleted = await delete()
        total += deleted
        if deleted < RETENTION_BATCH:
            return total
        await asyncio.sleep(0)
