"""The store through its Protocol, for every backend: what a new backend must pass.

`BACKENDS` names each implementation of `schedd.store.protocol.Store`, made from where
its database is (`where`: an SQLite file in the test's directory, or a database of its
own on the tests' PostgreSQL server); the `store` fixture runs every test here against
each. `twin` is a second store on the same database, as a second process would open it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from schedd.compose import install_families
from schedd.errors import Conflict, StoreError
from schedd.families.base import WIRE_NAME
from schedd.states import Family, RunState, WindowState
from schedd.store.db import check_backup
from schedd.store.postgres.store import PgStore
from schedd.store.protocol import Store
from schedd.store.reports import Visibility
from schedd.store.runs import Finish, Fired, NewRun, Outcome
from schedd.store.schedules import Cap, CapReached, NewSchedule, Scope
from schedd.store.sqlite import SqliteStore
from schedd.store.windows import NewEvent, Window
from tests.support.sql import count, execute

T0 = 1_767_225_600.0

BACKENDS: dict[str, Callable[[str], Store]] = {
    "sqlite": lambda where: SqliteStore.at(where),
    "postgres": lambda where: PgStore.at(where),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request) -> str:
    return request.param


@pytest.fixture
def where(backend, request, tmp_path) -> str:
    """Where the test's database is: a path for SQLite, a URL for PostgreSQL."""
    return request.getfixturevalue("pg_url") if backend == "postgres" else str(tmp_path / "s.db")


@pytest.fixture
async def store(backend, where) -> Store:
    install_families()  # a schedule's overlap key is its family's
    made = BACKENDS[backend](where)
    await made.open()
    yield made
    if made.is_open:
        await made.close()


@pytest.fixture
async def twin(store, backend, where) -> Store:
    """A second store on the database of `store`, with connections of its own."""
    made = BACKENDS[backend](where)
    await made.open()
    yield made
    if made.is_open:
        await made.close()


def schedule(uid: str, **kw) -> NewSchedule:
    base = dict(uid=uid, family=Family.MAINTENANCE, cron="0 0 4 ? * * *", cron_normalized="0 0 4 ? * * *",
                timezone="UTC", created_at=T0, org_id="acme", next_fire_at=T0 + 60)
    base.update(kw)
    return NewSchedule(**base)


async def test_accounts_orgs_users_and_tokens(store: Store):
    assert await store.accounts.create_org("acme", T0) is True
    assert await store.accounts.create_org("acme", T0) is False
    assert await store.accounts.org_exists("acme") and not await store.accounts.org_exists("globex")
    user_id = await store.accounts.create_user("alice", "hash", email=None, is_admin=False, orgs=("acme",), at=T0)
    with pytest.raises(Conflict):
        await store.accounts.create_user("alice", "hash", email=None, is_admin=False, orgs=(), at=T0)
    user = await store.accounts.find_user("alice")
    assert user is not None and user.id == user_id and user.orgs == ("acme",)
    await store.accounts.add_tokens(user_id, [(b"h1", "access", T0 + 60)], name="ci", at=T0)
    record = await store.accounts.lookup_token(b"h1")
    assert record is not None and record.user.name == "alice"
    assert await store.accounts.revoke_token(b"h1", T0 + 1) is True
    assert await store.accounts.revoke_token(b"h1", T0 + 2) is False


async def test_schedules_insert_read_change_and_delete(store: Store):
    await store.accounts.ensure_org("acme", T0)
    made = await store.schedules.insert(schedule("s1"))
    assert await store.schedules.get(made.id) == made
    assert await store.schedules.get_by_uid(Family.MAINTENANCE, "s1") == made
    assert [s.uid for s in await store.schedules.list_scope(Family.MAINTENANCE, "acme")] == ["s1"]
    changed = await store.schedules.replace(made.id, schedule("s1", cron="0 0 5 ? * * *"), by="bob", at=T0 + 1)
    assert changed.cron == "0 0 5 ? * * *" and changed.updated_by == "bob"
    assert await store.schedules.set_active(made.id, False, None, by="bob", at=T0 + 2)
    batches = [b async for b in store.schedules.scope_batches(Scope(Family.MAINTENANCE, "acme"))]
    assert [s.uid for batch in batches for s, _ in batch] == ["s1"]
    assert [row async for chunk in store.schedules.due_index() for row in chunk] == []
    assert await store.schedules.delete(made.id) and await store.schedules.get(made.id) is None


async def test_runs_recorded_are_read_back_and_reported(store: Store):
    await store.accounts.ensure_org("acme", T0)
    made = await store.schedules.insert(schedule("s1"))
    for i, state in enumerate((RunState.DONE, RunState.FAILED, RunState.INPROGRESS)):
        await store.runs.insert(NewRun(
            uid=f"r{i}", family=Family.MAINTENANCE, overlap_key=made.overlap_key, trigger="Scheduled",
            state=state, created_at=T0 + i, schedule_id=made.id, org_id="acme"))
    page = await store.runs.list_org(Family.MAINTENANCE, "acme", limit=10, offset=0)
    assert [(r.uid, r.state) for r in page] == [("r2", "inprogress"), ("r1", "failed"), ("r0", "done")]
    assert [r.uid for r in await store.runs.open_for_key(made.overlap_key)] == ["r2"]
    assert await store.runs.count_schedule(made.id) == 3
    seen = Visibility(orgs=("acme",), hidden=(Family.SERVICE,))
    hours = await store.reports.outcomes_by_hour(seen, since=T0 - 1)
    assert sum(n for by_state in hours.values() for n in by_state.values()) == 3
    assert await store.runs.delete_older(made.id, T0 + 10) == 2  # the open run stays


async def test_windows_and_grants(store: Store):
    window = Window(id=0, name="db upgrade", description=None, external_reference=None, external_link=None,
                    status=WindowState.SCHEDULED, scope_id=1, service_id=2, service_status="down",
                    creation_date=T0, scheduled_start_date=T0 + 60, scheduled_end_date=T0 + 120,
                    start_date=None, end_date=None)
    made = await store.windows.insert(window, NewEvent("Maintenance created", "create"), at=T0)
    assert made.status == "scheduled" and [e.content for e in made.events] == ["Maintenance created"]
    assert await store.windows.add_event(made.id, NewEvent("note", "comment"), at=T0 + 1)
    got = await store.windows.get(made.id, internal=True)
    assert got is not None and [e.content for e in got.events] == ["Maintenance created", "note"]
    assert [w.id for w in await store.windows.open_windows()] == [made.id]
    assert await store.windows.delete(made.id) and await store.windows.get(made.id, internal=True) is None

    user_id = await store.accounts.create_user("grace", "hash", email=None, is_admin=False, orgs=(), at=T0)
    assert await store.grants.grant(user_id, 7, at=T0) is True
    assert await store.grants.scopes_of(user_id) == frozenset({7})
    assert await store.grants.revoke(user_id, 7) is True
    assert await store.grants.scopes_of(user_id) == frozenset()


async def test_lifecycle_writes_survive_close_and_backup(store: Store, tmp_path):
    await store.accounts.ensure_org("acme", T0)
    await store.flush()
    await store.backup(tmp_path / "copy.db")
    assert check_backup(tmp_path / "copy.db") > 0
    await store.close()
    assert not store.is_open
    await store.open()
    assert await store.accounts.org_exists("acme")


# -- two stores on one database: what one SQLite writer did by being alone ----------------

def service_job(uid: str, name: str) -> NewSchedule:
    return schedule(uid, family=Family.SERVICE, org_id=None, name=name)


def run(uid: str, schedule_id: int, at: float = T0) -> NewRun:
    return NewRun(uid=uid, family=Family.MAINTENANCE, overlap_key=f"m:{schedule_id}", trigger="Scheduled",
                  state=RunState.DONE, created_at=at, schedule_id=schedule_id, org_id="acme")


async def test_a_name_taken_at_once_by_two_stores_goes_to_one(store: Store, twin: Store):
    tries = [(store if n % 2 else twin).schedules.insert(service_job(f"j{n}", "nightly")) for n in range(8)]
    outcomes = await asyncio.gather(*tries, return_exceptions=True)
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(made) == 1 and all(isinstance(o, Conflict) for o in outcomes if o is not made[0])
    assert [s.uid for s in await twin.schedules.list_family(Family.SERVICE)] == [made[0].uid]


async def test_a_run_uid_recorded_at_once_by_two_stores_is_recorded_once(store: Store, twin: Store):
    await store.accounts.ensure_org("acme", T0)
    made = await store.schedules.insert(schedule("s1"))
    outcomes = await asyncio.gather(store.runs.insert(run("r1", made.id)), twin.runs.insert(run("r1", made.id)),
                                    return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["StoreError", "int"]
    assert all(isinstance(o, (int, StoreError)) for o in outcomes)
    assert await twin.runs.count_schedule(made.id) == 1


async def test_a_cap_filled_from_two_stores_at_once_holds(store: Store, twin: Store):
    await store.accounts.ensure_org("acme", T0)
    cap = Cap(limit=3, org_id="acme")
    tries = [(store if n % 2 else twin).schedules.insert(schedule(f"s{n}"), cap=cap) for n in range(10)]
    outcomes = await asyncio.gather(*tries, return_exceptions=True)
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 3
    assert sum(isinstance(o, CapReached) for o in outcomes) == 7
    assert len(await twin.schedules.list_scope(Family.MAINTENANCE, "acme")) == 3


async def test_runs_written_by_two_stores_page_newest_first_without_gaps(store: Store, twin: Store):
    await store.accounts.ensure_org("acme", T0)
    made = await store.schedules.insert(schedule("s1"))
    ids = await asyncio.gather(*[(store if n % 2 else twin).runs.insert(run(f"r{n}", made.id, T0 + n))
                                 for n in range(40)])
    assert len(set(ids)) == 40
    pages = [await store.runs.list_schedule(made.id, limit=7, offset=offset) for offset in range(0, 42, 7)]
    assert [r.id for page in pages for r in page] == sorted(ids, reverse=True)
    org_page = await twin.runs.list_org(Family.MAINTENANCE, "acme", limit=100, offset=0)
    assert [r.id for r in org_page] == sorted(ids, reverse=True)
    summaries = await twin.runs.list_schedule_summaries(made.id, limit=5, offset=3)
    assert [r.id for r in summaries] == sorted(ids, reverse=True)[3:8]
    assert await store.runs.fires_by_schedule() == {made.id: 40}
    assert await store.runs.latest_created() == T0 + 39


def skip_text(fires: int, first: float, last: float) -> str:
    return f"{fires} fires skipped from {first:.0f} to {last:.0f}"


def skip(uid: str, schedule_id: int, due: float, reason: str = "overlap") -> NewRun:
    return NewRun(uid=uid, family=Family.MAINTENANCE, overlap_key=f"m:{schedule_id}", trigger="Scheduled",
                  state=RunState.SKIPPED, created_at=due, schedule_id=schedule_id, org_id="acme", due_at=due,
                  ended_at=due, skip_reason=reason)


async def test_the_runner_writes_through_the_fires_group(store: Store):
    await store.accounts.ensure_org("acme", T0)
    a, b = await store.schedules.insert(schedule("a")), await store.schedules.insert(schedule("b"))
    queued = NewRun(uid="q1", family=Family.MAINTENANCE, overlap_key=a.overlap_key, trigger="Scheduled",
                    state=RunState.QUEUED, created_at=T0, schedule_id=a.id, org_id="acme", due_at=T0)
    ids, joined = await store.fires.record_fires(
        [(skip("k1", b.id, T0), skip_text), (queued, None), (skip("k2", b.id, T0 + 1), skip_text)],
        [Fired(a.id, T0 + 60, ("q1", "queued")), Fired(b.id, T0 + 61)], skip_since=T0 - 86400, at=T0)
    assert ids[0] == ids[2] and ids[1] != ids[0] and joined == [Family.MAINTENANCE]
    joint = await store.runs.get_by_uid("k1")
    assert (joint.fires, joint.due_at, joint.last_due_at, joint.error) == (2, T0, T0 + 1, skip_text(2, T0, T0 + 1))
    got_a, got_b = await store.schedules.get(a.id), await store.schedules.get(b.id)
    assert (got_a.next_fire_at, got_a.last_run_uid, got_a.last_run_status) == (T0 + 60, "q1", "queued")
    assert (got_b.next_fire_at, got_b.last_run_uid) == (T0 + 61, None)
    # a skip of another reason starts a record of its own; one begun before `since` is not joined
    assert (await store.fires.record_skip(skip("k3", b.id, T0 + 2, "misfire"), skip_text, since=T0))[1] is False
    assert (await store.fires.record_skip(skip("k4", b.id, T0 + 3, "misfire"), skip_text, since=T0 + 3))[1] is False

    assert await store.fires.mark_started(ids[1], T0 + 2) is True
    assert await store.fires.mark_started(ids[1], T0 + 3) is False  # it was not queued any more
    now_id = await store.fires.start_now(NewRun(
        uid="n1", family=Family.MAINTENANCE, overlap_key=a.overlap_key, trigger="Manual", state=RunState.INPROGRESS,
        created_at=T0 + 4, schedule_id=a.id, org_id="acme", started_at=T0 + 4), a.id)
    assert (await store.schedules.get(a.id)).last_run_uid == "n1"
    assert [r.uid for r in await store.runs.open_for_key(a.overlap_key)] == ["q1", "n1"]
    await store.fires.finish(ids[1], Finish(state=RunState.DONE, ended_at=T0 + 5, error=None),
                             Outcome(a.id, ok=True, counted=True, status="done", run_uid="q1", at=T0 + 5))
    await store.fires.finish(now_id, None, Outcome(a.id, ok=False, counted=True, status="failed", run_uid="n1",
                                                   at=T0 + 6))
    done = await store.runs.get_by_uid("q1")
    assert (done.state, done.started_at, done.ended_at) == ("done", T0 + 2, T0 + 5)
    assert await store.runs.get_by_uid("n1") is None  # its history keeps nothing
    counted = await store.schedules.get(a.id)
    assert (counted.success_count, counted.fail_count, counted.last_run_status) == (1, 1, "failed")

    left_open = await store.fires.start_now(NewRun(
        uid="o1", family=Family.MAINTENANCE, overlap_key=b.overlap_key, trigger="Manual", state=RunState.QUEUED,
        created_at=T0 + 7, schedule_id=b.id, org_id="acme"), b.id)
    assert await store.fires.interrupt_open(T0 + 8, "crash") == [(left_open, b.id, "o1")]
    interrupted = await store.schedules.get(b.id)
    assert (interrupted.fail_count, interrupted.last_run_status) == (1, "interrupted")
    assert (await store.runs.get_by_uid("o1")).state == "interrupted"


async def test_runs_started_and_ended_together_are_each_recorded(store: Store):
    """The group-committed writes: many at once, each answered with its own result."""
    await store.accounts.ensure_org("acme", T0)
    made = await store.schedules.insert(schedule("s1"))
    rows = [NewRun(uid=f"r{n}", family=Family.MAINTENANCE, overlap_key=made.overlap_key, trigger="Manual",
                   state=RunState.QUEUED, created_at=T0 + n, schedule_id=made.id, org_id="acme") for n in range(50)]
    ids = await asyncio.gather(*(store.fires.start_now(row, made.id) for row in rows))
    assert [(await store.runs.get_by_uid(row.uid)).id for row in rows] == ids
    started = await asyncio.gather(*(store.fires.mark_started(i, T0 + 100) for i in ids[:40]),
                                   store.fires.mark_started(10**9, T0))
    assert started == [True] * 40 + [False]
    await asyncio.gather(*(store.fires.finish(i, Finish(state=RunState.DONE, ended_at=T0 + 200), Outcome(
        made.id, ok=n % 2 == 0, counted=True, status="done", run_uid=f"r{n}", at=T0 + 200)) for n, i in enumerate(ids)))
    counted = await store.schedules.get(made.id)
    assert (counted.success_count, counted.fail_count) == (25, 25)
    assert await store.runs.open_for_key(made.overlap_key) == []


@pytest.mark.parametrize(("family", "kept"), [
    ("export", True), ("report_exports", True), ("x" * 40, True),
    ("Export", False), ("", False), ("report-exports", False), ("9lives", False), ("x" * 41, False),
])
async def test_the_family_columns_take_every_name_a_family_may_register_and_no_other(store: Store, family, kept):
    """A fifth family needs no migration: the schema checks a wire name's shape, as the registry does."""
    assert (WIRE_NAME.fullmatch(family) is not None) is kept
    statements = [
        ("INSERT INTO schedules (uid, family, cron, cron_normalized, timezone, created_at, updated_at)"
         " VALUES (?, ?, '0 * * * *', '0 * * * *', 'UTC', 0, 0)", ("s1", family)),
        ("INSERT INTO runs (uid, family, overlap_key, trigger, state, created_at)"
         " VALUES (?, ?, 'k', 'Scheduled', 'done', 0)", ("r1", family)),
    ]
    for sql, params in statements:
        if kept:
            await execute(store, sql, params)
        else:
            with pytest.raises(Exception, match="(?i)check"):
                await execute(store, sql, params)
    assert (await count(store, "schedules"), await count(store, "runs")) == ((1, 1) if kept else (0, 0))


async def test_skips_recorded_at_once_by_two_stores_coalesce_into_one_record(store: Store, twin: Store):
    await store.accounts.ensure_org("acme", T0)
    made = await store.schedules.insert(schedule("s1"))
    outcomes = await asyncio.gather(*((store if n % 2 else twin).fires.record_skip(
        skip(f"k{n}", made.id, T0 + n), skip_text, since=T0 - 1) for n in range(20)))
    assert len({run_id for run_id, _ in outcomes}) == 1 and sum(joined for _, joined in outcomes) == 19
    [record] = await twin.runs.list_schedule(made.id, limit=10, offset=0)
    assert record.fires == 20 and await store.runs.fires_by_schedule() == {made.id: 20}


async def test_a_revocation_through_one_store_reaches_the_watch_of_another(store: Store, twin: Store):
    user_id = await store.accounts.create_user("alice", "h", email=None, is_admin=False, orgs=(), at=T0)
    await store.accounts.add_tokens(user_id, [(b"t1", "access", T0 + 60)], name=None, at=T0)
    here, there = store.accounts.revocation_watch(), twin.accounts.revocation_watch()
    try:
        here.epoch(), there.epoch()
        await asyncio.sleep(0.2)  # the watches follow the database from their first read on
        before = here.epoch(), there.epoch()
        assert await store.accounts.revoke_token(b"t1", T0 + 1)
        assert here.epoch() > before[0]  # at once, in the instance that revoked
        deadline = time.monotonic() + 5
        while there.epoch() == before[1] and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert there.epoch() > before[1]
    finally:
        here.close()
        there.close()


# -- the same answers from every backend ------------------------------------------------------

async def _script(s: Store) -> list[tuple[str, object]]:
    """Every read of the Protocol after the same writes, as (what, answer)."""
    out: list[tuple[str, object]] = []

    def note(what: str, answer: object) -> None:
        out.append((what, answer))

    await s.accounts.ensure_org("acme", T0)
    await s.accounts.ensure_org("globex", T0)
    alice = await s.accounts.create_user("alice", "h1", email="a@x", is_admin=False, orgs=("acme", "initech"),
                                         at=T0)
    bob = await s.accounts.create_user("bob", "h2", email=None, is_admin=True, orgs=(), at=T0)
    await s.accounts.add_tokens(alice, [(b"t1", "access", T0 + 60), (b"t2", "refresh", T0 + 600)], name="ci", at=T0)
    await s.accounts.add_tokens(bob, [(b"t3", "access", T0 + 30)], name=None, at=T0)
    note("orgs", await s.accounts.list_orgs())
    note("lookup", await s.accounts.lookup_token(b"t2"))
    note("revoke_id", await s.accounts.revoke_token_id(2, T0 + 1))
    note("revoke_id again", await s.accounts.revoke_token_id(2, T0 + 2))
    note("tokens", await s.accounts.list_tokens())
    note("tokens of bob", await s.accounts.list_tokens("bob"))
    note("disable", await s.accounts.set_disabled("alice", T0 + 3, T0 + 3))
    note("password while disabled", await s.accounts.find_password_hash("alice"))
    note("enable", await s.accounts.set_disabled("alice", None, T0 + 4))
    note("set_password", await s.accounts.set_password("bob", "h3", revoke_tokens=True, at=T0 + 5))
    note("remove_member", await s.accounts.remove_member("alice", "initech"))
    note("remove_member again", await s.accounts.remove_member("alice", "initech"))
    note("users", await s.accounts.list_users())
    note("purge", await s.accounts.purge_tokens(T0 + 100))
    note("user", await s.accounts.get_user("alice"))

    made = [await s.schedules.insert(schedule(f"m{n}", next_fire_at=T0 + n)) for n in range(5)]
    made.append(await s.schedules.insert(schedule("b1", family=Family.AGGREGATE, project_id="p", cube_id="c",
                                                  full_build=True, spec={"b": [1, 2], "a": None})))
    made.append(await s.schedules.insert(service_job("j1", "nightly")))
    made.append(await s.schedules.insert(schedule("g1", org_id="globex", retention_days=1)))
    await s.schedules.set_active(made[1].id, False, None, by="bob", at=T0 + 1)
    note("replace", await s.schedules.replace(made[5].id, schedule("b1", family=Family.AGGREGATE, project_id="p",
                                                                   cube_id="c", timeout=3.5, retries=2),
                                              by="bob", at=T0 + 2))
    note("get_many", await s.schedules.get_many([made[0].id, made[6].id, 999]))
    note("by uid", await s.schedules.get_by_uid(Family.SERVICE, "j1"))
    note("scope", await s.schedules.list_scope(Family.MAINTENANCE, "acme", active=True))
    note("scope of cube", await s.schedules.list_scope(Family.AGGREGATE, "acme", project_id="p", cube_id="c"))
    note("family", await s.schedules.list_family(Family.MAINTENANCE))
    note("batches", [b async for b in s.schedules.scope_batches(Scope(Family.MAINTENANCE, "acme"), offset=1,
                                                                   limit=3, size=2, with_kept=True)])
    note("service batches", [b async for b in s.schedules.scope_batches(Scope(Family.SERVICE), with_kept=True)])
    note("due", sorted(row for chunk in [c async for c in s.schedules.due_index()] for row in chunk))

    for n, (state, sched) in enumerate([(RunState.DONE, made[0]), (RunState.FAILED, made[0]),
                                        (RunState.DONE, made[5]), (RunState.DONE, made[5]),
                                        (RunState.SKIPPED, made[6]), (RunState.QUEUED, made[7]),
                                        (RunState.DONE, made[7])]):
        await s.runs.insert(NewRun(
            uid=f"r{n}", family=sched.family, overlap_key=sched.overlap_key, trigger="Scheduled", state=state,
            created_at=T0 + 3600 * n, schedule_id=sched.id, org_id=sched.org_id, project_id=sched.project_id,
            cube_id=sched.cube_id, due_at=T0 + 3600 * n - 2, started_at=T0 + 3600 * n + 1.5,
            ended_at=T0 + 3600 * n + 10 + n, skip_reason="overlap" if state == RunState.SKIPPED else None,
            full_build=True if sched.family == Family.AGGREGATE else None))
    note("run", await s.runs.get_by_uid("r3"))
    note("run of schedule", await s.runs.get_of_schedule(made[5].id, 3))
    note("open", await s.runs.open_for_key(made[7].overlap_key))
    note("org page", await s.runs.list_org(Family.AGGREGATE, "acme", limit=1, offset=1, project_id="p"))
    note("org by state", await s.runs.list_org(Family.MAINTENANCE, "acme", limit=10, offset=0, state="failed"))
    note("durations", await s.runs.recent_durations(Family.AGGREGATE, "acme", "p", "c"))
    note("has built", await s.runs.cube_has_built(Family.AGGREGATE, "acme", "p", "c", other_than=3))
    note("has built but", await s.runs.cube_has_built(Family.AGGREGATE, "globex", "p", "c", other_than=0))
    for seen in (Visibility(orgs=None), Visibility(orgs=("acme",), hidden=(Family.SERVICE,))):
        note("report runs", await s.reports.list_runs(seen, family=None, org_id=None, state=None, limit=4, offset=1))
        note("report by", await s.reports.list_runs(seen, family=Family.MAINTENANCE, org_id="acme", state="done",
                                                    limit=9, offset=0))
        note("outcomes", await s.reports.outcomes_by_hour(seen, since=T0 + 1))
        note("delays", await s.reports.delays_by_hour(seen, since=T0 - 7200))
        note("report schedules", await s.reports.list_schedules(seen, family=None, org_id=None, active=True,
                                                                 limit=3, offset=2))
    note("retention list", await s.schedules.retention_list(T0 + 3 * 86400))
    note("last success", await s.schedules.last_success())
    note("delete older", await s.runs.delete_older(made[7].id, T0 + 86400))

    windows = []
    for n in range(4):
        windows.append(await s.windows.insert(
            Window(id=0, name=f"w{n}", description=None, external_reference=f"ref{n % 2}", external_link=None,
                   status=WindowState.SCHEDULED if n < 3 else WindowState.CANCELED, scope_id=1 + n % 2,
                   service_id=2, service_status="down", creation_date=T0, scheduled_start_date=T0 + 60 * (n % 3),
                   scheduled_end_date=T0 + 1000 + n, start_date=None, end_date=None),
            NewEvent("Maintenance created", "create", author_id=alice), at=T0 + n))
    note("save", await s.windows.save(windows[1], [NewEvent("x", "update", internal=True), NewEvent("y", "comment")],
                                      at=T0 + 9))
    note("add to none", await s.windows.add_event(999, NewEvent("z", "comment"), at=T0))
    note("page", await s.windows.list_page({"scope": 1}, limit=2, offset=0, internal=False))
    note("page all", await s.windows.list_page({}, limit=10, offset=1, internal=True))
    note("page filtered", await s.windows.list_page({"external_reference": "ref1", "start_after": T0 - 1,
                                                     "end_before": T0 + 1002}, limit=0, offset=0, internal=True))
    note("page plain", await s.windows.list_page({"status": "scheduled"}, limit=5, offset=0, internal=True,
                                                 timelines=False))
    note("ending after", [b async for b in s.windows.ending_after(T0 + 1001, size=1)])
    note("open windows", await s.windows.open_windows())
    note("grant", [await s.grants.grant(alice, 3, at=T0), await s.grants.grant(alice, 3, at=T0),
                   await s.grants.grant(alice, 1, at=T0)])
    note("scopes", await s.grants.scopes_of(alice))
    queued = NewRun(uid="f1", family=Family.MAINTENANCE, overlap_key=made[2].overlap_key, trigger="Scheduled",
                    state=RunState.QUEUED, created_at=T0 + 9, schedule_id=made[2].id, org_id="acme", due_at=T0 + 8)
    fired = await s.fires.record_fires(
        [(skip("k1", made[3].id, T0 + 9), skip_text), (queued, None), (skip("k2", made[3].id, T0 + 10), skip_text)],
        [Fired(made[2].id, T0 + 99, ("f1", "queued")), Fired(made[3].id, None)], skip_since=T0, at=T0 + 9)
    note("record fires", fired)
    run_id = fired[0][1]
    note("mark started", [await s.fires.mark_started(run_id, T0 + 11), await s.fires.mark_started(run_id, T0 + 11)])
    await s.fires.finish(run_id, Finish(state=RunState.FAILED, ended_at=T0 + 12, attempt=2, error="boom", exit_code=3,
                                   timed_out=True, request_payload="{}", response_status=500, response_body="no",
                                   complete=True),
                         Outcome(made[2].id, ok=False, counted=True, status="failed", run_uid="f1", at=T0 + 12))
    note("start now", await s.fires.start_now(NewRun(
        uid="n1", family=Family.SERVICE, overlap_key=made[6].overlap_key, trigger="Manual", state=RunState.INPROGRESS,
        created_at=T0 + 13, schedule_id=made[6].id, started_at=T0 + 13), made[6].id))
    note("interrupt", await s.fires.interrupt_open(T0 + 14, "crash"))
    note("after fires", [await s.runs.get_by_uid(uid) for uid in ("k1", "f1", "n1", "r5")])
    note("schedules after fires", await s.schedules.get_many([made[2].id, made[3].id, made[6].id, made[7].id]))
    note("delete schedule", await s.schedules.delete(made[0].id))
    note("runs gone with it", await s.runs.get_by_uid("r0"))
    return out


async def test_every_backend_gives_the_same_answers(tmp_path, pg_url):
    install_families()
    answers = {}
    for name, where in (("sqlite", str(tmp_path / "s.db")), ("postgres", pg_url)):
        made = BACKENDS[name](where)
        await made.open()
        try:
            answers[name] = await _script(made)
        finally:
            await made.close()
    assert len(answers["sqlite"]) == len(answers["postgres"])
    for (what, sqlite_answer), (_, pg_answer) in zip(answers["sqlite"], answers["postgres"], strict=True):
        assert pg_answer == sqlite_answer, what
