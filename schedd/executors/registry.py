"""The executors the config describes, which each job family chooses from; owns the one shared HTTP session.

The family of a run (`schedd.families.base.Family`) picks its executor and default timeout
from this pool: a command of an `[executors.<section>]` table or a `[services.<name>]`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import aiohttp

from schedd.executors import Executor, Outcome, RunContext
from schedd.executors.command import CommandExecutor
from schedd.executors.http import HttpExecutor, StartedRequest
from schedd.families.base import FAMILIES, RunTarget, UnknownFamily

if TYPE_CHECKING:
    from schedd.config import AggregateExecutorConfig, Config, MaintenanceExecutorConfig

CONNECTION_LIMIT = 100


class Refuse:
    """Fails every run at once with one message: nothing pretends to work."""

    def __init__(self, error: str) -> None:
        self.error = error

    async def run(self, ctx: RunContext) -> Outcome:
        return Outcome(ok=False, error=self.error)


class Executors:
    """`get(ctx)` as `ctx.family` chooses; `replace_config` swaps executors, keeping the session."""

    def __init__(self, config: Config) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.replace_config(config)

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTION_LIMIT),
                cookie_jar=aiohttp.DummyCookieJar(), request_class=StartedRequest)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def replace_config(self, config: Config) -> None:
        self._config = config
        self._commands: dict[str, Executor] = {}  # by config section, built when first asked for
        # Whatever one command section can fill in is never inherited by any command.
        self._exported = frozenset[str]().union(*(
            getattr(config.executors, f.name).PLACEHOLDERS for f in dataclasses.fields(config.executors)))
        self._services: dict[str, Executor] = {
            name: HttpExecutor(service, self._get_session) if service.base_url
            else Refuse(f"service {name!r} has no base URL: set services.{name}.base_url")
            for name, service in config.services.items()}

    def get(self, ctx: RunContext) -> Executor:
        family = FAMILIES.find(ctx.family)
        if family is None:
            return Refuse(f"unknown job family {ctx.family!r}")
        return family.executor(self, ctx)

    def timeout_for(self, family: str, target: RunTarget | None = None) -> float:
        """The run timeout the runner enforces (by cancelling `run`) for a run of a family."""
        found = FAMILIES.find(family)
        if found is None:
            raise UnknownFamily(family)
        return found.timeout(self, target or RunTarget())

    # -- the pool families choose from ----------------------------------------------

    def command(self, section: str) -> Executor:
        executor = self._commands.get(section)
        if executor is None:
            executor = self._commands[section] = _command(
                getattr(self._config.executors, section), f"executors.{section}", self._exported)
        return executor

    def command_timeout(self, section: str) -> float:
        timeout: float = getattr(self._config.executors, section).timeout
        return timeout

    def service(self, name: str) -> Executor:
        return self._services.get(name) or Refuse(
            f"unknown service {name!r}: configure [services.{name}] base_url (services.{name}.base_url)")

    def service_timeout(self, name: str) -> float | None:
        service = self._config.services.get(name)
        return None if service is None else service.timeout

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Executors.start() was not awaited")
        return self._session


def _command(section: MaintenanceExecutorConfig | AggregateExecutorConfig, key: str,
             exported: frozenset[str]) -> Executor:
    if not section.enabled:
        return Refuse(f"{key} is disabled: set [{key}] enabled = true")
    return CommandExecutor(tuple(section.command), f"{key}.command", placeholders=section.PLACEHOLDERS,
                           exported=exported)
