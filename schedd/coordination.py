"""Who fires: this instance takes and renews the firing lease, or stands by to take it over.

A process that owns its SQLite file (schedd/store/lock.py) holds the lease for its whole life.
Instances sharing a PostgreSQL server all serve the API; the one holding the lease fires every
schedule, and the lease's epoch fences out the one before (docs/architecture.md, "Several
instances"). The lease is renewed every third of its time to live; a standby tries every sixth,
so it fires within `lease_ttl` and a sixth of it after the last renewal of an instance that
stopped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from schedd import metrics
from schedd.clock import Clock
from schedd.runner import INTERRUPTED_BY_CRASH, Runner
from schedd.store.protocol import Store

log = logging.getLogger("schedd.coordination")

SAFETY = 0.1
"""The fraction of the lease this instance gives up early by its own clock, for clocks that run apart."""


def holder_name(name: str | None) -> str:
    """This process's name as a lease holder: the configured name (default the host name), its pid and
    a random tag, so that an instance started again under the same name is a new holder."""
    return f"{name or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class Coordinator:
    """The firing lease as this instance holds it or waits for it."""

    def __init__(
        self, store: Store, runner: Runner, clock: Clock, *, instance: str | None, ttl: float,
        on_lead: Callable[[float], Awaitable[None]],
    ) -> None:
        self.store = store
        self.runner = runner
        self.clock = clock
        self.instance = holder_name(instance)
        self.ttl = ttl
        self.epoch: int | None = None
        self.is_leader = False
        self._on_lead = on_lead
        self._valid_until = -math.inf  # monotonic
        self._task: asyncio.Task[None] | None = None
        self._next_sweep = 0.0  # monotonic
        self._failing = False
        runner.may_fire = self.holds

    @property
    def shared(self) -> bool:
        """Whether other instances may fire from this store (a server) and the lease is contended."""
        return self.store.lease.shared

    def holds(self) -> bool:
        """Whether the lease is this instance's by its own clock: a stalled instance that wakes past its
        lease starts no fire, even before the store tells it another instance took over."""
        return self.is_leader and (not self.shared or time.monotonic() < self._valid_until)

    async def firing_instance(self) -> str | None:
        """The name of the instance that fires now (this one, or the holder of a live lease), or None."""
        if self.is_leader:
            return self.instance
        held = await self.store.lease.current()
        return held.holder if held.expires_in > 0 else None

    async def start(self) -> int:
        """Take the lease now if it is free (a lone instance fires before it says ready), then keep it or
        wait for it beside the loop; returns how many runs taking it closed as interrupted."""
        if not self.shared:
            epoch = await self.store.lease.take(self.instance, self.ttl)
            assert epoch is not None  # noqa: S101 - one process owns the store
            return await self._lead(epoch)
        self.runner.step_down()
        closed = await self._step()
        self._task = asyncio.create_task(self._loop(), name="schedd-lease")
        return closed

    async def stop(self) -> None:
        """Stop renewing, and give the lease up so that a standby fires at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.is_leader and self.shared and self.epoch is not None:
            self._step_down(None)
            try:
                await self.store.lease.release(self.instance, self.epoch)
                log.info("action=lease_released instance=%s epoch=%d", self.instance, self.epoch)
            except Exception as exc:  # it lapses by itself within lease_ttl
                log.warning("action=lease_not_released instance=%s error=%r", self.instance, str(exc))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3 if self.is_leader else self.ttl / 6)
            try:
                await self._step()
            except Exception as exc:
                log.error("action=lease_step_failed instance=%s error=%r", self.instance, str(exc))

    async def _step(self) -> int:
        """Beat, then take or renew the lease; lead or step down as the answer says."""
        sent = time.monotonic()
        previous = None
        try:
            await asyncio.wait_for(self.store.lease.beat(self.instance, self.ttl), self.ttl / 3)
            if not self.is_leader:
                held = await asyncio.wait_for(self.store.lease.current(), self.ttl / 3)
                if held.holder not in (None, self.instance) and held.expires_in > 0:
                    return self._reachable(0)  # another instance holds it: nothing to write
                previous = held.holder  # who held it before, if this instance takes it now
            epoch = await asyncio.wait_for(self.store.lease.take(self.instance, self.ttl), self.ttl / 3)
        except Exception as exc:  # a timeout, a lost connection, the server's own errors
            return self._unreachable(exc)
        self._reachable(0)
        if epoch is None:
            if self.is_leader:
                metrics.LEASE_RENEWALS.labels("lost").inc()
                self._step_down("another instance holds the lease")
            return 0
        self._valid_until = sent + self.ttl * (1 - SAFETY)
        if self.is_leader and epoch == self.epoch:
            metrics.LEASE_RENEWALS.labels("ok").inc()
            await self._sweep()
            return 0
        return await self._lead(epoch, previous if previous != self.instance else None)

    def _reachable(self, closed: int) -> int:
        if self._failing:
            log.info("action=lease_store_reachable instance=%s", self.instance)
            self._failing = False
        return closed

    def _unreachable(self, exc: BaseException) -> int:
        if not self._failing:
            log.error("action=lease_store_unreachable instance=%s error=%r",
                      self.instance, str(exc) or type(exc).__name__)
            self._failing = True
        if self.is_leader:
            metrics.LEASE_RENEWALS.labels("error").inc()
            if time.monotonic() >= self._valid_until:
                self._step_down("the lease lapsed while the store was unreachable")
        return 0

    async def _lead(self, epoch: int, previous: str | None = None) -> int:
        """Fire from now on: fence, close what the instances before left open, arm every schedule."""
        at = self.clock.now()
        self.store.fires.set_fence(self.instance, epoch)
        self.epoch = epoch
        closed = await self.runner.take_over(at, previous)
        await self._on_lead(at)
        self.is_leader = True
        self._next_sweep = time.monotonic() + self.ttl
        metrics.LEADER.set(1)
        metrics.LEASE_EPOCH.set(epoch)
        metrics.LEASE_TAKEOVERS.inc()
        if self.shared:
            log.info("action=lease_taken instance=%s epoch=%d previous=%s interrupted_runs=%d timers=%d",
                     self.instance, epoch, previous, closed, len(self.runner.engine))
        return closed

    def _step_down(self, why: str | None) -> None:
        """Stop firing; `why` the lease was lost (None: this instance is stopping)."""
        self.is_leader = False
        self.runner.step_down()
        metrics.LEADER.set(0)
        if why is not None:
            log.warning("action=lease_lost instance=%s epoch=%s reason=%r", self.instance, self.epoch, why)

    async def _sweep(self) -> None:
        """Close the runs of instances that stopped beating (API runs of a standby that died)."""
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + self.ttl
        closed = await self.store.fires.interrupt_open(self.clock.now(), INTERRUPTED_BY_CRASH)
        for run_id, _, uid in closed:
            log.warning("action=run_interrupted run_id=%d run=%s reason=instance_gone", run_id, uid)
