"""The cost of shaping an answer: dicts and `json.dumps` beside msgspec and pydantic models.

Builds and encodes the hot routes' answers (a page of 100 Volt MX job runs, a page of 10
AtScale maintenance runs in the engine envelope, one created schedule) the three ways, many
times, and prints microseconds per answer (the fastest of --repeat timings). The msgspec column
is what schedd does (schedd/api/models.py); the dict column is what it did; pydantic v2 is
the other candidate, declared with the same fields. CPU only, in one process: the figure
the HTTP benchmark's noise hides.

    .venv/bin/python benchmarks/models_bench.py [--rounds 2000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pydantic

from schedd import shapes
from schedd.families.org_maintenance import shapes as org_shapes
from schedd.families.service_jobs import shapes as job_shapes
from schedd.timefmt import local_seconds, rfc3339

ZONE = ZoneInfo("Europe/Berlin")
T0 = 1_790_000_000.123456


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- the rows the store hands the routes --------------------------------------------------

JOB_RUNS = [(1000 + n, T0 + 60 * n, T0 + 60 * n + 1.5, "0 * * * * ?", "done", True) for n in range(100)]
ORG_RUNS = [(f"9b2c1e4e-1f7a-4c55-8a8e-{n:012d}", "bench-org", "TimeBasedMaintenance", T0 + n, T0 + n + 1,
             T0 + n + 30, "failed" if n % 3 else "done", "exit 1" if n % 3 else None) for n in range(10)]


# -- before: dicts ------------------------------------------------------------------------

def job_page_dicts() -> bytes:
    return _dumps([{
        "jobRunId": i, "jobStartTime": local_seconds(s, ZONE), "jobEndTime": local_seconds(e, ZONE),
        "jobDuration": round((e - s) * 1000), "executionFrequency": cron, "executionStatus": "Success",
        "completeHistory": c} for i, s, e, cron, _, c in JOB_RUNS])


def org_page_dicts() -> bytes:
    data = [{"id": u, "organizationId": o, "triggerType": t, "creationTime": rfc3339(c), "startTime": rfc3339(s),
             "endTime": rfc3339(e), "status": st, "errorInformation": {"message": err} if err else {}}
            for u, o, t, c, s, e, st, err in ORG_RUNS]
    return _dumps({"status": {"code": 0, "message": "200 OK"}, "responseCreated": rfc3339(T0),
                   "response": {"data": data, "limit": 10, "offset": 0, "force_pull": False}})


def created_dicts() -> bytes:
    return _dumps({"status": {"code": 200, "message": "Time-based schedule successfully created."},
                   "responseCreated": rfc3339(T0), "response": {
                       "job_id": ORG_RUNS[0][0], "time_expression": "0 0 4 ? * * *",
                       "scheduler_type": "time-based/maintenance", "created_at": rfc3339(T0),
                       "created_by_user": "admin", "timezone": "UTC", "next_execution": rfc3339(T0 + 3600)}})


# -- after: msgspec models (schedd's) -------------------------------------------------------

def job_page_msgspec() -> bytes:
    return shapes.encode([job_shapes.JobRun(
        jobRunId=i, jobStartTime=local_seconds(s, ZONE), jobEndTime=local_seconds(e, ZONE),
        jobDuration=round((e - s) * 1000), executionFrequency=cron, executionStatus="Success",
        completeHistory=c) for i, s, e, cron, _, c in JOB_RUNS])


def org_page_msgspec() -> bytes:
    data = [org_shapes.MaintenanceRun(
        id=u, organizationId=o, triggerType=t, creationTime=rfc3339(c), startTime=rfc3339(s), endTime=rfc3339(e),
        status=st, errorInformation=org_shapes.ErrorInformation(message=err) if err else org_shapes.ErrorInformation())
        for u, o, t, c, s, e, st, err in ORG_RUNS]
    return shapes.encode(org_shapes.EngineEnvelope(
        status=org_shapes.EngineStatus(code=0, message="200 OK"), responseCreated=rfc3339(T0),
        response=org_shapes.MaintenanceRunPage(data=data, limit=10, offset=0, force_pull=False)))


def created_msgspec() -> bytes:
    return shapes.encode(org_shapes.EngineEnvelope(
        status=org_shapes.EngineStatus(code=200, message="Time-based schedule successfully created."),
        responseCreated=rfc3339(T0), response=org_shapes.MaintenanceScheduleCreated(
            job_id=ORG_RUNS[0][0], time_expression="0 0 4 ? * * *", created_at=rfc3339(T0),
            created_by_user="admin", timezone="UTC", next_execution=rfc3339(T0 + 3600))))


# -- the other candidate: pydantic v2, the same fields ---------------------------------------

class PJobRun(pydantic.BaseModel):
    jobRunId: int
    jobStartTime: str | None
    jobEndTime: str | None
    jobDuration: int
    executionFrequency: str | None
    executionStatus: str
    completeHistory: bool


JOB_PAGE = pydantic.TypeAdapter(list[PJobRun])


class PErrorInformation(pydantic.BaseModel):
    message: str | None = None


class PRun(pydantic.BaseModel):
    id: str
    organizationId: str | None
    triggerType: str
    creationTime: str
    startTime: str
    endTime: str
    status: str
    errorInformation: PErrorInformation


class PPage(pydantic.BaseModel):
    data: list[PRun]
    limit: int
    offset: int
    force_pull: bool


class PStatus(pydantic.BaseModel):
    code: int
    message: str


class PCreated(pydantic.BaseModel):
    job_id: str
    time_expression: str
    scheduler_type: str
    created_at: str
    created_by_user: str | None
    timezone: str
    next_execution: str


class PEnvelope(pydantic.BaseModel):
    status: PStatus
    responseCreated: str
    response: PPage | PCreated | None


def job_page_pydantic() -> bytes:
    return JOB_PAGE.dump_json([PJobRun(
        jobRunId=i, jobStartTime=local_seconds(s, ZONE), jobEndTime=local_seconds(e, ZONE),
        jobDuration=round((e - s) * 1000), executionFrequency=cron, executionStatus="Success",
        completeHistory=c) for i, s, e, cron, _, c in JOB_RUNS])


def org_page_pydantic() -> bytes:
    data = [PRun(id=u, organizationId=o, triggerType=t, creationTime=rfc3339(c), startTime=rfc3339(s),
                 endTime=rfc3339(e), status=st, errorInformation=PErrorInformation(message=err))
            for u, o, t, c, s, e, st, err in ORG_RUNS]
    return PEnvelope(status=PStatus(code=0, message="200 OK"), responseCreated=rfc3339(T0),
                     response=PPage(data=data, limit=10, offset=0, force_pull=False)).model_dump_json(
        exclude_none=True)


def created_pydantic() -> bytes:
    return PEnvelope(status=PStatus(code=200, message="Time-based schedule successfully created."),
                     responseCreated=rfc3339(T0), response=PCreated(
                         job_id=ORG_RUNS[0][0], time_expression="0 0 4 ? * * *",
                         scheduler_type="time-based/maintenance", created_at=rfc3339(T0), created_by_user="admin",
                         timezone="UTC", next_execution=rfc3339(T0 + 3600))).model_dump_json().encode()


CASES: dict[str, dict[str, Callable[[], bytes]]] = {
    "history_job page (100 runs)": {"dicts + json": job_page_dicts, "msgspec": job_page_msgspec,
                                    "pydantic": job_page_pydantic},
    "history_org page (10 runs)": {"dicts + json": org_page_dicts, "msgspec": org_page_msgspec,
                                   "pydantic": org_page_pydantic},
    "create_schedule answer": {"dicts + json": created_dicts, "msgspec": created_msgspec,
                               "pydantic": created_pydantic},
}


def measure(ways: list[Callable[[], bytes]], rounds: int, repeat: int) -> list[float]:
    """Microseconds per answer of each way: the fastest of `repeat` timings of `rounds` answers, the ways
    taking turns so that the machine's other load falls on each alike (the fastest is the least disturbed)."""
    timings: list[list[float]] = [[] for _ in ways]
    for _ in range(repeat):
        for index, make in enumerate(ways):
            start = time.perf_counter()
            for _ in range(rounds):
                make()
            timings[index].append((time.perf_counter() - start) / rounds * 1e6)
    return [min(found) for found in timings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="answers per timing (2000)")
    parser.add_argument("--repeat", type=int, default=7, help="timings per cell; the fastest is printed (7)")
    args = parser.parse_args()
    if job_page_msgspec() != job_page_dicts() or org_page_msgspec() != org_page_dicts() \
            or created_msgspec() != created_dicts():
        raise SystemExit("the models do not answer the bytes the dicts did")
    print("| answer | " + " | ".join(next(iter(CASES.values()))) + " |")
    print("| --- | ---: | ---: | ---: |")
    for name, ways in CASES.items():
        cells = measure(list(ways.values()), args.rounds, args.repeat)
        print(f"| {name} | " + " | ".join(f"{cell:.1f} µs" for cell in cells) + " |")


if __name__ == "__main__":
    main()
