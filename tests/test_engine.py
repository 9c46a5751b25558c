"""The timer heap: lazy deletion, rebuilds, the loop waking for sooner timers."""

from __future__ import annotations

import asyncio
import random

from schedd.clock import TestClock
from schedd.engine import CRON, HOUSEKEEPING, WINDOW, Engine

T0 = 1_767_225_600.0


def test_pop_due_returns_each_live_timer_once_in_due_order():
    engine = Engine(TestClock(T0))
    engine.set(CRON, 1, T0 + 30)
    engine.set(CRON, 2, T0 + 10)
    engine.set(WINDOW, 1, T0 + 20)
    assert engine.pop_due(T0 + 5) == {}
    assert engine.pop_due(T0 + 30) == {CRON: [(2, T0 + 10), (1, T0 + 30)], WINDOW: [(1, T0 + 20)]}
    assert engine.pop_due(T0 + 1000) == {}
    assert len(engine) == 0


def test_moving_a_timer_leaves_only_the_new_due_time():
    engine = Engine(TestClock(T0))
    engine.set(CRON, 7, T0 + 10)
    engine.set(CRON, 7, T0 + 100)
    assert engine.pop_due(T0 + 50) == {}
    assert engine.pop_due(T0 + 100) == {CRON: [(7, T0 + 100)]}


def test_cancelled_timer_never_fires():
    engine = Engine(TestClock(T0))
    engine.set(CRON, 7, T0 + 10)
    engine.cancel(CRON, 7)
    engine.cancel(CRON, 8)  # unknown: no effect
    assert engine.pop_due(T0 + 50) == {}
    assert len(engine) == 0


def test_same_ident_of_different_kinds_are_distinct_timers():
    engine = Engine(TestClock(T0))
    engine.set(CRON, 1, T0 + 1)
    engine.set(HOUSEKEEPING, 1, T0 + 1)
    engine.cancel(CRON, 1)
    assert engine.pop_due(T0 + 1) == {HOUSEKEEPING: [(1, T0 + 1)]}


def test_ten_thousand_timers_with_random_changes_match_a_plain_model():
    rng = random.Random(7)
    engine = Engine(TestClock(T0))
    model: dict[int, float] = {}
    for step in range(30_000):
        ident = rng.randrange(10_000)
        if rng.random() < 0.3:
            engine.cancel(CRON, ident)
            model.pop(ident, None)
        else:
            due = T0 + rng.randrange(100_000)
            engine.set(CRON, ident, due)
            model[ident] = due
        assert engine.heap_entries <= 2 * len(engine) + 65  # stale entries get rebuilt away
    assert len(engine) == len(model)
    fired = engine.pop_due(T0 + 100_000).get(CRON, [])
    assert sorted(fired) == sorted(model.items())
    assert [due for _, due in fired] == sorted(due for _, due in fired)


def test_load_heapifies_timers_in_bulk():
    engine = Engine(TestClock(T0))
    engine.load(CRON, [(i, T0 + (i * 7919) % 1000) for i in range(5000)])
    assert len(engine) == 5000
    fired = engine.pop_due(T0 + 1000)[CRON]
    assert len(fired) == 5000
    assert [due for _, due in fired] == sorted(due for _, due in fired)


async def test_loop_fires_timers_when_the_test_clock_reaches_them():
    clock = TestClock(T0)
    engine = Engine(clock)
    seen: list[tuple[int, float, float]] = []

    async def handler(items, at):
        seen.extend((ident, due, at) for ident, due in items)

    engine.on(CRON, handler)
    engine.set(CRON, 1, T0 + 60)
    task = asyncio.create_task(engine.run())
    await clock.parked()  # the loop has handled T0 and sleeps on the clock
    assert seen == []
    clock.advance(59)
    await clock.parked()  # ... and T0 + 59
    assert seen == []
    clock.advance(1)
    await clock.parked()  # ... and T0 + 60, after starting the handler
    assert seen == [(1, T0 + 60, T0 + 60)]
    engine.stop()
    await task


async def test_a_sooner_timer_wakes_the_sleeping_loop():
    clock = TestClock(T0)
    engine = Engine(clock, slice_seconds=3600)
    seen: list[int] = []
    fired = asyncio.Event()

    async def handler(items, at):
        seen.extend(ident for ident, _ in items)
        fired.set()

    engine.on(CRON, handler)
    engine.set(CRON, 1, T0 + 3000)
    task = asyncio.create_task(engine.run())
    await clock.parked()  # asleep until the first timer, as far as the clock goes
    engine.set(CRON, 2, T0)  # due now: the loop must not sleep until the first timer
    async with asyncio.timeout(5):  # the clock never moves: only the wake-up can fire it
        await fired.wait()
    assert seen == [2]
    engine.stop()
    await task


async def test_run_until_idle_waits_for_handlers():
    clock = TestClock(T0)
    engine = Engine(clock)
    done = []

    async def handler(items, at):
        await asyncio.sleep(0)
        done.extend(items)

    engine.on(HOUSEKEEPING, handler)
    engine.set(HOUSEKEEPING, 0, T0)
    assert await engine.run_until_idle() == 1
    assert done == [(0, T0)]
