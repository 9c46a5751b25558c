"""Run slots shared between orgs: a limit on all runs, a cap per org, turns among waiting orgs.

Pure bookkeeping (no I/O, no clock). The runner asks for a slot for each run it records
and, whenever a run ends, learns which waiting runs may start. The rules:

- at most `total` runs hold a slot at once (`[scheduler] max_concurrent_runs`);
- one org (a *tenant*; service jobs, which belong to no org, are the tenant "") holds at
  most `cap(tenant)` of them (`[quotas] max_concurrent_runs`), so while one org is at its
  cap, `total - cap` slots stay free for every other org: a run of an org without a
  backlog starts at once, without waiting for a busy org's runs to end;
- a run that gets no slot waits in its tenant's line, first in first out; a line holds at
  most `max_waiting(tenant)` runs (`[quotas] max_queued_runs`), and a run beyond that is
  refused (`FULL`) for the caller to skip or reject;
- when slots free up, the tenants with waiting runs take turns, one run per turn, in the
  order they started waiting; a tenant at its cap sits out until one of its runs ends
  and then rejoins at the back.

Every operation is O(1) but `remove` (a run leaving a line early: shutdown, a failed
write), which is O(line). Invariant after every call: no waiting run could start, i.e.
each tenant with a line is at its cap, or every slot is held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Grant(Enum):
    """What `SlotPool.acquire` decided for one run."""

    SLOT = "slot"
    """It holds a slot: start it."""
    WAIT_TENANT = "tenant"
    """It waits in line: its tenant holds as many slots as its cap allows."""
    WAIT_TOTAL = "total"
    """It waits in line: every slot is held."""
    FULL = "full"
    """Refused: its tenant's line is as long as it may be."""


class SlotPool(Generic[T]):
    """`total` slots shared by tenants, each capped, with a waiting line per tenant."""

    def __init__(
        self, total: int, cap: Callable[[str], int], max_waiting: Callable[[str], int]
    ) -> None:
        self.total = total
        self._cap = cap
        self._max_waiting = max_waiting
        self._held: dict[str, int] = {}
        self._lines: dict[str, deque[T]] = {}
        self._turns: deque[str] = deque()  # tenants with a line that may take a slot, in turn
        self._capped: set[str] = set()  # tenants with a line, at their cap
        self.in_use = 0
        self.waiting = 0

    # -- reading -----------------------------------------------------------------------

    def held(self, tenant: str) -> int:
        """Slots `tenant` holds now."""
        return self._held.get(tenant, 0)

    def line(self, tenant: str) -> int:
        """Runs of `tenant` waiting for a slot."""
        line = self._lines.get(tenant)
        return len(line) if line else 0

    def cap(self, tenant: str) -> int:
        """The most slots `tenant` may hold: its cap, never more than `total`, never less than 1."""
        return max(1, min(self.total, self._cap(tenant)))

    # -- changes -------------------------------------------------------------------------

    def acquire(self, tenant: str, item: T, *, force: bool = False) -> Grant:
        """A slot for `item` now, or a place in its tenant's line (`force`: even past its length)."""
        held = self._held.get(tenant, 0)
        line = self._lines.get(tenant)
        if not line and held < self.cap(tenant) and self.in_use < self.total:
            self._hold(tenant)
            return Grant.SLOT
        if not force and (len(line) if line else 0) >= self._max_waiting(tenant):
            return Grant.FULL
        if line is None:
            line = self._lines[tenant] = deque()
            self._queue_tenant(tenant)
        line.append(item)
        self.waiting += 1
        return Grant.WAIT_TENANT if held >= self.cap(tenant) else Grant.WAIT_TOTAL

    def release(self, tenant: str) -> list[T]:
        """`tenant` gave a slot back; returns the waiting runs that now hold a slot, in order."""
        held = self._held.get(tenant, 0) - 1
        if held < 0:
            raise ValueError(f"tenant {tenant!r} holds no slot")
        if held:
            self._held[tenant] = held
        else:
            del self._held[tenant]
        self.in_use -= 1
        if tenant in self._capped and held < self.cap(tenant):
            self._capped.discard(tenant)
            self._turns.append(tenant)
        return self._admit()

    def remove(self, tenant: str, item: T) -> bool:
        """Take a waiting `item` out of its line; False when it was not waiting."""
        line = self._lines.get(tenant)
        if not line or item not in line:
            return False
        line.remove(item)
        self.waiting -= 1
        if not line:
            self._drop_line(tenant)
        return True

    def resize(self, total: int) -> list[T]:
        """A new `total` (or new caps); returns the waiting runs that now hold a slot."""
        self.total = total
        for tenant in list(self._capped):
            if self._held.get(tenant, 0) < self.cap(tenant):
                self._capped.discard(tenant)
                self._turns.append(tenant)
        return self._admit()

    def drain(self) -> list[T]:
        """Empty every line (shutdown); returns what waited, tenant by tenant."""
        items = [item for line in self._lines.values() for item in line]
        self._lines.clear()
        self._turns.clear()
        self._capped.clear()
        self.waiting = 0
        return items

    # -- inside ----------------------------------------------------------------------------

    def _hold(self, tenant: str) -> None:
        self._held[tenant] = self._held.get(tenant, 0) + 1
        self.in_use += 1

    def _queue_tenant(self, tenant: str) -> None:
        if self._held.get(tenant, 0) >= self.cap(tenant):
            self._capped.add(tenant)
        else:
            self._turns.append(tenant)

    def _drop_line(self, tenant: str) -> None:
        del self._lines[tenant]
        self._capped.discard(tenant)
        if tenant in self._turns:
            self._turns.remove(tenant)

    def _admit(self) -> list[T]:
        granted: list[T] = []
        while self.in_use < self.total and self._turns:
            tenant = self._turns.popleft()
            if self._held.get(tenant, 0) >= self.cap(tenant):  # its cap was lowered
                self._capped.add(tenant)
                continue
            line = self._lines[tenant]
            granted.append(line.popleft())
            self.waiting -= 1
            self._hold(tenant)
            if not line:
                del self._lines[tenant]
            else:
                self._queue_tenant(tenant)
        return granted
