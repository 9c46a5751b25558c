"""Run a configured argv (never a shell) with the run's values filled in.

A run's values are named by its family (`RunContext.values`) plus `run_id`, which every run
has. Each `{name}` of the argv is replaced by one value, as one whole argv item; each value
is exported as `SCHEDD_<NAME>`, beside `SCHEDD_RUN_ID`, `SCHEDD_TRIGGER` and `SCHEDD_FAMILY`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Iterable, Mapping

from schedd.executors import PAYLOAD_LIMIT, Outcome, RunContext, started

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CHUNK = 16 * 1024
_COMMON = ("run_id", "trigger", "family")
"""What every run exports, whatever its family (`SCHEDD_RUN_ID`, ...)."""


class CommandExecutor:
    """Runs `argv` in its own process group; its output (tail) becomes the response body.

    `placeholders` are the names its config section knows (a `{name}` outside them, and
    outside `run_id`, is unknown); `exported` are the names schedd exports to any command.
    A `SCHEDD_<NAME>` of either, or of the run's values, is never inherited from the
    daemon's own environment, even when the run has no value for it.
    """

    def __init__(self, argv: tuple[str, ...], key: str, kill_grace: float = 2.0, *,
                 placeholders: Iterable[str] = (), exported: Iterable[str] = ()) -> None:
        self._argv = tuple(argv)
        self._key = key
        self._kill_grace = kill_grace
        self._known = frozenset({"run_id", *placeholders})
        self._hidden = frozenset(env_name(name) for name in (*_COMMON, *self._known, *exported))

    async def run(self, ctx: RunContext) -> Outcome:
        if not self._argv:
            section, _, name = self._key.rpartition(".")
            return Outcome(ok=False, error=f"no command configured: set [{section}] {name}")
        values = {**ctx.values, "run_id": ctx.run_uid}
        try:
            argv = [_PLACEHOLDER.sub(lambda m: self._fill(m, values), item) for item in self._argv]
        except LookupError as exc:
            return Outcome(ok=False, error=f"{self._key}: {exc.args[0]}")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=self._environment(ctx), start_new_session=True)
        except FileNotFoundError:
            return Outcome(ok=False, error=f"command not found: {argv[0]} ({self._key})")
        except (OSError, ValueError) as exc:
            return Outcome(ok=False, error=f"cannot start {argv[0]} ({self._key}): {exc}")
        started(ctx)
        try:
            output = await _read_tail(proc.stdout)
            code = await proc.wait()
        except BaseException:
            # Shielded so a second cancellation (shutdown during a timeout) still reaps.
            await asyncio.shield(asyncio.ensure_future(self._kill(proc)))
            raise
        if code == 0:
            return Outcome(ok=True, exit_code=0, response_body=output)
        return Outcome(ok=False, error=_failure(code, output), exit_code=code, response_body=output)

    def _fill(self, match: re.Match[str], values: Mapping[str, str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if value is not None:
            return value
        if name not in self._known:
            raise LookupError(f"unknown placeholder {{{name}}}")
        raise LookupError(f"placeholder {{{name}}} has no value for this run")

    def _environment(self, ctx: RunContext) -> dict[str, str]:
        """The daemon's environment without any variable schedd exports, then the run's."""
        ours = {"SCHEDD_RUN_ID": ctx.run_uid, "SCHEDD_TRIGGER": ctx.trigger, "SCHEDD_FAMILY": ctx.family}
        for name, value in ctx.values.items():
            ours.setdefault(env_name(name), value)
        env = {k: v for k, v in os.environ.items() if k not in self._hidden and k not in ours}
        env.update(ours)
        return env

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the whole group, SIGKILL whatever is left after the grace, reap the leader."""
        _signal_group(proc.pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._kill_grace
        # Wait for the group, not the leader: a grandchild may ignore SIGTERM and live on.
        while _signal_group(proc.pid, 0) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        _signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()


def env_name(name: str) -> str:
    """The environment variable a run's value `name` is exported as."""
    return f"SCHEDD_{name.upper()}"


async def _read_tail(stream: asyncio.StreamReader | None) -> str:
    """Read to EOF keeping the last PAYLOAD_LIMIT bytes: a failure explains itself at the end."""
    if stream is None:
        return ""
    kept = bytearray()
    dropped = 0
    while chunk := await stream.read(_CHUNK):
        kept += chunk
        if len(kept) > PAYLOAD_LIMIT:
            excess = len(kept) - PAYLOAD_LIMIT
            del kept[:excess]
            dropped += excess
    if not dropped:
        return kept.decode("utf-8", "replace")
    # Do not start the kept text in the middle of a UTF-8 sequence.
    start = next((i for i, b in enumerate(kept[:4]) if b & 0xC0 != 0x80), 0)
    return f"…[truncated {dropped + start} bytes]\n" + kept[start:].decode("utf-8", "replace")


def _failure(code: int, output: str) -> str:
    error = f"exit code {code}"
    if code < 0:
        with contextlib.suppress(ValueError):
            error += f" (killed by {signal.Signals(-code).name})"
    last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "")
    return f"{error}: {last[:500]}" if last else error


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal the process group; False when nothing is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Only members we may not signal (a setuid program) are left.
        return False
    return True
