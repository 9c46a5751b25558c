"""[quotas] through HTTP for every family: how often a non-admin may schedule, how many an org
holds, admins exempt; the interval math on its own; counting and logging each limit reached."""

from __future__ import annotations

import logging
import random

import pytest

from schedd import metrics, quotas
from schedd.http.common import ACCOUNTS
from schedd.cron import load_zone, parse
from schedd.cron.interval import closer_than
from schedd.errors import ValidationError
from schedd.families.service_jobs import service as jobs
from tests.support.api import T0
from tests.support.jobs import JOBS, job, services
from tests.support import sql

MAINTENANCE = "/aggregates/maintenance/scheduler/jobs/orgId/{org}"
CUBE = "/org/{org}/project/p1/cube/{cube}/aggregates-creation/scheduler"
UTC = load_zone("UTC")


def limit_count(limit: str) -> float:
    return metrics.REGISTRY.get_sample_value("schedd_limit_reached_total", {"limit": limit}) or 0.0


async def create_maintenance(api, who="alice", org="acme", expression="0 0 4 ? * * *"):
    return await api.call("POST", MAINTENANCE.format(org=org), who,
                          json={"time_expression": expression, "scheduler_type": "time-based"})


async def create_build(api, who="alice", org="acme", cube="c1", expression="0 25 6 ? * *"):
    return await api.call("POST", CUBE.format(org=org, cube=cube), who,
                          json={"time_expression": expression, "path": "aggregate/create"})


async def active_schedules(api, org="acme") -> int:
    row = await sql.fetchone(api.core.store, "SELECT count(*) FROM schedules WHERE org_id = ? AND active = 1", (org,))
    return row[0]


# -- how often: min_interval -----------------------------------------------------------


async def test_a_non_admin_maintenance_schedule_firing_every_second_is_400_naming_the_field(api):
    before = limit_count("quotas.min_interval")
    response, body = await create_maintenance(api, expression="* * * * * ?")
    assert response.status == 400, body
    assert body["status"]["code"] == 400
    message = body["status"]["message"]
    assert message.startswith("time_expression:"), message
    assert "1 s apart" in message and "1 min" in message and "min_interval" in message
    assert await active_schedules(api) == 0
    assert limit_count("quotas.min_interval") == before + 1


async def test_an_admin_may_schedule_every_second(api):
    response, body = await create_maintenance(api, who="admin", expression="* * * * * ?")
    assert response.status == 200, body
    response, body = await create_build(api, who="admin", expression="*/2 * * * * ?")
    assert response.status == 200, body


async def test_a_non_admin_build_schedule_firing_every_30_seconds_is_400_in_its_envelope(api):
    response, body = await create_build(api, expression="0/30 * * * * ?")
    assert response.status == 400, body
    assert body["status"]["i18n_message"] == "response.bad_request"
    assert body["status"]["message"].startswith("time_expression:")
    assert "30 s apart" in body["status"]["message"]
    assert await active_schedules(api) == 0


async def test_an_interval_at_the_limit_is_allowed_and_one_below_is_not(api):
    response, body = await create_maintenance(api, expression="0 * * * * ?")  # every minute
    assert response.status == 200, body
    response, body = await create_maintenance(api, expression="*/5 * * * *")  # Unix, every 5 minutes
    assert response.status == 200, body
    # 23:59:59 and 00:00:00 the next day are a second apart, though no two fires of a day are.
    response, body = await create_maintenance(api, expression="0,59 0,59 0,23 * * ?")
    assert response.status == 400, body
    assert "1 s apart" in body["status"]["message"]


async def test_an_org_may_have_its_own_min_interval(make_api):
    api = await make_api(quotas={"min_interval": "5m", "orgs": {"acme": {"min_interval": "1s"}}})
    response, body = await create_maintenance(api, org="acme", expression="* * * * * ?")
    assert response.status == 200, body
    response, body = await create_maintenance(api, org="default", expression="0 * * * * ?")
    assert response.status == 400, body
    assert "5 min" in body["status"]["message"]


async def test_min_interval_zero_switches_the_check_off(make_api):
    api = await make_api(quotas={"min_interval": 0})
    response, body = await create_maintenance(api, expression="* * * * * ?")
    assert response.status == 200, body


# -- how many: max_schedules, max_jobs -----------------------------------------------------


async def test_an_org_full_of_schedules_answers_409_naming_the_limit_and_creates_nothing(make_api):
    api = await make_api(quotas={"max_schedules": 2})
    before = limit_count("quotas.max_schedules")
    assert (await create_maintenance(api))[0].status == 200
    assert (await create_build(api))[0].status == 200  # both families count against the org
    response, body = await create_maintenance(api)
    assert response.status == 409, body
    assert body["status"]["code"] == 409
    assert "holds 2 active schedules" in body["status"]["message"]
    assert "max_schedules" in body["status"]["message"]
    response, body = await create_build(api, cube="c2")
    assert response.status == 409, body
    assert body["status"]["i18n_message"] == "response.conflict"
    assert "max_schedules" in body["status"]["message"]
    assert await active_schedules(api) == 2
    assert limit_count("quotas.max_schedules") == before + 2


async def test_the_count_is_per_org_and_admins_exceed_it(make_api):
    api = await make_api(quotas={"max_schedules": 1})
    assert (await create_maintenance(api, org="acme"))[0].status == 200
    assert (await create_maintenance(api, org="default"))[0].status == 200  # another org of alice's
    assert (await create_maintenance(api, org="acme"))[0].status == 409
    response, body = await create_maintenance(api, who="admin", org="acme")
    assert response.status == 200, body
    assert await active_schedules(api, "acme") == 2


async def test_a_deleted_schedule_frees_its_place(make_api):
    api = await make_api(quotas={"max_schedules": 1})
    _, body = await create_maintenance(api)
    job_id = body["response"]["job_id"]
    assert (await create_maintenance(api))[0].status == 409
    response, _ = await api.call("DELETE", f"{MAINTENANCE.format(org='acme')}/jobId/{job_id}", "alice")
    assert response.status == 200
    assert (await create_maintenance(api))[0].status == 200


async def test_an_org_may_have_a_larger_quota(make_api):
    api = await make_api(quotas={"max_schedules": 1, "orgs": {"acme": {"max_schedules": 3}}})
    for _ in range(3):
        assert (await create_maintenance(api, org="acme"))[0].status == 200
    assert (await create_maintenance(api, org="acme"))[0].status == 409
    assert (await create_maintenance(api, org="default"))[0].status == 200
    assert (await create_maintenance(api, org="default"))[0].status == 409


async def test_concurrent_creates_never_overshoot_the_quota(make_api):
    import asyncio

    api = await make_api(quotas={"max_schedules": 5})
    answers = await asyncio.gather(*(create_maintenance(api) for _ in range(20)))
    assert sorted(r.status for r, _ in answers) == [200] * 5 + [409] * 15
    assert await active_schedules(api) == 5


# -- service jobs: an admin-only API --------------------------------------------------------


@pytest.fixture
async def jobs_api(make_api, service):
    return await make_api(services=services(service), quotas={"max_jobs": 1})


async def test_admins_create_service_jobs_past_max_jobs_and_min_interval(jobs_api):
    response, body = await jobs_api.call("POST", JOBS, json=job(jobName="one", jobFrequency="* * * * * ?"))
    assert response.status == 200, body
    response, body = await jobs_api.call("POST", JOBS, json=job(jobName="two"))
    assert response.status == 200, body
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    response, body = await jobs_api.call("PUT", JOBS, json={**job(jobName="two", jobFrequency="*/2 * * * * ?"),
                                                             "jobId": job_id})
    assert response.status == 200, body


async def test_non_admins_are_refused_service_jobs_at_the_door(jobs_api):
    response, body = await jobs_api.call("POST", JOBS, "alice", json=job(jobName="mine"))
    assert response.status == 401, body
    assert body["status"] == "FAIL"


async def test_the_jobs_family_holds_a_non_admin_to_both_limits(jobs_api):
    # The HTTP API admits administrators only; the family's own checks still apply to
    # anyone else who reaches it.
    core = jobs_api.core
    alice = await jobs_api.client.app[ACCOUNTS].authenticate(jobs_api.tokens["alice"], at=T0)
    with pytest.raises(ValidationError) as info:
        await jobs.create_job(core, alice, job(jobName="fast", jobFrequency="0/10 * * * * ?"), at=T0)
    assert info.value.field == "jobFrequency" and "min_interval" in info.value.reason
    del_info = job(jobName="from-info", jobFrequency=None,
                   jobFrequencyInfo={"frequencyType": 1, "minuteValues": [0], "hourValues": [1]})
    await jobs.create_job(core, alice, del_info, at=T0)  # daily at 01:00: allowed, and now there is 1
    with pytest.raises(quotas.QuotaExceeded) as full:
        await jobs.create_job(core, alice, job(jobName="second"), at=T0)
    assert full.value.limit == "quotas.max_jobs" and "max_jobs" in str(full.value)
    assert sum([len(batch) async for batch in jobs.list_jobs(core)]) == 1


# -- logging: once per interval -----------------------------------------------------------


def test_a_limit_is_logged_at_most_once_a_minute_with_how_often_it_was_reached(monkeypatch, caplog):
    monkeypatch.setattr(quotas, "_seen", {})
    caplog.set_level(logging.WARNING, logger="schedd.quotas")
    before = limit_count("quotas.max_jobs")
    for second in (0, 1, 30, 59.9, 60, 61):
        quotas.reached("quotas.max_jobs", T0 + second, "full")
    lines = [r.getMessage() for r in caplog.records if r.name == "schedd.quotas"]
    assert len(lines) == 2, lines
    assert "limit=quotas.max_jobs times_since_last_line=1" in lines[0]
    assert "times_since_last_line=4" in lines[1]  # 1, 30, 59.9 and 60 itself
    assert limit_count("quotas.max_jobs") == before + 6


# -- the interval math -------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "limit", "gap"), [
    ("* * * * * ?", 60, 1),
    ("0/30 * * * * ?", 60, 30),
    ("0 * * * * ?", 60, None),
    ("0 * * * * ?", 61, 60),
    ("0,10 0,1 * * * ?", 60, 10),
    ("50 0,1 * * * ?", 61, 60),
    ("0,50 0,1 * * * ?", 61, 10),
    ("0 59 0,1 * * ?", 3600, None),
    ("0 0,59 0,1 * * ?", 3600, 60),  # 00:59 then 01:00
    ("0,59 0,59 0,23 * * ?", 60, 1),  # 23:59:59 then 00:00:00 the next day (59 s within a day)
    ("0,59 0,23 1,L * *", 120, 60),  # the last day of a month, then the first of the next
    ("0,59 0,23 1,15 * *", 120, None),  # never two days in a row
    ("0 0 12 ? * MON-FRI", 60, None),
    ("*/5 * * * *", 600, 300),  # Unix
    ("0-59/2 * * * *", 60, None),
    ("59 23 * * *", 86400, None),
    ("0 0 4 ? * * *", 60, None),
])
def test_closer_than(expression, limit, gap):
    assert closer_than(parse(expression), UTC, T0, limit) == gap


def test_closer_than_sees_a_dst_change_just_ahead():
    # 01:59 and 03:00 are a minute apart on the night Berlin skips 02:00-03:00.
    berlin = load_zone("Europe/Berlin")
    before_change = T0 + (31 + 28 + 27) * 86400  # 2026-03-28, the day before
    assert closer_than(parse("0 0,59 1,3 * * ?"), berlin, before_change, 120) == 60
    assert closer_than(parse("0 0,59 1,3 * * ?"), UTC, before_change, 120) is None


def _brute_shortest(expression: str, count: int) -> float:
    cron = parse(expression)
    fires = list(_take(cron.iter_after(T0, UTC), count))
    return min((b - a for a, b in zip(fires, fires[1:], strict=False)), default=float("inf"))


def _take(iterator, count):
    for _, item in zip(range(count), iterator, strict=False):
        yield item


@pytest.mark.slow  # 300 random expressions against a brute-force count
def test_closer_than_never_misses_a_gap_the_next_fires_show():
    rng = random.Random(16)

    def part(top: int) -> str:
        values = sorted(rng.sample(range(top), rng.randint(1, 3)))
        return rng.choice(["*", ",".join(map(str, values)), f"{values[0]}/{rng.randint(1, top - 1)}"])

    for _ in range(300):
        if rng.random() < 0.5:
            dom, dow = rng.choice([("*", "?"), ("L", "?"), ("1,15", "?"), ("?", "MON-FRI"), ("?", "2,4")])
            expression = f"{part(60)} {part(60)} {part(24)} {dom} * {dow}"
        else:
            days = rng.choice(["* * *", "1,L * *", "L * *", "* * 1-5", "1,15 * *"])
            expression = f"{part(60)} {part(24)} {days}"
        shortest = _brute_shortest(expression, 400)
        for limit in (shortest, shortest + 1):
            found = closer_than(parse(expression), UTC, T0, limit)
            if shortest < limit:
                assert found is not None and found <= shortest, expression
            else:
                assert found is None or found < limit, expression
