"""Executors do the work of a run behind one small interface.

The runner builds a `RunContext`, asks `Executors.get(ctx)` for the executor and awaits
`run(ctx)`; it never branches on the executor's type. An executor calls `started(ctx)` at
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
class RunContext:
    """What an executor may know about the run it performs."""

    run_id: int
    run_uid: str
    family: str  # the wire name of a registered family (schedd.families.base)
    trigger: str
    timeout: float
    org_id: str | None = None
    project_id: str | None = None
    cube_id: str | None = None
    full_build: bool | None = None
    service_name: str | None = None
    operation_name: str | None = None
    post_data: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
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
