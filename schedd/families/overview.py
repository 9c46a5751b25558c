"""Schedules and runs of every family at once, as one user may see them (the operator view's reads).

Who may see what is decided here, once: a job of an admin-only family (it belongs to no
org) is for administrators; any other job goes by its org. The operator view calls these
functions and reads no store itself.
"""

from __future__ import annotations

from schedd.core import Core
from schedd.errors import NotFound
from schedd.families.base import FAMILIES
from schedd.store import reports
from schedd.store.accounts import User
from schedd.store.reports import HourDelay
from schedd.store.runs import Run
from schedd.store.schedules import Schedule


def visibility(user: User) -> reports.Visibility:
    hidden = () if user.is_admin else tuple(f.name for f in FAMILIES if f.admin_only)
    return reports.Visibility(orgs=None if user.is_admin else user.orgs, hidden=hidden)


def may_see(user: User, family: str, org_id: str | None) -> bool:
    """Jobs of an admin-only family belong to no org and are for administrators; the rest go by org."""
    if FAMILIES.get(family).admin_only:
        return user.is_admin
    return org_id is not None and user.can_see(org_id)


def family_names(user: User) -> list[tuple[str, str]]:
    """The families whose jobs the user may see: (wire name, label)."""
    return [(f.name, f.label) for f in FAMILIES if user.is_admin or not f.admin_only]


def family_label(family: str) -> str:
    """How the operator view names a family (its wire name, should it no longer be installed)."""
    found = FAMILIES.find(family)
    return found.label if found is not None else family


async def visible_orgs(core: Core, user: User) -> list[str]:
    return await core.store.accounts.list_orgs() if user.is_admin else list(user.orgs)


async def schedule(core: Core, user: User, ident: int) -> Schedule:
    """One schedule the user may see; 404 alike for one that does not exist and one hidden from the user."""
    found = await core.store.schedules.get(ident)
    if found is None or not may_see(user, found.family, found.org_id):
        raise NotFound("schedule", ident)
    return found


async def run(core: Core, user: User, uid: str) -> tuple[Run, Schedule | None]:
    """One run the user may see, with its schedule if it still has one."""
    found = await core.store.runs.get_by_uid(uid)
    if found is None or not may_see(user, found.family, found.org_id):
        raise NotFound("run", uid)
    return found, await core.store.schedules.get(found.schedule_id) if found.schedule_id else None


async def schedules(
    core: Core, user: User, *, family: str | None, org_id: str | None, active: bool | None, limit: int, offset: int,
) -> tuple[list[Schedule], int]:
    """A page of the schedules the user may see, and how many match in all."""
    return await core.store.reports.list_schedules(
        visibility(user), family=family, org_id=org_id, active=active, limit=limit, offset=offset)


async def runs(
    core: Core, user: User, *, family: str | None, org_id: str | None, state: str | None, limit: int, offset: int,
) -> tuple[list[Run], dict[int, Schedule]]:
    """A page of the runs the user may see, newest first, with the schedules they belong to."""
    found = await core.store.reports.list_runs(visibility(user), family=family, org_id=org_id, state=state,
                                    limit=limit, offset=offset)
    return found, await core.store.schedules.get_many(sorted({r.schedule_id for r in found if r.schedule_id}))


async def outcomes_by_hour(core: Core, user: User, *, since: float) -> dict[int, dict[str, int]]:
    return await core.store.reports.outcomes_by_hour(visibility(user), since=since)


async def delays_by_hour(core: Core, user: User, *, since: float) -> list[HourDelay]:
    return await core.store.reports.delays_by_hour(visibility(user), since=since)
