"""Reports across families for the operator view, in PostgreSQL (the SQLite twin: schedd/store/reports.py).

Every statement ends its WHERE with the caller's visibility: $1 every org (or the orgs in
$2), never the families in $3.
"""

from __future__ import annotations

from typing import Any

from schedd.store.postgres.db import PgDatabase
from schedd.store.reports import HourDelay, Visibility
from schedd.store.runs import Run
from schedd.store.schedules import Schedule

_SEEN = "($1::boolean OR org_id = ANY($2::text[])) AND NOT (family = ANY($3::text[]))"
# A page of runs of every family, newest first, optionally by family, org and state.
SQL_LIST = f"""
SELECT * FROM runs
WHERE {_SEEN}
  AND ($4::text IS NULL OR family = $4)
  AND ($5::text IS NULL OR org_id = $5)
  AND ($6::text IS NULL OR state = $6)
ORDER BY id DESC LIMIT $7 OFFSET $8"""  # noqa: S608 - built from constants only
# Runs created since a time, counted by hour (0 = the first hour) and state.
SQL_OUTCOMES = f"""
SELECT trunc((created_at - $4) / 3600)::integer AS hour, state, count(*) AS runs
FROM runs
WHERE created_at >= $4::double precision AND {_SEEN}
GROUP BY hour, state"""  # noqa: S608 - built from constants only
# Start delay (start minus due time) of scheduled runs created since a time, by hour (in order).
SQL_DELAYS = f"""
SELECT trunc((created_at - $4) / 3600)::integer AS hour, count(*) AS runs,
       avg(started_at - due_at) AS mean, max(started_at - due_at) AS worst
FROM runs
WHERE created_at >= $4::double precision AND due_at IS NOT NULL AND started_at IS NOT NULL AND {_SEEN}
GROUP BY hour ORDER BY hour"""  # noqa: S608 - built from constants only
# Schedules of every family by family, org and active flag (constant text; values bound).
_SCHEDULES_WHERE = f"""
WHERE {_SEEN}
  AND ($4::text IS NULL OR family = $4)
  AND ($5::text IS NULL OR org_id = $5)
  AND ($6::integer IS NULL OR active = $6)"""
# A page of those schedules, oldest first.
SQL_SCHEDULES = f"SELECT * FROM schedules {_SCHEDULES_WHERE} ORDER BY id LIMIT $7 OFFSET $8"  # noqa: S608
# How many schedules the same filters match.
SQL_SCHEDULES_COUNT = f"SELECT count(*) FROM schedules {_SCHEDULES_WHERE}"  # noqa: S608


def _seen(seen: Visibility) -> tuple[Any, ...]:
    return seen.orgs is None, list(seen.orgs or ()), list(seen.hidden)


class PgReportStore:
    """Reports across families for the operator view, in PostgreSQL."""

    __slots__ = ("_db",)

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def list_runs(
        self, seen: Visibility, *, family: str | None, org_id: str | None, state: str | None, limit: int, offset: int
    ) -> list[Run]:
        rows = await self._db.fetch(SQL_LIST, *_seen(seen), family, org_id, state, limit, offset)
        return [Run.from_row(row) for row in rows]

    async def outcomes_by_hour(self, seen: Visibility, *, since: float) -> dict[int, dict[str, int]]:
        found: dict[int, dict[str, int]] = {}
        for row in await self._db.fetch(SQL_OUTCOMES, *_seen(seen), since):
            found.setdefault(row["hour"], {})[row["state"]] = row["runs"]
        return found

    async def delays_by_hour(self, seen: Visibility, *, since: float) -> list[HourDelay]:
        rows = await self._db.fetch(SQL_DELAYS, *_seen(seen), since)
        return [HourDelay(row["hour"], row["runs"], max(0.0, row["mean"]), max(0.0, row["worst"]))
                for row in rows]

    async def list_schedules(
        self, seen: Visibility, *, family: str | None, org_id: str | None, active: bool | None, limit: int, offset: int
    ) -> tuple[list[Schedule], int]:
        params = (*_seen(seen), family, org_id, None if active is None else int(active))
        total = await self._db.fetchval(SQL_SCHEDULES_COUNT, *params)
        rows = await self._db.fetch(SQL_SCHEDULES, *params, limit, offset)
        return [Schedule.from_row(row) for row in rows], int(total or 0)
