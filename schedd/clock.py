"""Time as the engine sees it: the wall clock, or a test clock moved by hand.

Only the engine loop reads a clock; everything below it takes `at=` (epoch seconds).
Each clock also has a monotonic side, which never steps: waits are measured on it, and
the engine compares the two to tell time passing from the wall clock being stepped.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never steps, and does not count a suspended host."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time (may return early)."""

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        """Wait until `event` is set or `seconds` of this clock's time have passed."""


class WallClock:
    """The host's real time."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), max(0.0, seconds))
        except TimeoutError:
            pass


class TestClock:
    """A clock that moves only when a test calls `advance`, `set` or `step`.

    `advance` and a forward `set` are time passing: the wall and monotonic sides move
    together. `step` (and a backward `set`) moves the wall side alone, as NTP, `date -s`
    or a resumed VM does. `sleep` and `wait` are measured on the monotonic side, as
    `WallClock`'s are, and return once the clock has been moved to or past their deadline.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._mono = 0.0
        self._moved = asyncio.Event()
        self._parked: set[object] = set()  # waiters that went to sleep since the clock last moved
        self._parking = asyncio.Event()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def set(self, at: float) -> None:
        """Move the wall clock to `at`: forward as time passing, backward as a step."""
        self._mono += max(0.0, float(at) - self._now)
        self._now = float(at)
        self._notify()

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    def step(self, seconds: float) -> None:
        """Step the wall clock by `seconds` (negative: back) while no time passes."""
        self._now += float(seconds)
        self._notify()

    def _notify(self) -> None:
        self._parked.clear()
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        deadline = self._mono + max(0.0, seconds)
        waiter = object()
        try:
            while self._mono < deadline:
                self._park(waiter)
                await self._moved.wait()
        finally:
            self._parked.discard(waiter)

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        deadline = self._mono + max(0.0, seconds)
        waiter = object()
        try:
            while self._mono < deadline and not event.is_set():
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
