"""The daemon's parts wired together, with a symmetric start and stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from schedd import metrics
from schedd.clock import Clock, WallClock
from schedd.config import Config, default_db_path
from schedd.engine import Engine
from schedd.executors.registry import Executors
from schedd.runner import Runner
from schedd.store import accounts as account_store
from schedd.store.db import Database

log = logging.getLogger("schedd.core")

DEFAULT_ORG = "default"


class Core:
    """Database, engine, runner and executors of one daemon (or one test)."""

    def __init__(self, config: Config, *, db_path: str | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or WallClock()
        self.db = Database(
            db_path or default_db_path(config), config.database.synchronous,
            on_commit=metrics.observe_commit)
        self.engine = Engine(self.clock)
        self.executors = Executors(config)
        sched = config.scheduler
        self.runner = Runner(
            self.db, self.engine, self.executors, self.clock,
            max_concurrent=sched.max_concurrent_runs, misfire_grace=sched.misfire_grace,
            misfire_max=sched.misfire_max, retention_sweep=sched.retention_sweep, quotas=config.quotas)
        self._loop_task: asyncio.Task[None] | None = None
        self.ready = False
        self.known_orgs: set[str] = set()
        """Orgs seen in the database; orgs are never deleted, so a hit needs no read."""
        self.startup: list[Callable[[float], Awaitable[None]]] = []
        """Run by `start()` after recovery, before the loop: families arm their own timers."""
        self._install_families()

    def _install_families(self) -> None:
        """Let the families hook into the runner (imported here: they import this module)."""
        from schedd.families import aggregate, windows

        aggregate.install(self)
        self.windows = windows.install(self)

    async def start(self, *, run_loop: bool = True) -> None:
        """Open the database, recover, load the heap, and (unless a test drives it) start the loop."""
        await self.db.open()
        await account_store.ensure_org(self.db, DEFAULT_ORG, self.clock.now())
        await self.executors.start()
        interrupted = await self.runner.recover(self.clock.now())
        for hook in self.startup:
            await hook(self.clock.now())
        if run_loop:
            self._loop_task = asyncio.create_task(self.engine.run(), name="schedd-engine")
        else:
            self.engine.loaded = True
        self.ready = True
        log.info(
            "action=core_started db=%s timers=%d interrupted_runs=%d",
            self.db.path, len(self.engine), interrupted)

    async def stop(self) -> tuple[int, int]:
        """Stop firing, let runs finish within shutdown_grace, interrupt the rest, close."""
        self.ready = False
        self.engine.stop()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        await self.engine.drain()
        finished, interrupted = await self.runner.shutdown(self.config.scheduler.shutdown_grace)
        await self.executors.close()
        await self.db.close()
        return finished, interrupted

    def reconfigure(self, config: Config) -> None:
        """Swap in a new config for executors and limits; schedules and runs are untouched."""
        self.config = config
        self.executors.replace_config(config)
        sched = config.scheduler
        self.runner.quotas = config.quotas
        self.runner.max_concurrent = sched.max_concurrent_runs  # after quotas: re-reads the caps
        self.runner.misfire_grace = sched.misfire_grace
        self.runner.misfire_max = sched.misfire_max
        self.runner.retention_sweep = sched.retention_sweep
