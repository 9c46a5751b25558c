"""`schedd serve` and the CLI as subprocesses: a daemon on an ephemeral port, its log in a file."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import tomli_w

PASSWORD = "e2e password 123"


def schedd(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "schedd", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, env=env)


class Daemon:
    """`schedd serve` on an ephemeral port, with its log in a file."""

    def __init__(self, tmp: Path, command: list[str]) -> None:
        self.tmp = tmp
        self.db = str(tmp / "schedd.db")
        self.config = tmp / "schedd.toml"
        self.config.write_bytes(tomli_w.dumps({
            "scheduler": {"shutdown_grace": "2s"},
            "executors": {"maintenance": {"command": command, "timeout": "60s"}},
        }).encode())
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> Daemon:
        self.log.write_text("")
        with open(self.log, "a") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "schedd", "serve", "--port", "0", "--db", self.db,
                 "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = re.search(r"action=listening .*port=(\d+)", self.log.read_text())
            if found:
                self.port = int(found.group(1))
                return self
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)
        raise AssertionError("daemon did not start:\n" + self.log.read_text())

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = None,
                form: dict | None = None) -> tuple[int, dict]:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if token:
            headers["X-VoltMX-Authorization"] = token
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def login(self) -> str:
        status, body = self.request("POST", "/authService/accounts/login",
                                    form={"userid": "ops", "password": PASSWORD})
        assert status == 200, body
        return body["claims_token"]["value"]

    def wait_for(self, predicate, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError("condition not met in time; log:\n" + self.log.read_text())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)


HISTORY = "/aggregates/maintenance/orgId/default/history"
SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/default"


def admin_daemon(tmp: Path, command: list[str]) -> Daemon:
    """A Daemon (not started) whose maintenance runs `command`, with the admin user "ops"."""
    daemon = Daemon(tmp, command)
    out = schedd("user", "add", "ops", "--admin", "--password-stdin", "--db", daemon.db,
                 "--config", str(daemon.config), stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    return daemon


def kill(daemon: Daemon) -> None:
    """End a daemon a test left running."""
    if daemon.proc and daemon.proc.poll() is None:
        daemon.proc.kill()
        daemon.proc.wait()
