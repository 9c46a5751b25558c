"""The HTTP API over a real SQLite file, driven by the test clock, with a user per role."""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from schedd import config as config_mod
from schedd.accounts import hash_password
from schedd.clock import TestClock
from schedd.core import Core

# What maintenance runs and builds execute: a real program, quicker to start than Python.
ECHO = shutil.which("echo") or "/bin/echo"
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
    """The config of an in-process API: commands that echo, and `synchronous = "OFF"`.

    In-process tests meet no power cut or kernel crash, so nothing they check depends on
    SQLite syncing the file, which costs more than the rest of a test's set-up on a busy
    disk; that acknowledged writes are synced (the default "FULL") is checked on real
    daemons by tests/test_durability.py.
    """
    data: dict[str, Any] = {
        "database": {"synchronous": "OFF"},
        "executors": {
            "maintenance": {"command": [ECHO, "maintenance of {org_id}"]},
            "aggregate": {"command": [ECHO, "build {cube_id} full={full_build}"]},
        },
    }
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return config_mod.from_dict(data)


@functools.cache
def password_hash() -> str:
    """PASSWORD's scrypt hash, computed once per test session."""
    return hash_password(PASSWORD)
