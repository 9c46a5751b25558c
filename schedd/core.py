"""The daemon's parts wired together, with a symmetric start and stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from schedd import metrics
from schedd.clock import Clock, WallClock
from schedd.config import Config, default_db_path
from schedd.coordination import Coordinator
from schedd.engine import Engine
from schedd.executors.registry import Executors
from schedd.pages import HISTORIES, PageCache
from schedd.retention import Retention
from schedd.runner import Active, Runner
from schedd.store.protocol import Store
from schedd.store.select import make_store
from schedd.values import DEFAULT_ORG

if TYPE_CHECKING:
    from schedd.families.maintenance_windows.service import Windows

log = logging.getLogger("schedd.core")


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
        # Only where this process writes every run (a SQLite file): another instance's runs on a
        # shared server would not reach this process's cache.
        self.pages = PageCache(histories=HISTORIES if self.store.local_file is not None else 0)
        """Encoded history pages the API served, kept until a run of their history changes."""
        self.runner = Runner(
            self.store, self.engine, self.executors, self.clock,
            max_concurrent=sched.max_concurrent_runs, misfire_grace=sched.misfire_grace,
            misfire_max=sched.misfire_max, quotas=config.quotas, pages=self.pages)
        self.retention = Retention(self.store, self.engine, interval=sched.retention_sweep,
                                   history_retention=sched.history_retention, pages=self.pages)
        self.coordinator = Coordinator(
            self.store, self.runner, self.clock, instance=config.database.instance,
            ttl=config.database.lease_ttl, on_lead=self._load_families)
        self.change_hooks: dict[str, Callable[[list[int]], Awaitable[None]]] = {"schedule": self._schedules_changed}
        """Per kind of record, what to do when another instance changed some (families add theirs)."""
        self._changed: dict[str, set[int]] = {}
        self._applying: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.ready = False
        self.known_orgs: set[str] = set()
        """Orgs seen in the database; orgs are never deleted, so a hit needs no read."""
        self.startup: list[Callable[[float], Awaitable[None]]] = []
        """Run each time this instance begins to fire (at start for a lone instance, at each takeover
        where several share a server), before the loop: families arm their own timers."""
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
        # Fires recorded before a restart count as handled: a clock behind them brings none back.
        self.engine.handled_until = max(
            self.engine.handled_until, await self.store.runs.latest_created() or 0.0)
        await self.store.listen(self._note_change)
        interrupted = await self.coordinator.start()
        if not self.coordinator.is_leader:
            # A standby runs no fire, but starts API runs: the families' state (the maintenance
            # gate) is loaded all the same; their timers wait for a takeover.
            await self._load_families(self.clock.now())
        self.retention.arm(self.clock.now())
        if run_loop:
            self._loop_task = asyncio.create_task(self.engine.run(), name="schedd-engine")
        else:
            self.engine.loaded = True
        self.ready = True
        # A scan of every schedule: done beside the loop, so that it does not delay READY.
        self.history_loaded = asyncio.create_task(self._load_last_success(), name="schedd-last-success")
        log.info(
            "action=core_started db=%s instance=%s fires=%s timers=%d interrupted_runs=%d",
            self.store.location, self.coordinator.instance, self.coordinator.is_leader, len(self.engine), interrupted)

    async def _load_families(self, at: float) -> None:
        for hook in self.startup:
            await hook(at)

    def _note_change(self, kind: str, ident: int) -> None:
        """Another instance committed a change: applied in order, a batch at a time, beside the loop."""
        if kind not in self.change_hooks:
            return
        self._changed.setdefault(kind, set()).add(ident)
        if self._applying is None or self._applying.done():
            self._applying = asyncio.create_task(self._apply_changes(), name="schedd-changes")

    async def _apply_changes(self) -> None:
        while self._changed:
            kind, idents = self._changed.popitem()
            try:
                await self.change_hooks[kind](sorted(idents))
            except Exception as exc:  # the next change of these records, or a takeover, arms them again
                log.error("action=change_not_applied kind=%s count=%d error=%r", kind, len(idents), str(exc))

    async def _schedules_changed(self, idents: list[int]) -> None:
        if not self.runner.firing:
            return
        found = await self.store.schedules.get_many(idents)
        for ident in idents:
            schedule = found.get(ident)
            if schedule is None:
                self.runner.disarm(ident)
            else:
                self.runner.arm(schedule)

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
        await self.coordinator.stop()
        if self._applying is not None:
            self._applying.cancel()
            await asyncio.gather(self._applying, return_exceptions=True)
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
