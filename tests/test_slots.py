"""The slot pool on its own: the total, the cap per org, the lines and their turns."""

from __future__ import annotations

import random

import pytest

from schedd.slots import Grant, SlotPool


def pool(total: int = 4, cap: int = 2, waiting: int = 100, caps: dict[str, int] | None = None) -> SlotPool[str]:
    caps = caps or {}
    return SlotPool(total, lambda t: caps.get(t, cap), lambda t: waiting)


def test_slots_are_granted_until_the_total_then_runs_wait():
    p = pool(total=2, cap=2)
    assert p.acquire("a", "a1") is Grant.SLOT
    assert p.acquire("b", "b1") is Grant.SLOT
    assert p.acquire("c", "c1") is Grant.WAIT_TOTAL
    assert (p.in_use, p.waiting) == (2, 1)
    assert p.release("a") == ["c1"]
    assert (p.in_use, p.waiting, p.held("c")) == (2, 0, 1)


def test_an_org_at_its_cap_waits_while_slots_stay_free_for_the_others():
    p = pool(total=4, cap=2)
    assert [p.acquire("a", f"a{i}") for i in range(4)] == [
        Grant.SLOT, Grant.SLOT, Grant.WAIT_TENANT, Grant.WAIT_TENANT]
    assert p.in_use == 2
    assert p.acquire("b", "b1") is Grant.SLOT
    assert p.acquire("b", "b2") is Grant.SLOT
    assert p.in_use == 4


def test_freed_slots_go_round_robin_across_waiting_orgs():
    p = pool(total=2, cap=2)
    p.acquire("a", "a0")
    p.acquire("a", "a1")
    for i in range(2, 6):
        p.acquire("a", f"a{i}")  # a's backlog, waiting first
    p.acquire("b", "b1")
    p.acquire("b", "b2")
    p.acquire("c", "c1")
    started = []
    for _ in range(7):
        tenant = {"a": "a", "b": "b", "c": "c"}[(started[-1] if started else "a0")[0]]
        started += p.release(tenant)
    # a holds both slots, so the first freed slot goes to b and the next to c; a then
    # takes turns with b, and only when nobody else waits does a take slot after slot.
    assert started == ["b1", "c1", "a2", "b2", "a3", "a4", "a5"]


def test_an_org_back_under_its_cap_rejoins_at_the_back_of_the_turns():
    p = pool(total=3, cap=1)
    p.acquire("a", "a0")
    p.acquire("a", "a1")  # a at its cap: waits
    p.acquire("b", "b0")
    p.acquire("b", "b1")
    p.acquire("c", "c0")
    p.acquire("c", "c1")
    assert p.in_use == 3
    assert p.release("b") == ["b1"]  # a and c are at their caps; b's slot goes back to b
    assert p.release("a") == ["a1"]
    assert p.release("c") == ["c1"]


def test_a_line_is_bounded_and_force_goes_past_the_bound():
    p = pool(total=1, cap=1, waiting=2)
    p.acquire("a", "a0")
    assert p.acquire("a", "a1") is Grant.WAIT_TENANT
    assert p.acquire("a", "a2") is Grant.WAIT_TENANT
    assert p.acquire("a", "a3") is Grant.FULL
    assert p.acquire("b", "b0") is Grant.WAIT_TOTAL  # another org's line is its own
    assert p.acquire("a", "a4", force=True) is Grant.WAIT_TENANT
    assert (p.line("a"), p.waiting) == (3, 4)


def test_remove_takes_a_run_out_of_its_line_and_out_of_the_turns():
    p = pool(total=1, cap=1)
    p.acquire("a", "a0")
    p.acquire("b", "b0")
    p.acquire("c", "c0")
    assert p.remove("b", "b0") is True
    assert p.remove("b", "b0") is False
    assert p.release("a") == ["c0"]
    assert p.waiting == 0


def test_a_new_run_of_an_org_with_a_line_queues_behind_it_even_with_a_free_slot():
    p = pool(total=3, cap=1)
    p.acquire("a", "a0")
    p.acquire("a", "a1")
    assert p.acquire("a", "a2") is Grant.WAIT_TENANT
    assert p.release("a") == ["a1"]  # first in, first out within an org


def test_resize_admits_waiting_runs_when_the_total_grows():
    p = pool(total=1, cap=5)
    p.acquire("a", "a0")
    p.acquire("a", "a1")  # a holds the only slot: at its cap (never above the total)
    p.acquire("b", "b0")
    assert p.resize(3) == ["b0", "a1"]
    assert p.in_use == 3


def test_lowered_cap_holds_back_an_org_at_its_next_turn():
    caps = {"a": 3}
    p = SlotPool(4, lambda t: caps.get(t, 3), lambda t: 100)
    for i in range(3):
        p.acquire("a", f"a{i}")
    p.acquire("b", "b0")
    p.acquire("a", "a3")
    p.acquire("b", "b1")
    caps["a"] = 1
    assert p.release("b") == ["b1"]  # a is above its new cap: it sits out


def test_cap_is_never_above_the_total_nor_below_one():
    assert pool(total=2, cap=10).cap("x") == 2
    assert pool(total=2, cap=0).cap("x") == 1


def test_release_of_a_tenant_without_a_slot_is_a_bug():
    with pytest.raises(ValueError):
        pool().release("nobody")


def test_random_operations_keep_the_invariants():
    rng = random.Random(7)
    caps = {"a": 2, "b": 3, "c": 1, "d": 5}
    p = SlotPool(6, lambda t: caps[t], lambda t: 4)
    holding: dict[str, int] = {t: 0 for t in caps}
    waiting: dict[str, list[int]] = {t: [] for t in caps}
    n = 0
    for _ in range(5000):
        tenant = rng.choice("abcd")
        if rng.random() < 0.55:
            n += 1
            grant = p.acquire(tenant, n)
            if grant is Grant.SLOT:
                holding[tenant] += 1
            elif grant is not Grant.FULL:
                waiting[tenant].append(n)
        elif holding[tenant]:
            holding[tenant] -= 1
            for item in p.release(tenant):
                owner = next(t for t, line in waiting.items() if line and line[0] == item)
                waiting[owner].pop(0)  # first in, first out per org
                holding[owner] += 1
        assert p.in_use == sum(holding.values()) <= p.total
        assert p.waiting == sum(len(line) for line in waiting.values())
        for t in caps:
            assert holding[t] <= caps[t]
            assert len(waiting[t]) <= 4
            # No waiting run could start: its org is at its cap, or every slot is held.
            if waiting[t]:
                assert holding[t] >= caps[t] or p.in_use == p.total
