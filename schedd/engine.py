"""One heap of timers and the loop that fires them.

Timers are `(due, seq, key)`. A key has at most one live timer: `set` pushes a new entry
and records its `seq` as the key's generation, so older entries for the key become stale
and are skipped when they surface. Nothing ever scans the heap to change a timer; it is
rebuilt only when stale entries outnumber live ones.

Keys are small ints carrying a kind in their low bits, so a million timers cost a
million small tuples and nothing else.

Each turn reads the wall and the monotonic clock; when the wall clock moved more or less
than the monotonic one, it was stepped (NTP, `date -s`, a resumed VM or laptop). Cron and
window timers are wall-clock times and stay where they are: after a step forward they come
due at once and the runner's misfire rules apply; after a step back they wait until the
clock catches up, so nothing fires twice. Housekeeping timers are intervals: they move with
the step, so they keep the time left before they are due.

The running loop hands cron timers to their handler `lead` seconds before they are due, so
that a batch is read, planned and recorded by its due time and only the starts are left for
that instant; the handler waits for each timer's due time before it starts anything. Other
kinds are handed over when they are due. A turn driven with an explicit time (tests) uses
no lead.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from schedd import metrics
from schedd.clock import Clock
from schedd.policy import CLOCK_STEP_LARGE, clock_step
from schedd.timefmt import utc_seconds

log = logging.getLogger("schedd.engine")

KIND_BITS = 2
CRON, WINDOW, HOUSEKEEPING = 0, 1, 2
KIND_NAMES = {CRON: "cron", WINDOW: "window", HOUSEKEEPING: "housekeeping"}
INTERVAL_KINDS = frozenset({HOUSEKEEPING})
"""Kinds whose timers measure an interval, not a wall-clock time: they move with a step."""

Handler = Callable[[list[tuple[int, float]], float], Awaitable[None]]
"""Called with [(ident, due), ...] of one kind and the turn's time `at`."""


def make_key(kind: int, ident: int) -> int:
    return (ident << KIND_BITS) | kind


def split_key(key: int) -> tuple[int, int]:
    return key & ((1 << KIND_BITS) - 1), key >> KIND_BITS


class Engine:
    """The timer heap and its loop; handlers per kind turn due timers into work."""

    def __init__(self, clock: Clock, *, slice_seconds: float = 1.0, lead: float = 0.0) -> None:
        self.clock = clock
        self.slice = slice_seconds
        self.lead = lead
        """Seconds before their due time at which the running loop hands over cron timers."""
        self._heap: list[tuple[float, int, int]] = []
        self._live: dict[int, int] = {}
        self._seq = itertools.count()
        self._handlers: dict[int, Handler] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.heartbeat = time.monotonic()
        self.loaded = False
        self.handled_until = 0.0
        """The latest wall time a turn has handled: every timer due by then has fired."""
        self._intervals: dict[int, float] = {}  # key -> due, of the INTERVAL_KINDS timers
        self._reading: tuple[float, float] | None = None  # (wall, monotonic) of the last turn

    # -- timers ----------------------------------------------------------------------

    def on(self, kind: int, handler: Handler) -> None:
        self._handlers[kind] = handler

    def set(self, kind: int, ident: int, due: float) -> None:
        """Arm (or move) the timer of `(kind, ident)` to `due`."""
        key = make_key(kind, ident)
        seq = next(self._seq)
        self._live[key] = seq
        if kind in INTERVAL_KINDS:
            self._intervals[key] = due
        if not self._heap or due < self._heap[0][0]:
            self._wake.set()
        heapq.heappush(self._heap, (due, seq, key))
        self._maybe_rebuild()

    def cancel(self, kind: int, ident: int) -> None:
        """Disarm a timer; its heap entry is dropped lazily."""
        key = make_key(kind, ident)
        self._intervals.pop(key, None)
        if self._live.pop(key, None) is not None:
            self._maybe_rebuild()

    def clear(self, kind: int) -> int:
        """Disarm every timer of `kind` (this instance stops firing them); how many were armed."""
        keys = [key for key in self._live if split_key(key)[0] == kind]
        for key in keys:
            del self._live[key]
            self._intervals.pop(key, None)
        self._heap = [entry for entry in self._heap if entry[2] in self._live and self._live[entry[2]] == entry[1]]
        heapq.heapify(self._heap)
        return len(keys)

    def load(self, kind: int, timers: Iterable[tuple[int, float]]) -> None:
        """Bulk-arm timers at start-up: one heapify, no per-timer sift."""
        self.add_unordered(kind, timers)
        self.restore_order()

    def add_unordered(self, kind: int, timers: Iterable[tuple[int, float]]) -> None:
        """Arm timers without keeping the heap in order: `restore_order()` must follow before
        the loop runs (start-up, in chunks, before one heapify)."""
        live, heap, seqs = self._live, self._heap, self._seq
        intervals = self._intervals if kind in INTERVAL_KINDS else None
        for ident, due in timers:
            key = make_key(kind, ident)
            seq = next(seqs)
            live[key] = seq
            heap.append((due, seq, key))
            if intervals is not None:
                intervals[key] = due

    def restore_order(self) -> None:
        heapq.heapify(self._heap)
        self._wake.set()

    def due_of(self, kind: int, ident: int) -> float | None:
        """The armed due time of a timer (a scan: for tests and diagnostics only)."""
        seq = self._live.get(make_key(kind, ident))
        if seq is None:
            return None
        return next(due for due, s, _ in self._heap if s == seq)

    def __len__(self) -> int:
        return len(self._live)

    @property
    def heap_entries(self) -> int:
        return len(self._heap)

    def next_due(self) -> float | None:
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else None

    def _next_wake(self) -> float | None:
        """When the loop next has work: the head's due time, less the lead for a cron timer."""
        self._drop_stale_head()
        if not self._heap:
            return None
        due, _, key = self._heap[0]
        return due - self.lead if split_key(key)[0] == CRON else due

    def _drop_stale_head(self) -> None:
        heap, live = self._heap, self._live
        while heap and live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)

    def _maybe_rebuild(self) -> None:
        if len(self._heap) > 2 * len(self._live) + 64:
            live = self._live
            self._heap = [entry for entry in self._heap if live.get(entry[2]) == entry[1]]
            heapq.heapify(self._heap)

    def pop_due(self, at: float, lead: float = 0.0) -> dict[int, list[tuple[int, float]]]:
        """Remove every live timer due at or before `at` (cron timers: `at + lead`), grouped by kind."""
        heap, live = self._heap, self._live
        due: dict[int, list[tuple[int, float]]] = {}
        early: list[tuple[float, int, int]] = []  # other kinds inside the lead: not due yet
        until = at + lead
        while heap and heap[0][0] <= until:
            entry = heapq.heappop(heap)
            when, seq, key = entry
            if live.get(key) != seq:
                continue
            kind, ident = split_key(key)
            if when > at and kind != CRON:
                early.append(entry)
                continue
            del live[key]
            if kind in INTERVAL_KINDS:
                self._intervals.pop(key, None)
            due.setdefault(kind, []).append((ident, when))
        for entry in early:
            heapq.heappush(heap, entry)
        return due

    # -- the loop --------------------------------------------------------------------

    def run_pending(self, at: float | None = None, *, lead: float = 0.0) -> int:
        """One turn: hand every due timer to its handler (as tasks); returns how many.

        Without `at`, the turn reads the clock and first reacts to a step of it. `lead`:
        cron timers due up to that many seconds after `at` are handed over too."""
        if at is None:
            at = self.clock.now()
            self._watch_clock(at, self.clock.monotonic())
        if at > self.handled_until:
            self.handled_until = at
        count = 0
        for kind, items in self.pop_due(at, lead).items():
            handler = self._handlers.get(kind)
            if handler is None:
                log.error("action=no_handler kind=%s timers=%d", KIND_NAMES.get(kind, kind), len(items))
                continue
            count += len(items)
            task = asyncio.create_task(self._call(handler, kind, items, at))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return count

    def _watch_clock(self, wall: float, mono: float) -> None:
        """Compare this turn's clock readings with the last turn's; react to a step."""
        last, self._reading = self._reading, (wall, mono)
        if last is None:
            return
        step = clock_step((last[0], wall), (last[1], mono))
        if step:
            self.clock_stepped(step, wall)

    def clock_stepped(self, step: float, at: float) -> None:
        """The wall clock moved by `step` seconds more than time passed: count it, say it,
        and move the interval timers with it. Wall-clock timers stay (see the module doc)."""
        direction = "forward" if step > 0 else "backward"
        metrics.CLOCK_JUMPS.labels(direction).inc()
        metrics.CLOCK_LAST_JUMP.set(step)
        for key, due in list(self._intervals.items()):
            kind, ident = split_key(key)
            self.set(kind, ident, due + step)
        if step > 0:
            log.warning("action=clock_step direction=forward seconds=%.3f at=%s", step, utc_seconds(at))
        else:
            log.warning(
                "action=clock_step direction=backward seconds=%.3f at=%s handled_until=%s large=%d",
                -step, utc_seconds(at), utc_seconds(self.handled_until), int(-step >= CLOCK_STEP_LARGE))

    async def _call(self, handler: Handler, kind: int, items: list[tuple[int, float]], at: float) -> None:
        try:
            await handler(items, at)
        except Exception:
            log.exception("action=handler_failed kind=%s timers=%d", KIND_NAMES.get(kind, kind), len(items))

    async def run_until_idle(self) -> int:
        """Fire what is due now and wait for the handlers to finish (tests)."""
        fired = self.run_pending()
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        return fired

    async def run(self) -> None:
        """Fire timers as they come due, until `stop()`."""
        self._stopping = False
        self.loaded = True
        while not self._stopping:
            self.heartbeat = time.monotonic()
            if self.run_pending(lead=self.lead):
                await asyncio.sleep(0)
                continue
            head = self._next_wake()
            now = self.clock.now()
            delay = self.slice if head is None else min(self.slice, max(0.0, head - now))
            self._wake.clear()
            if delay > 0:
                await self.clock.wait(self._wake, delay)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def drain(self) -> None:
        """Wait for handlers already started (after `stop()`)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


