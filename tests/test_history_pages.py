"""Kept history pages: served from memory until a run of their history changes, through the API."""

from __future__ import annotations

import pytest

from schedd.pages import PageCache, job_history, org_history
from tests.support.api import T0
from tests.support.jobs import JOBS, job, services

HISTORY = "/admin/api/jobs/history/{job}"
ORG_HISTORY = "/aggregates/maintenance/orgId/{org}/history"
RUN_NOW = "/api/1.0/aggregates/maintenance/orgId/{org}/run-immediately"
DAY = 86400.0


@pytest.fixture
async def api(make_api, service):
    return await make_api(services=services(service))


async def create_job(api, **changes) -> int:
    response, answer = await api.call("POST", JOBS, json=job(historyStrategy="MINIMAL", **changes))
    assert response.status == 200, answer
    return int(response.headers["Location"].rsplit("/", 1)[1])


async def history(api, job_id: int) -> list[dict]:
    response, answer = await api.call("GET", HISTORY.format(job=job_id))
    assert response.status == 200, answer
    return answer


async def run_job(api, job_id: int) -> None:
    response, answer = await api.call("POST", f"{JOBS}/run/{job_id}")
    assert response.status == 200, answer


# Pages are kept only where one process writes every run: a SQLite file (schedd.core).
KEPT = pytest.mark.stores("sqlite")


@KEPT
async def test_a_job_history_page_is_kept_until_a_run_of_the_job_changes(api, service):
    job_id = await create_job(api)
    await run_job(api, job_id)
    await api.settle()
    first = await history(api, job_id)
    assert [r["executionStatus"] for r in first] == ["Success"]
    hits = api.core.pages.hits
    assert await history(api, job_id) == first
    assert api.core.pages.hits == hits + 1  # the second read came from memory

    service.hold = True  # the next run stays in progress until released
    await run_job(api, job_id)
    running = await history(api, job_id)
    assert [r["executionStatus"] for r in running] == ["Running", "Success"]
    service.released.set()
    await api.settle()
    assert [r["executionStatus"] for r in await history(api, job_id)] == ["Success", "Success"]


@KEPT
async def test_pages_of_one_history_are_kept_apart_and_another_jobs_run_leaves_them(api):
    job_id, other = await create_job(api), await create_job(api, jobName="other")
    for _ in range(3):
        await run_job(api, job_id)
        await api.settle()
    page = await history(api, job_id)
    _, first_two = await api.call("GET", HISTORY.format(job=job_id) + "?limit=2")
    assert len(page) == 3 and first_two == page[:2]
    await run_job(api, other)
    await api.settle()
    hits = api.core.pages.hits
    assert await history(api, job_id) == page
    assert api.core.pages.hits == hits + 1


async def test_a_deleted_job_takes_its_kept_pages_with_it(api):
    job_id = await create_job(api)
    await run_job(api, job_id)
    await api.settle()
    assert len(await history(api, job_id)) == 1
    response, _ = await api.call("DELETE", f"{JOBS}/{job_id}")
    assert response.status == 200
    response, _ = await api.call("GET", HISTORY.format(job=job_id))
    assert response.status == 404
    again = await create_job(api)  # may take the deleted job's id: its history starts empty
    assert await history(api, again) == []


async def test_retention_drops_kept_pages(api):
    job_id = await create_job(api, retentionPeriod=1)
    await run_job(api, job_id)
    await api.settle()
    assert len(await history(api, job_id)) == 1
    assert await api.core.retention.sweep(T0 + 3 * DAY) == 1  # as the sweep would three days on
    assert await history(api, job_id) == []


@KEPT
async def test_an_org_history_page_is_kept_until_a_run_of_the_org_changes(api):
    for expected in (1, 2):
        response, _ = await api.call("POST", RUN_NOW.format(org="acme"), "alice")
        assert response.status == 200
        await api.settle()
        _, body = await api.call("GET", ORG_HISTORY.format(org="acme"), "alice")
        assert [r["status"] for r in body["response"]["data"]] == ["done"] * expected
        hits = api.core.pages.hits
        _, again = await api.call("GET", ORG_HISTORY.format(org="acme"), "alice")
        assert again["response"] == body["response"] and api.core.pages.hits == hits + 1
    _, failed = await api.call("GET", ORG_HISTORY.format(org="acme") + "?status=failed", "alice")
    assert failed["response"]["data"] == []
    response, _ = await api.call("GET", ORG_HISTORY.format(org="acme"), "bob")
    assert response.status == 404  # a kept page is still only for those who may see the org


@pytest.mark.stores("postgres")
async def test_on_a_shared_server_nothing_is_kept_and_every_read_is_current(api, service):
    job_id = await create_job(api)
    for expected in (1, 2):
        await run_job(api, job_id)
        await api.settle()
        assert len(await history(api, job_id)) == expected
        assert len(await history(api, job_id)) == expected
    assert (api.core.pages.hits, len(api.core.pages)) == (0, 0)  # another instance's runs would not reach it


def test_a_read_under_way_when_its_history_changes_keeps_nothing():
    cache = PageCache()
    key = job_history(7)
    ticket = cache.begin(key)
    cache.changed(key)  # a run of job 7 was written while the page was read
    cache.put(key, "page", b"stale", ticket)
    cache.end(key)
    assert cache.get(key, "page") is None
    ticket = cache.begin(key)
    cache.put(key, "page", b"fresh", ticket)
    cache.end(key)
    assert cache.get(key, "page") == b"fresh"
    ticket = cache.begin(key)
    cache.clear()  # retention deleted runs meanwhile
    cache.put(key, "other", b"stale", ticket)
    cache.end(key)
    assert cache.get(key, "other") is None and cache.get(key, "page") is None


def test_the_cache_is_bounded_by_histories_and_pages():
    cache = PageCache(histories=2, pages=2)
    for org in ("a", "b", "c"):
        key = org_history("maintenance", org)
        cache.put(key, 1, org.encode(), cache.begin(key))
        cache.end(key)
    assert cache.get(org_history("maintenance", "a"), 1) is None  # the least recently used went
    assert cache.get(org_history("maintenance", "c"), 1) == b"c"
    key = org_history("maintenance", "c")
    for page in (2, 3):
        cache.put(key, page, b"x", cache.begin(key))
        cache.end(key)
    assert len(cache) <= 3
