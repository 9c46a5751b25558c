"""The runner driven by the test clock: a config, an executor the test ends, schedules and their history."""

from __future__ import annotations

import asyncio
import uuid

from schedd import config as config_mod
from schedd.core import Core
from schedd.cron import load_zone, parse
from schedd.executors import Outcome, started
from schedd.store import runs as run_store
from schedd.store import schedules as schedule_store
from tests.support.api import ECHO


def make_config(**scheduler) -> config_mod.Config:
    """A runner's config for in-process tests: no sync at commit (see `api_config`), and a
    maintenance command that echoes."""
    return config_mod.from_dict({
        "database": {"synchronous": "OFF"},
        "scheduler": {"misfire_grace": 60, "misfire_max": 3, **scheduler},
        "executors": {"maintenance": {"command": [ECHO, "maintained {org_id}"]}},
    })


class Controlled:
    """An executor whose runs end when the test says so."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = asyncio.Event()
        self.ok = True
        self.cancelled: list[str] = []
        self._changed = asyncio.Event()

    async def run(self, ctx):
        started(ctx)
        self.started.append(ctx.run_uid)
        self._note()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(ctx.run_uid)
            self._note()
            raise
        return Outcome(ok=self.ok, error=None if self.ok else "boom",
                       request_payload="req", response_status=200, response_body="resp")

    def _note(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, started: int = 0, cancelled: int = 0) -> None:
        """Wait until this many runs have started and this many were cancelled (no real time
        passes; the bound only turns a hang into a failure)."""
        async with asyncio.timeout(10):
            while len(self.started) < started or len(self.cancelled) < cancelled:
                await self._changed.wait()


def controlled(core: Core) -> Controlled:
    ex = Controlled()
    core.executors.get = lambda ctx: ex  # type: ignore[method-assign]
    return ex


async def settle(core: Core) -> None:
    await core.engine.run_until_idle()
    for _ in range(5):
        await asyncio.sleep(0)


async def finish_all(core: Core) -> None:
    await core.engine.run_until_idle()
    await core.runner.wait_idle()


async def add_schedule(core: Core, cron: str, *, tz: str = "UTC", family: str = "maintenance", **kw):
    expr = parse(cron)
    schedule = await core.store.schedules.insert(schedule_store.NewSchedule(
        uid=str(uuid.uuid4()), family=family, org_id=kw.pop("org_id", "default"), cron=cron,
        cron_normalized=expr.normalized, timezone=tz, created_at=core.clock.now(),
        next_fire_at=expr.next_after(core.clock.now(), load_zone(tz)), **kw))
    core.runner.arm(schedule)
    return schedule


async def history(core: Core, schedule) -> list[run_store.Run]:
    return list(reversed(await core.store.runs.list_schedule(schedule.id, limit=1000, offset=0)))
