"""The firing lease on a store several instances share (PostgreSQL), through the Protocol and
through two in-process cores: who fires, the fence, beats, takeovers, changes seen elsewhere.

A store one process owns (SQLite) has no one to share the lease with: its lease is always
held (tests/test_store_protocol.py); the failover of real processes is tests/test_failover.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from schedd.clock import WallClock
from schedd.compose import build_core, install_families
from schedd.engine import CRON
from schedd.errors import Conflict
from schedd.store.postgres import PgStore
from schedd.store.protocol import LeaseLost, Store
from schedd.store.runs import Finish, Fired, NewRun, Outcome
from schedd.store.schedules import NewSchedule
from tests.support.api import T0, api_config
from tests.support.web import JOB, SCOPES, SERVICES, WINDOW, Operator

TTL = 0.6  # seconds: short, so that a lapse is waited for in well under a second


def schedule(uid: str, at: float) -> NewSchedule:
    return NewSchedule(uid=uid, family="maintenance", cron="0 0 4 ? * * *", cron_normalized="0 0 4 ? * * *",
                       timezone="UTC", created_at=at, org_id="default", next_fire_at=at + 3600)


def run(uid: str, schedule_id: int | None, at: float, state: str = "inprogress") -> NewRun:
    return NewRun(uid=uid, family="maintenance", overlap_key="maintenance:default", trigger="TimeBasedMaintenance",
                  state=state, created_at=at, schedule_id=schedule_id, org_id="default", due_at=at,
                  started_at=at if state == "inprogress" else None)


@pytest.fixture
async def two(pg_url):
    """Two stores on one database, as two instances have."""
    install_families()
    made: list[Store] = [PgStore.at(pg_url), PgStore.at(pg_url)]
    for store in made:
        await store.open()
        await store.accounts.ensure_org("default", time.time())
    yield made
    for store in made:
        if store.is_open:
            await store.close()


async def lapse() -> None:
    await asyncio.sleep(TTL + 0.2)


async def test_one_holder_at_a_time_and_the_epoch_only_grows(two):
    a, b = two
    assert a.lease.shared and b.lease.shared
    first = await a.lease.take("a", TTL)
    assert first is not None
    assert await a.lease.take("a", TTL) == first  # a renewal keeps the epoch
    assert await b.lease.take("b", TTL) is None  # held and live
    held = await b.lease.current()
    assert held.holder == "a" and held.epoch == first and 0 < held.expires_in <= TTL
    await lapse()
    second = await b.lease.take("b", TTL)
    assert second is not None and second > first
    assert await a.lease.take("a", TTL) is None
    await b.lease.release("b", second)
    third = await a.lease.take("a", TTL)  # free at once after a release
    assert third is not None and third > second


@pytest.mark.parametrize(("stuck", "pool_size"), [("SELECT pg_sleep(60)", 10), (None, 10), (None, 1)])
async def test_a_fire_write_stuck_past_the_lapse_does_not_keep_the_lease_from_the_next_holder(
        two, pg_url, stuck, pool_size):
    """A holder stopped inside a fire write (SIGSTOP, a frozen VM) keeps the lease row locked for share:
    mid-statement, or between pipelined messages where no idle timeout applies. Once the lease has
    lapsed, the next holder ends that session and takes over, within a beat, not after the stop."""
    import asyncpg

    from schedd.store.postgres.lease import SQL_FENCE

    a, _ = two
    b = PgStore.at(pg_url, pool_size=pool_size)  # the next holder; with one connection, none to spare
    await b.open()
    epoch = await a.lease.take("a", TTL)
    conn = await asyncpg.connect(pg_url)
    try:
        tr = conn.transaction()
        await tr.start()
        assert await conn.fetchrow(SQL_FENCE, "a", epoch) is not None  # a fire write under way holds the row
        sleeper = None
        if stuck is not None:
            sleeper = asyncio.ensure_future(conn.fetchval(stuck))  # ...and never ends
        else:  # ...or sits between its messages: this stands in for the client's silence
            await conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        stuck_pid = conn.get_server_pid()
        await lapse()
        started = time.monotonic()
        taken = await asyncio.wait_for(b.lease.take("b", TTL), 5.0)
        assert taken == epoch + 1 and time.monotonic() - started < 2.0
        if stuck is not None:
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
                await sleeper  # its session was ended
        else:
            ended = await a.db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", stuck_pid)
            assert ended == 0
    finally:
        conn.terminate()
        await b.close()


@pytest.mark.parametrize("ttl", [30.0, TTL])
async def test_a_holders_own_fire_write_is_waited_for_not_ended(two, pg_url, monkeypatch, ttl):
    """Only another's lapsed lease has its sessions ended: the holder's own renewal waits for its
    fire writes, live or lapsed (a renewal late under load)."""
    import asyncpg

    from schedd.store.postgres.lease import SQL_FENCE, PgLeaseStore

    a, _ = two
    epoch = await a.lease.take("a", ttl)
    looked = asyncio.Event()
    ended: list[int] = []
    end_stalled = PgLeaseStore._end_stalled

    async def watched(self: PgLeaseStore, waiting: int, holder: str) -> int:
        ended.append(await end_stalled(self, waiting, holder))
        looked.set()
        return ended[-1]

    monkeypatch.setattr(PgLeaseStore, "_end_stalled", watched)
    conn = await asyncpg.connect(pg_url)
    try:
        tr = conn.transaction()
        await tr.start()
        assert await conn.fetchrow(SQL_FENCE, "a", epoch) is not None
        if ttl == TTL:
            await lapse()
        renewal = asyncio.ensure_future(a.lease.take("a", 30.0))
        await asyncio.wait_for(looked.wait(), 5.0)  # the renewal waited on the row and looked for stalled sessions
        assert ended == [0] and not renewal.done()  # ...found none to end: the lease is its own
        assert await conn.fetchval("SELECT 1") == 1
        await tr.commit()
        assert await asyncio.wait_for(renewal, 5.0) == epoch
    finally:
        conn.terminate()


async def test_a_stale_holder_records_no_fire_and_starts_no_queued_run(two):
    a, b = two
    at = time.time()
    sched = await a.schedules.insert(schedule("s-1", at))
    queued_id = await a.fires.start_now(run("r-queued", sched.id, at, state="queued"), sched.id)
    epoch = await a.lease.take("a", TTL)
    a.fires.set_fence("a", epoch)
    ids, _ = await a.fires.record_fires([(run("r-1", sched.id, at), None)], [Fired(sched.id, at + 60)],
                                        skip_since=at - 60, at=at)
    assert len(ids) == 1
    await lapse()
    taken = await b.lease.take("b", TTL)
    assert taken is not None and taken > epoch
    with pytest.raises(LeaseLost):
        await a.fires.record_fires([(run("r-2", sched.id, at + 60), None)], [Fired(sched.id, at + 120)],
                                   skip_since=at, at=at + 60)
    with pytest.raises(LeaseLost):
        await a.fires.mark_started(queued_id, at + 61)
    assert await b.runs.get_by_uid("r-2") is None  # nothing of the refused write was kept
    assert (await b.schedules.get(sched.id)).next_fire_at == at + 60
    assert (await b.runs.get_by_uid("r-queued")).state == "queued"


async def test_the_runs_of_an_instance_that_stopped_beating_are_closed_and_counted(two):
    a, b = two
    at = time.time()
    sched = await a.schedules.insert(schedule("s-2", at))
    await a.lease.beat("a", TTL)
    await b.lease.beat("b", 30)
    await a.fires.start_now(run("held-by-a", sched.id, at), sched.id)
    await b.fires.start_now(run("held-by-b", sched.id, at), sched.id)
    assert {name for name, _ in await b.lease.instances()} >= {"a", "b"}
    assert await b.fires.interrupt_open(at + 1, "gone") == []  # both alive
    await lapse()
    closed = await b.fires.interrupt_open(at + 2, "gone")
    assert [uid for _, _, uid in closed] == ["held-by-a"]
    assert (await b.runs.get_by_uid("held-by-a")).state == "interrupted"
    assert (await b.runs.get_by_uid("held-by-b")).state == "inprogress"
    # Its late end changes nothing: the record stays as the takeover closed it.
    await a.fires.finish((await a.runs.get_by_uid("held-by-a")).id, Finish(state="done", ended_at=at + 3),
                         Outcome(sched.id, ok=True, counted=True, status="done", run_uid="held-by-a", at=at + 3))
    after = await b.schedules.get(sched.id)
    assert (await b.runs.get_by_uid("held-by-a")).state == "interrupted"
    assert after.success_count == 0 and after.fail_count == 1


async def test_changes_committed_by_one_instance_reach_the_other(two):
    a, b = two
    heard: list[tuple[str, int]] = []
    arrived = asyncio.Event()

    def note(kind: str, ident: int) -> None:
        heard.append((kind, ident))
        arrived.set()

    await b.listen(note)
    made = await a.schedules.insert(schedule("s-3", time.time()))
    await asyncio.wait_for(arrived.wait(), 1.0)
    assert ("schedule", made.id) in heard
    heard.clear()
    arrived.clear()
    await a.schedules.set_active(made.id, False, None, by="ops", at=time.time())
    await asyncio.wait_for(arrived.wait(), 1.0)
    assert heard == [("schedule", made.id)]


async def test_of_two_cores_one_fires_and_the_other_takes_over_when_it_stops(pg_url, tmp_path):
    """In-process instances with the wall clock: a schedule made through the standby is armed on
    the one that fires; when that one stops, the standby fires from the store."""
    config = api_config(tmp_path)
    config = dataclasses.replace(config, database=dataclasses.replace(config.database, lease_ttl=1.0))
    first = build_core(config, db_path=pg_url, clock=WallClock())
    second = build_core(config, db_path=pg_url, clock=WallClock())
    await first.start()
    await second.start()
    try:
        assert first.coordinator.is_leader and not second.coordinator.is_leader
        assert not second.runner.firing
        at = time.time()
        made = await second.store.schedules.insert(schedule("s-4", at))
        second.runner.arm(made)  # a standby arms nothing: the leader hears of it
        deadline = time.monotonic() + 2
        while first.engine.due_of(CRON, made.id) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert first.engine.due_of(CRON, made.id) == made.next_fire_at
        assert second.engine.due_of(CRON, made.id) is None
        await first.stop()
        deadline = time.monotonic() + 3
        while not second.coordinator.is_leader and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert second.coordinator.is_leader and second.runner.firing
        assert second.engine.due_of(CRON, made.id) == made.next_fire_at
        assert second.coordinator.epoch > 1
    finally:
        if second.store.is_open:
            await second.stop()
        if first.store.is_open:
            await first.stop()


async def test_readyz_metrics_status_page_and_operator_view_say_which_instance_fires(make_api):
    """On either store: this instance fires; with PostgreSQL a second core on the database stands by."""
    api = await make_api()
    response, body = await api.call("GET", "/readyz", who=None)
    me = api.core.coordinator.instance
    assert response.status == 200 and body["fires"] is True and body["instance"] == me
    _, text = await api.call("GET", "/metrics", who=None)
    assert "\nschedd_leader 1.0\n" in text and "schedd_lease_takeovers_total" in text
    assert f"Schedules are fired by instance {me}." in (await (await api.client.get("/status")).text())
    operator = Operator(api)
    await operator.login("admin")
    _, page = await operator.get("/ui")
    assert f"This instance ({me}) fires the schedules." in page
    if api.core.store.local_file is not None:
        return  # one process owns a SQLite file: there is no second instance to stand by
    standby = build_core(api.core.config, db_path=api.core.store.location, clock=api.clock)
    await standby.start(run_loop=False)
    try:
        assert not standby.coordinator.is_leader and not standby.runner.firing
        assert await standby.coordinator.firing_instance() == me
    finally:
        await standby.stop()


@pytest.mark.stores("postgres")  # only instances sharing a server have a standby
async def test_a_standby_keeps_the_maintenance_gate_for_the_api_runs_it_starts(make_api):
    api = await make_api(scopes=SCOPES, services=SERVICES)
    response, _ = await api.call("POST", "/api/maintenance/create", data=WINDOW, allow_redirects=False)
    window_id = int(response.headers["Location"].rsplit("/", 1)[1])
    response, _ = await api.call("POST", "/admin/api/jobs/job", json=JOB)
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    standby = build_core(api.core.config, db_path=api.core.store.location, clock=api.clock)
    await standby.start(run_loop=False)
    try:
        assert not standby.coordinator.is_leader
        schedule = await standby.store.schedules.get(job_id)
        assert standby.windows.gate(schedule, T0 + 4 * 3600) == window_id  # 03:00-05:00, service down
        assert standby.windows.gate(schedule, T0 + 6 * 3600) is None
    finally:
        await standby.stop()


@pytest.mark.stores("postgres")  # only instances sharing a server have a standby
async def test_a_run_now_on_a_standby_sees_the_run_the_leader_holds(make_api, service):
    api = await make_api(scopes=SCOPES, services={**SERVICES, "jsonservices": {
        **SERVICES["jsonservices"], "base_url": f"http://127.0.0.1:{service.server.port}/api"}})
    service.hold = True
    response, _ = await api.call("POST", "/admin/api/jobs/job", json=JOB)
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    response, _ = await api.call("POST", f"/admin/api/jobs/job/run/{job_id}")
    assert response.status in (200, 201, 202)
    standby = build_core(api.core.config, db_path=api.core.store.location, clock=api.clock)
    await standby.start(run_loop=False)
    try:
        schedule = await standby.store.schedules.get(job_id)
        with pytest.raises(Conflict):
            await standby.runner.run_now(schedule.family, schedule.overlap_key, "RunNow", at=api.clock.now(),
                                         schedule=schedule)
    finally:
        service.released.set()
        await api.core.runner.wait_idle()
        await standby.stop()
