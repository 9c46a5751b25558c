"""Time as the engine sees it: the wall clock, or a test clock moved by hand.

Only the engine loop reads a clock; everything below it takes `at=` (epoch seconds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

JUMP_THRESHOLD = 1.0
"""A step of the wall clock larger than this (seconds) is a clock jump; NTP slewing is far smaller."""


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time (may return early)."""

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        """Wait until `event` is set or `seconds` of this clock's time have passed."""


class WallClock:
    """The host's real time."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), max(0.0, seconds))
        except TimeoutError:
            pass


class TestClock:
    """A clock that moves only when a test calls `advance` or `set`.

    `sleep` returns once the clock has been moved to or past its deadline, so a loop
    driven by this clock wakes exactly when the test says time has passed.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._moved = asyncio.Event()
        self._parked: set[object] = set()  # waiters that went to sleep since the clock last moved
        self._parking = asyncio.Event()

    def now(self) -> float:
        return self._now

    def set(self, at: float) -> None:
        self._now = float(at)
        self._parked.clear()
        self._moved.set()
        self._moved = asyncio.Event()

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    async def sleep(self, seconds: float) -> None:
        deadline = self._now + max(0.0, seconds)
        waiter = object()
        try:
            while self._now < deadline:
                self._park(waiter)
                await self._moved.wait()
        finally:
            self._parked.discard(waiter)

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        deadline = self._now + max(0.0, seconds)
        waiter = object()
        try:
            while self._now < deadline and not event.is_set():
                moved = asyncio.ensure_future(self._moved.wait())
                woken = asyncio.ensure_future(event.wait())
                self._park(waiter)
                try:
                    await asyncio.wait((moved, woken), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    moved.cancel()
                    woken.cancel()
        finally:
            self._parked.discard(waiter)

    def _park(self, waiter: object) -> None:
        self._parked.add(waiter)
        self._parking.set()
        self._parking = asyncio.Event()

    async def parked(self, count: int = 1) -> None:
        """Return once `count` coroutines sleep on this clock, each gone to sleep since it last moved.

        A test moves the clock, then awaits this to know that the code it drives has done
        everything the new time allows and sleeps again, without real time passing. A
        coroutine woken by its event rather than by the clock still counts until it runs:
        after setting such an event, await what the event causes instead.
        """
        while len(self._parked) < count:
            await self._parking.wait()


async def watch_jumps(
    on_jump: Callable[[float], None],
    *,
    every: float = 1.0,
    threshold: float = JUMP_THRESHOLD,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Call `on_jump(seconds)` whenever the wall clock stepped against the monotonic clock.

    The offset between the two clocks stays put however long a check is delayed; it
    changes only when someone (an admin, NTP stepping, a resumed VM) sets the wall clock.
    A positive step means the clock moved forward.
    """
    offset = wall() - monotonic()
    while True:
        await asyncio.sleep(every)
        now = wall() - monotonic()
        step, offset = now - offset, now
        if abs(step) > threshold:
            on_jump(step)
