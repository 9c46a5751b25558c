"""Shared fixtures: the API over a real SQLite file, driven by the test clock."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from schedd import config as config_mod
from schedd.accounts import hash_password
from schedd.api.common import ACCOUNTS
from schedd.app import make_app
from schedd.clock import TestClock
from schedd.compose import build_core
from schedd.core import Core
from schedd.store import accounts as account_store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
PASSWORD = "correct horse battery"


@dataclass
class Api:
    """A test client with a user per role and the core it drives."""

    client: Any
    core: Core
    clock: TestClock
    tokens: dict[str, str]

    def auth(self, who: str = "admin", header: str = "bearer") -> dict[str, str]:
        token = self.tokens[who]
        if header == "voltmx":
            return {"X-VoltMX-Authorization": token}
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, who: str | None = "admin", **kw: Any):
        headers = {**(self.auth(who) if who else {}), **kw.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kw)
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = await response.text()
        return response, body

    async def settle(self) -> None:
        """Fire what is due at the test clock's time and wait for every run to end."""
        await self.core.engine.run_until_idle()
        await self.core.runner.wait_idle()


def api_config(tmp_path, **sections: Any) -> config_mod.Config:
    data: dict[str, Any] = {
        "executors": {
            "maintenance": {"command": [sys.executable, "-c", "print('maintenance of {org_id}')"]},
            "aggregate": {"command": [sys.executable, "-c", "print('build {cube_id} full={full_build}')"]},
        },
    }
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return config_mod.from_dict(data)


@functools.cache
def password_hash() -> str:
    """PASSWORD's scrypt hash, computed once per test session."""
    return hash_password(PASSWORD)


@pytest.fixture
def clock() -> TestClock:
    return TestClock(T0)


@pytest.fixture
async def make_api(aiohttp_client, tmp_path, clock):
    async def build(**sections: Any) -> Api:
        core = build_core(api_config(tmp_path, **sections), db_path=str(tmp_path / "api.db"), clock=clock)
        app = make_app(core, run_loop=False)
        client = await aiohttp_client(app)
        accounts = app[ACCOUNTS]
        await accounts.add_org("acme", at=T0)
        await accounts.add_org("other", at=T0)
        encoded = password_hash()
        for name, admin, orgs, email in (("admin", True, (), None),
                                         ("alice", False, ("acme", "default"), "alice@example.com"),
                                         ("bob", False, ("other",), None)):
            await account_store.create_user(core.db, name, encoded, email=email, is_admin=admin,
                                            orgs=orgs, at=T0)
        tokens = {name: await accounts.create_token(name, ttl=None, at=T0) for name in ("admin", "alice", "bob")}
        return Api(client, core, clock, tokens)

    return build


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under `.ci/run` (SCHEDD_CI=1) a skipped test fails the run.

    Tests that need a tool (promtool, Prometheus, Chromium, strace, faketime, …) skip
    without it on a developer's machine; `.ci/run` installs every one, so a skip there
    means a test that did not run.
    """
    if os.environ.get("SCHEDD_CI") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reasons = sorted({str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
                          for report in skipped})
        sys.stderr.write(f"\nSCHEDD_CI=1: {len(skipped)} tests skipped, which CI must run:\n  "
                         + "\n  ".join(reasons) + "\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
