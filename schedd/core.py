"""The daemon's parts wired together, with a symmetric start and stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from schedd import metrics
from schedd.clock import Clock, WallClock
from schedd.config import Config, default_db_path
from schedd.engine import Engine
from schedd.executors.registry import Executors
from schedd.pages import PageCache
from schedd.retention import Retention
from schedd.runner import Active, Runner
from schedd.store.protocol import Store
from schedd.store.select import make_store

if TYPE_CHECKING:
    from schedd.families.maintenance_windows.service import Windows

log = logging.getLogger("schedd.core")

DEFAULT_ORG = "default"


class Core:
    """Store, engine, runner and executors of one daemon (or one test).

    Build one with `schedd.compose.build_core`, which installs the families first.
    """

    def __init__(self, config: Config, *, db_path: str | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or WallClock()
        self.store: Store = make_store(
            db_path or default_db_path(config), config.database, on_commit=metrics.observe_commit)
        self.engine = Engine(self.clock, lead=config.scheduler.fire_lead)
        self.executors = Executors(config)
        sched = config.scheduler
        self.pages = PageCache()
        """Encoded history pages the API served, kept until a run of their history changes."""
        self.runner = Runner(
            self.store, self.engine, self.executors, self.clock,
            max_concurrent=sched.max_concurrent_runs, misfire_grace=sched.misfire_grace,
            misfire_max=sched.misfire_max, quotas=config.quotas, pages=self.pages)
        self.retention = Retention(self.store, self.engine, interval=sched.retention_sweep,
                                   history_retention=sched.history_retention, pages=self.pages)
        self._loop_task: asyncio.Task[None] | None = None
        self.ready = False
        self.known_orgs: set[str] = set()
        """Orgs seen in the database; orgs are never deleted, so a hit needs no read."""
        self.startup: list[Callable[[float], Awaitable[None]]] = []
        """Run by `start()` after recovery, before the loop: families arm their own timers."""
        self.windows: Windows
        """The maintenance windows, installed by the composition root (`schedd.compose.build_core`)."""
        self.stopped: tuple[int, int] | None = None
        """(runs finished, runs interrupted) by `stop()`, once it returned."""
        self._last_success: dict[str, float] = {}
        self.history_loaded: asyncio.Task[None] | None = None
        self.runner.after_run.append(self._note_success)

    async def start(self, *, run_loop: bool = True) -> None:
        """Open the database, recover, load the heap, and (unless a test drives it) start the loop."""
        await self.store.open()
        await self.store.accounts.ensure_org(DEFAULT_ORG, self.clock.now())
        await self.executors.start()
        interrupted = await self.runner.recover(self.clock.now())
        self.retention.arm(self.clock.now())
        # Fires recorded before a restart count as handled: a clock behind them brings none back.
        self.engine.handled_until = max(
            self.engine.handled_until, await self.store.runs.latest_created() or 0.0)
        for hook in self.startup:
            await hook(self.clock.now())
        if run_loop:
            self._loop_task = asyncio.create_task(self.engine.run(), name="schedd-engine")
        else:
            self.engine.loaded = True
        self.ready = True
        # A scan of every schedule: done beside the loop, so that it does not delay READY.
        self.history_loaded = asyncio.create_task(self._load_last_success(), name="schedd-last-success")
        log.info(
            "action=core_started db=%s timers=%d interrupted_runs=%d",
            self.store.location, len(self.engine), interrupted)

    def _set_last_success(self, family: str, at: float) -> None:
        if at > self._last_success.get(family, float("-inf")):
            self._last_success[family] = at
            metrics.LAST_SUCCESS.labels(family).set(at)

    async def _note_success(self, active: Active, state: str) -> None:
        if state == "done":
            self._set_last_success(active.family, self.clock.now())

    async def _load_last_success(self) -> None:
        """The metric of each family's latest success, as the database remembers it."""
        try:
            for family, at in (await self.store.schedules.last_success()).items():
                self._set_last_success(family, at)
        except Exception as exc:  # a metric only: the daemon runs on without it
            log.error("action=last_success_not_loaded error=%r", str(exc))

    async def stop(self) -> tuple[int, int]:
        """Stop firing, let runs finish within shutdown_grace, interrupt the rest, close."""
        self.ready = False
        if self.history_loaded is not None:
            await asyncio.gather(self.history_loaded, return_exceptions=True)
        self.engine.stop()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        await self.engine.drain()
        finished, interrupted = await self.runner.shutdown(self.config.scheduler.shutdown_grace)
        await self.executors.close()
        await self.store.close()
        self.stopped = (finished, interrupted)
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
        self.engine.lead = sched.fire_lead
        self.retention.interval = sched.retention_sweep
        self.retention.history_retention = sched.history_retention
