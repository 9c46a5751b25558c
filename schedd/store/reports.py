"""Reports across families for the operator view: run history and the last day's figures.

Every statement takes the caller's visibility: the orgs it may see (or all), and whether
service jobs, which have no org and are for administrators only, are included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from schedd.store.db import Database
from schedd.store.runs import Run
from schedd.store.schedules import Schedule

# Each statement ends its WHERE with the caller's visibility: its orgs (or every org),
# never the families hidden from it (admin-only families for other users).
# A page of runs of every family, newest first, optionally by family, org and state.
SQL_LIST = """
SELECT * FROM runs
WHERE (:family IS NULL OR family = :family)
  AND (:org_id IS NULL OR org_id = :org_id)
  AND (:state IS NULL OR state = :state)
  AND (:all_orgs OR org_id IN (SELECT value FROM json_each(:orgs)))
  AND family NOT IN (SELECT value FROM json_each(:hidden))
ORDER BY id DESC LIMIT :limit OFFSET :offset"""
# Runs created since a time, counted by hour (0 = the first hour) and state.
SQL_OUTCOMES = """
SELECT CAST((created_at - :since) / 3600 AS INTEGER) AS hour, state, count(*) AS runs
FROM runs
WHERE created_at >= :since
  AND (:all_orgs OR org_id IN (SELECT value FROM json_each(:orgs)))
  AND family NOT IN (SELECT value FROM json_each(:hidden))
GROUP BY hour, state"""
# Start delay (start minus due time) of scheduled runs created since a time, by hour.
SQL_DELAYS = """
SELECT CAST((created_at - :since) / 3600 AS INTEGER) AS hour, count(*) AS runs,
       avg(started_at - due_at) AS mean, max(started_at - due_at) AS worst
FROM runs
WHERE created_at >= :since AND due_at IS NOT NULL AND started_at IS NOT NULL
  AND (:all_orgs OR org_id IN (SELECT value FROM json_each(:orgs)))
  AND family NOT IN (SELECT value FROM json_each(:hidden))
GROUP BY hour"""
# Schedules of every family by family, org and active flag (constant text; values bound).
_SCHEDULES_WHERE = """
WHERE (:family IS NULL OR family = :family)
  AND (:org_id IS NULL OR org_id = :org_id)
  AND (:active IS NULL OR active = :active)
  AND (:all_orgs OR org_id IN (SELECT value FROM json_each(:orgs)))
  AND family NOT IN (SELECT value FROM json_each(:hidden))"""
# A page of those schedules, oldest first.
SQL_SCHEDULES = f"SELECT * FROM schedules {_SCHEDULES_WHERE} ORDER BY id LIMIT :limit OFFSET :offset"  # noqa: S608
# How many schedules the same filters match.
SQL_SCHEDULES_COUNT = f"SELECT count(*) FROM schedules {_SCHEDULES_WHERE}"  # noqa: S608


@dataclass(frozen=True, slots=True)
class Visibility:
    """What one caller may see: `orgs` None means every org; never the families in `hidden`."""

    orgs: tuple[str, ...] | None
    hidden: tuple[str, ...] = ()

    def params(self) -> dict[str, object]:
        return {"all_orgs": int(self.orgs is None), "orgs": json.dumps(list(self.orgs or ())),
                "hidden": json.dumps(list(self.hidden))}


@dataclass(frozen=True, slots=True)
class HourDelay:
    hour: int
    runs: int
    mean: float
    worst: float


async def list_runs(
    db: Database, seen: Visibility, *, family: str | None, org_id: str | None, state: str | None,
    limit: int, offset: int,
) -> list[Run]:
    params = {"family": family, "org_id": org_id, "state": state, "limit": limit, "offset": offset,
              **seen.params()}
    return [Run.from_row(row) for row in await db.fetchall(SQL_LIST, params)]


async def outcomes_by_hour(db: Database, seen: Visibility, *, since: float) -> dict[int, dict[str, int]]:
    """{hour: {state: runs}} for the runs created since `since`."""
    found: dict[int, dict[str, int]] = {}
    for row in await db.fetchall(SQL_OUTCOMES, {"since": since, **seen.params()}):
        found.setdefault(row["hour"], {})[row["state"]] = row["runs"]
    return found


async def delays_by_hour(db: Database, seen: Visibility, *, since: float) -> list[HourDelay]:
    rows = await db.fetchall(SQL_DELAYS, {"since": since, **seen.params()})
    return [HourDelay(row["hour"], row["runs"], max(0.0, row["mean"]), max(0.0, row["worst"]))
            for row in rows]


async def list_schedules(
    db: Database, seen: Visibility, *, family: str | None, org_id: str | None, active: bool | None,
    limit: int, offset: int,
) -> tuple[list[Schedule], int]:
    """A page of the schedules the caller may see, and how many match in all."""
    params = {"family": family, "org_id": org_id, "active": None if active is None else int(active),
              **seen.params()}
    total = await db.fetchone(SQL_SCHEDULES_COUNT, params)
    rows = await db.fetchall(SQL_SCHEDULES, {**params, "limit": limit, "offset": offset})
    return [Schedule.from_row(row) for row in rows], int(total[0]) if total else 0
