"""Public ids: UUID version 4's layout, unguessable (74 random bits), in creation order; ids made
before (fully random) keep working."""

from __future__ import annotations

import uuid

from schedd.ids import new_uid
from tests.support import sql

SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/{org}"
DELETE = "/aggregates/maintenance/scheduler/jobs/orgId/{org}/jobId/{job}"
T = 1_767_225_600.0


def test_an_id_is_a_version_4_uuid_that_sorts_by_creation_time():
    ids = [new_uid(T + k / 1000) for k in range(200)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    assert ids == sorted(ids)
    assert int(ids[0][:8] + ids[0][9:13], 16) == int(T * 1000) & ((1 << 48) - 1)


def test_ids_of_one_millisecond_differ_in_74_random_bits():
    ids = {new_uid(T) for _ in range(5000)}
    assert len(ids) == 5000
    free = 0
    values = [uuid.UUID(text).int for text in ids]
    for bit in range(80):
        if len({(v >> bit) & 1 for v in values}) == 2:
            free += 1
    assert free == 74  # every bit but the time's, the version's and the variant's varies


async def create(api, org: str = "acme") -> str:
    body = {"time_expression": "0 0 4 ? * * *", "scheduler_type": "time-based"}
    response, answer = await api.call("POST", SCHEDULES.format(org=org), "alice", json=body)
    assert response.status in (200, 201), answer
    return answer["response"]["job_id"]


async def test_schedules_get_ids_in_creation_order_and_an_id_made_before_keeps_working(api):
    made = [await create(api) for _ in range(3)]
    stamps = [m[:13] for m in made]  # the creation time's 48 bits: ids of one millisecond may sort either way
    assert stamps == sorted(stamps) and all(uuid.UUID(m).version == 4 for m in made)
    old = str(uuid.uuid4())  # as ids were made before: all 122 bits random
    await sql.execute(api.core.store, "UPDATE schedules SET uid = ? WHERE uid = ?", (old, made[1]))
    _, listed = await api.call("GET", SCHEDULES.format(org="acme"), "alice")
    assert sorted(s["job_id"] for s in listed["response"]) == sorted([made[0], old, made[2]])
    response, _ = await api.call("DELETE", DELETE.format(org="acme", job=old), "alice")
    assert response.status == 200
    _, inactive = await api.call("GET", SCHEDULES.format(org="acme") + "?active=false", "alice")
    assert [s["job_id"] for s in inactive["response"]] == [old]  # a delete deactivates, by the old id
