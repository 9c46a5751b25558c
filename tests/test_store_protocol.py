"""The store through its Protocol, for every backend: what a new backend must pass.

`BACKENDS` names each implementation of `schedd.store.protocol.Store`, made from where
its database is (`where`: an SQLite file in the test's directory, or a database of its
own on the tests' PostgreSQL server); the `store` fixture runs every test here against
each. `twin` is a second store on the same database, as a second process would open it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schedd.compose import install_families
from schedd.errors import Conflict
from schedd.states import Family, RunState, WindowState
from schedd.store.db import check_backup
from schedd.store.postgres.store import PgStore
from schedd.store.protocol import Store
from schedd.store.reports import Visibility
from schedd.store.runs import NewRun
from schedd.store.schedules import NewSchedule, Scope
from schedd.store.sqlite import SqliteStore
from schedd.store.windows import NewEvent, Window

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
