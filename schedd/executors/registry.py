"""Which executor runs a job family, as the config says; owns the one shared HTTP session."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from schedd.executors import Executor, Outcome, RunContext
from schedd.executors.command import CommandExecutor
from schedd.executors.http import HttpExecutor

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
    """`get(ctx)` by `ctx.family`; `replace_config` swaps executors, keeping the session."""

    def __init__(self, config: Config) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.replace_config(config)

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTION_LIMIT),
                cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def replace_config(self, config: Config) -> None:
        self._config = config
        execs = config.executors
        self._commands: dict[str, Executor] = {
            "maintenance": _command(execs.maintenance, "executors.maintenance"),
            "aggregate": _command(execs.aggregate, "executors.aggregate"),
        }
        self._services: dict[str, Executor] = {
            name: HttpExecutor(service, self._get_session) if service.base_url
            else Refuse(f"service {name!r} has no base URL: set services.{name}.base_url")
            for name, service in config.services.items()}

    def get(self, ctx: RunContext) -> Executor:
        if ctx.family == "service":
            name = ctx.service_name or ""
            return self._services.get(name) or Refuse(
                f"unknown service {name!r}: configure [services.{name}] base_url "
                f"(services.{name}.base_url)")
        return self._commands.get(ctx.family) or Refuse(f"unknown job family {ctx.family!r}")

    def timeout_for(self, family: str, service_name: str | None = None) -> float:
        """The run timeout the runner enforces (by cancelling `run`) for a family."""
        if family in ("maintenance", "aggregate"):
            return getattr(self._config.executors, family).timeout
        if family == "service" and service_name is not None and service_name in self._config.services:
            return self._config.services[service_name].timeout
        if family == "service":
            return 30.0
        raise ValueError(f"unknown job family {family!r}")

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Executors.start() was not awaited")
        return self._session


def _command(section: MaintenanceExecutorConfig | AggregateExecutorConfig, key: str) -> Executor:
    if not section.enabled:
        return Refuse(f"{key} is disabled: set [{key}] enabled = true")
    return CommandExecutor(tuple(section.command), f"{key}.command")
