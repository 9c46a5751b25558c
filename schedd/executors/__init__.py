"""Executors do the work of a run behind one small interface.

The runner builds a `RunContext`, asks `Executors.get(ctx)` for the executor and awaits
`run(ctx)`; it never branches on the executor's type. An executor is a generic kind of work
(a command, an HTTP call): the context carries what every run has (its ids, family name,
trigger, timeout) and the input of the executor kinds, which the run's family worked out
(`schedd.families.base.RunTarget`): named `values` for a command, a `ServiceCall` for an
HTTP call. No executor knows what a family's values mean. An executor calls `started(ctx)` at
the moment its work starts (the HTTP request's headers are sent, the process is spawned):
that moment is the run's `started_at` and its start delay, the same for every executor.
The runner enforces the timeout by cancelling `run`, so every executor must clean up on
`asyncio.CancelledError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

PAYLOAD_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServiceCall:
    """An HTTP call to a configured service: what the HTTP executor sends."""

    service: str
    """The `[services.<name>]` table that says where the call goes ("" when the job names none)."""
    operation: str | None = None
    """The path under the service's base URL."""
    body: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """The call's own headers, sent after (and over) the service's."""


@dataclass(frozen=True, slots=True)
class RunContext:
    """What an executor may know about the run it performs."""

    run_id: int
    run_uid: str
    family: str  # the wire name of a registered family (schedd.families.base)
    trigger: str
    timeout: float
    values: Mapping[str, str] = field(default_factory=dict)
    """The run's named values, as its family names them: a command fills them into its
    `{placeholders}` and exports them as `SCHEDD_<NAME>`. A name the run has no value for is absent."""
    call: ServiceCall | None = None
    """The HTTP call the run makes, when its family runs it by calling a service."""
    on_start: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    """Called by the executor once the work has started (see `started`)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended, as the executor saw it."""

    ok: bool
    error: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    request_payload: str | None = None
    response_status: int | None = None
    response_body: str | None = None


class Executor(Protocol):
    async def run(self, ctx: RunContext) -> Outcome: ...


def started(ctx: RunContext) -> None:
    """Tell the runner that the run's work has started now."""
    if ctx.on_start is not None:
        ctx.on_start()


def truncate(text: str, limit: int = PAYLOAD_LIMIT) -> str:
    """Cut `text` to `limit` bytes of UTF-8, marking how much was dropped."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", "ignore")
    return f"{kept}…[truncated {len(data) - len(kept.encode('utf-8'))} bytes]"
