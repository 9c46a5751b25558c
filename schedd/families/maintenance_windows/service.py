"""Maintenance windows, the timers that move them, and the gate on service jobs.

A window moves `scheduled -> in-progress` at its scheduled start and `-> succeed` at its
scheduled end, by one engine timer per window (re-armed from the database at start-up,
so a move that fell due while the daemon was down happens at once). While a window of
service S is in progress with `service_status` `down`, runs of the jobs that call S are
skipped: the gate is an in-memory map kept in step with every change.

Who may write a window: an admin writes every window; a user granted a scope (`schedd
user grant NAME --scope S`) writes the windows of that scope's services; nobody else
writes any. Internal events, and who wrote each event, are shown only to those who may
write the window; everyone else reads what the public reads.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, overload
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import msgspec
from msgspec import UNSET, UnsetType

from schedd import shapes
from schedd.config import ServiceConfig
from schedd.core import Core
from schedd.cron import load_zone
from schedd.engine import WINDOW
from schedd.errors import Forbidden, NotFound, ValidationError
from schedd.families.maintenance_windows.shapes import (
    DATE_RE,
    DATE_RULE,
    FILTER_DATES,
    LIMITS,
    REQUIRED,
    Comment,
    MaintenanceFilters,
    MaintenanceInput,
)
from schedd.inputs import text_fault
from schedd.states import WindowState, values
from schedd.store.accounts import User
from schedd.store.schedules import Schedule
from schedd.store.windows import NewEvent, Window
from schedd.timefmt import LOCAL_MINUTES, local_minutes

log = logging.getLogger("schedd.windows")

STATUSES = values(WindowState)
DATE_FORMAT = LOCAL_MINUTES
_TEXTS = tuple(LIMITS)
"""The free-text fields of a window, which the input rule checks before their bounds."""


@dataclass(frozen=True, slots=True)
class Access:
    """What one caller may write: every window (an admin), the windows of its granted scopes, or none."""

    user: User | None = None
    scopes: frozenset[int] = frozenset()

    @property
    def everything(self) -> bool:
        return self.user is not None and self.user.is_admin

    @property
    def writes_any(self) -> bool:
        return self.everything or bool(self.scopes)


PUBLIC = Access()
"""An anonymous caller: reads what the public reads, writes nothing."""


class Invalid(ValidationError):
    """Several fields rejected at once: `reasons` maps each field to its problems."""

    def __init__(self, reasons: dict[str, list[str]]) -> None:
        self.reasons = reasons
        field = next(iter(reasons))
        super().__init__(field, reasons[field][0])


# -- dates -------------------------------------------------------------------------

def parse_date(value: object, field: str, zone: ZoneInfo) -> float:
    """`YYYY-MM-DDTHH:MM` in the daemon's zone (Prod-Manager's dates are naive)."""
    if not isinstance(value, str) or not DATE_RE.fullmatch(value):
        raise ValidationError(field, DATE_RULE)
    try:
        local = datetime.strptime(value, DATE_FORMAT)
    except ValueError as exc:
        raise ValidationError(field, f"{value!r} is not a valid date") from exc
    if not 1970 <= local.year <= 9998:
        raise ValidationError(field, "year must be from 1970 to 9998")
    return local.replace(tzinfo=zone).timestamp()


@overload
def format_date(at: float, zone: ZoneInfo) -> str: ...
@overload
def format_date(at: None, zone: ZoneInfo) -> None: ...
@overload
def format_date(at: float | None, zone: ZoneInfo) -> str | None: ...
def format_date(at: float | None, zone: ZoneInfo) -> str | None:
    """Prod-Manager's date: `YYYY-MM-DDTHH:MM` in `zone`; None for what has not happened."""
    return None if at is None else local_minutes(at, zone)


# -- the rules (pure) --------------------------------------------------------------

def next_move(window: Window) -> float | None:
    if window.status == WindowState.SCHEDULED:
        return window.scheduled_start_date
    if window.status == WindowState.IN_PROGRESS:
        return window.scheduled_end_date
    return None


def advance(window: Window, at: float) -> tuple[Window, list[NewEvent]]:
    """Every move that is due at `at`, with the events that record them."""
    events: list[NewEvent] = []
    if window.status == WindowState.SCHEDULED and at >= window.scheduled_start_date:
        window = replace(window, status=WindowState.IN_PROGRESS, start_date=window.scheduled_start_date)
        events.append(NewEvent("Status changed from scheduled to in-progress: the scheduled start was reached",
                               "update"))
    if window.status == WindowState.IN_PROGRESS and at >= window.scheduled_end_date:
        window = replace(window, status=WindowState.SUCCEED, end_date=window.scheduled_end_date)
        events.append(NewEvent("Status changed from in-progress to succeed: the scheduled end was reached",
                               "update"))
    return window, events


def blocks_service(window: Window, at: float) -> bool:
    """Whether the window blocks the service jobs that call its service at `at`.

    The window is judged by its times as well as its status, so a fire due at the very
    instant a window starts or ends is gated the same whichever timer the loop handles
    first: a window covers [scheduled start, scheduled end).
    """
    if window.service_status != "down" or at >= window.scheduled_end_date:
        return False
    if window.status == WindowState.IN_PROGRESS:
        return True
    return window.status == WindowState.SCHEDULED and at >= window.scheduled_start_date


# -- validation --------------------------------------------------------------------

def _given(value: str | UnsetType) -> str | None:
    """An optional text field of the form: None when it was absent."""
    return None if isinstance(value, UnsetType) else value


def _sentence(reason: str) -> str:
    """A reason of the input rule in the style of Prod-Manager's reasons."""
    return reason[:1].upper() + reason[1:] + "."


def _link_fault(link: str) -> str | None:
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in link for c in " \r\n\t"):
        return "Must be a valid http(s) URL."
    return None


class Windows:
    """The windows of one daemon: service functions, timers, and the gate."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._down: dict[int, dict[int, Window]] = {}  # service id -> open down windows by id

    @property
    def zone(self) -> ZoneInfo:
        return load_zone(self.core.config.scheduler.timezone)

    # -- config lookups --

    def service_by_id(self, service_id: int) -> ServiceConfig | None:
        return next((s for s in self.core.config.services.values() if s.id == service_id), None)

    def scope_by_id(self, scope_id: int):
        return next((s for s in self.core.config.scopes.values() if s.id == scope_id), None)

    # -- the gate --

    def gate(self, schedule: Schedule, at: float) -> int | None:
        """The id of a window that blocks this service job at `at`, or None."""
        name = (schedule.spec.get("jobServiceInfo") or {}).get("serviceName")
        service = self.core.config.services.get(name) if isinstance(name, str) else None
        if service is None or service.id is None:
            return None
        blocking = [w.id for w in self._down.get(service.id, {}).values() if blocks_service(w, at)]
        return min(blocking) if blocking else None

    def _track(self, window: Window | None, window_id: int) -> None:
        for open_windows in self._down.values():
            open_windows.pop(window_id, None)
        if window is not None and window.service_status == "down" and next_move(window) is not None:
            self._down.setdefault(window.service_id, {})[window_id] = window
        if window is not None and (ticks := next_move(window)) is not None:
            self.core.engine.set(WINDOW, window_id, ticks)
        else:
            self.core.engine.cancel(WINDOW, window_id)

    async def load(self, at: float) -> None:
        """Arm the timer of every window that still moves, and build the gate."""
        for window in await self.core.store.windows.open_windows():
            self._track(window, window.id)

    async def refresh(self, window_ids: list[int]) -> None:
        """Windows another instance changed: the gate and the timers follow them."""
        for window_id in window_ids:
            self._track(await self.core.store.windows.get(window_id, internal=True), window_id)

    async def on_due(self, items: list[tuple[int, float]], at: float) -> None:
        if not self.core.runner.firing:
            return  # the instance that fires moves the windows; it re-arms these when it takes over
        for window_id, _ in items:
            window = await self.core.store.windows.get(window_id, internal=True)
            if window is None:
                continue
            moved, events = advance(window, at)
            if events:
                saved = await self.core.store.windows.save(moved, events, at=at)
                log.info("action=window_moved window=%d status=%s", window_id, moved.status)
                window = saved or moved
            self._track(window, window_id)

    # -- service functions --

    def validate(self, data: Mapping[str, Any], *, current: Window | None) -> Window:
        """The window `data` describes (create, or a whole update of `current`); Invalid lists every problem.

        Every field is checked by `MaintenanceInput` (type, required, bounds) and, where it
        passes, by what only this family knows (the input rule, the link's URL, the dates'
        calendar), each field's reasons in the model's order; then the relations: the end
        after the start, the scope and service in the config, the service in that scope.
        """
        zone = self.zone
        text_faults = {name: [_sentence(fault)] for name in _TEXTS
                       if isinstance(value := data.get(name), str) and (fault := text_fault(value)) is not None}
        form, found = shapes.check(MaintenanceInput, data)
        reasons: dict[str, list[str]] = {}
        dates: dict[str, float | None] = {}
        for name in MaintenanceInput.CHECK_ORDER:
            if name in text_faults:
                reasons[name] = text_faults[name]
            elif name in found:
                reasons[name] = [found[name]]
            elif name == "external_link" and form.external_link and (fault := _link_fault(form.external_link)):
                reasons[name] = [fault]
            elif name == "status" and current is not None and not form.status:
                reasons[name] = [REQUIRED]
            elif name.endswith("_date"):
                dates[name] = self._date(getattr(form, name), name, zone, reasons)
        start, end = dates.get("scheduled_start_date"), dates.get("scheduled_end_date")
        if start is not None and end is not None and end <= start:
            reasons.setdefault("scheduled_end_date", []).append("Must be after scheduled_start_date.")
        scope_id = None if "scope" in reasons else int(form.scope)
        service_id = None if "service" in reasons else int(form.service)
        scope = self.scope_by_id(scope_id) if scope_id is not None else None
        if scope_id is not None and scope is None:
            reasons.setdefault("scope", []).append(f"No scope with id {scope_id}.")
        service = self.service_by_id(service_id) if service_id is not None else None
        if service_id is not None and service is None:
            reasons.setdefault("service", []).append(f"No service with id {service_id}.")
        if scope is not None and service is not None and service.scope != scope.name:
            reasons.setdefault("service", []).append(f"Service {service_id} does not belong to scope {scope_id}.")
        if reasons or scope_id is None or service_id is None or start is None or end is None:
            raise Invalid(reasons)  # every missing value has a reason, so it is never empty here
        started, ended = dates.get("start_date"), dates.get("end_date")
        return Window(
            id=current.id if current else 0, name=form.name, description=_given(form.description),
            external_reference=_given(form.external_reference), external_link=_given(form.external_link),
            status=form.status or "scheduled", scope_id=scope_id, service_id=service_id,
            service_status=form.service_status,
            creation_date=current.creation_date if current else 0.0,
            scheduled_start_date=start, scheduled_end_date=end,
            start_date=started if "start_date" in data or current is None else current.start_date,
            end_date=ended if "end_date" in data or current is None else current.end_date)

    @staticmethod
    def _date(value: str, name: str, zone: ZoneInfo, reasons: dict[str, list[str]]) -> float | None:
        """A date the model let through (None: absent), parsed in `zone`; a bad one is a reason."""
        if value is UNSET:
            return None
        try:
            return parse_date(value, name, zone)
        except ValidationError as exc:
            reasons[name] = [exc.reason]
            return None

    # -- who may write --

    async def access(self, user: User | None) -> Access:
        """What `user` may write (its grants are read now, so a grant or revoke counts at once)."""
        if user is None:
            return PUBLIC
        if user.is_admin:
            return Access(user)
        return Access(user, await self.core.store.grants.scopes_of(user.id))

    def scopes_of(self, window: Window) -> frozenset[int]:
        """The scopes a window belongs to: the one it names, and its service's scope in the config
        now (a service moved to another scope takes its windows along)."""
        service = self.service_by_id(window.service_id)
        scope = self.core.config.scopes.get(service.scope) if service is not None and service.scope else None
        return frozenset({window.scope_id} | ({scope.id} if scope is not None else set()))

    def may_write(self, access: Access, window: Window) -> bool:
        return access.everything or (access.user is not None and self.scopes_of(window) <= access.scopes)

    def shown(self, access: Access, window: Window) -> Window:
        """`window` as `access` may read it: internal events and authors only for those who may write it."""
        if self.may_write(access, window):
            return window
        return window.with_events(tuple(replace(e, author=None) for e in window.events if not e.internal))

    def check(self, access: Access, window: Window | None = None) -> User:
        """The writing user, or Forbidden: no grant at all, or none that covers `window`."""
        if access.user is None or not access.writes_any:
            raise Forbidden("changing maintenance windows needs an administrator or a grant of the window's scope")
        if window is not None and not self.may_write(access, window):
            names = {s.id: s.name for s in self.core.config.scopes.values()}
            missing = sorted(self.scopes_of(window) - access.scopes)
            shown = ", ".join(f"{names.get(i, '?')} ({i})" for i in missing)
            raise Forbidden(f"changing this maintenance window needs a grant of scope {shown}")
        return access.user

    # -- service functions that write --

    async def create(self, access: Access, data: Mapping[str, Any], *, at: float) -> Window:
        self.check(access)
        window = self.validate(data, current=None)
        user = self.check(access, window)
        window, moves = advance(window, at)
        created = await self.core.store.windows.insert(
            window, NewEvent("Maintenance created", "create", author_id=user.id), at=at)
        if moves:
            created = await self.core.store.windows.save(created, moves, at=at) or created
        self._track(created, created.id)
        log.info("action=window_created window=%d service=%d service_status=%s user=%s",
                 created.id, created.service_id, created.service_status, user.name)
        return created

    async def update(self, access: Access, window_id: int, data: Mapping[str, Any], *, at: float) -> Window:
        self.check(access)
        current = await self.get(window_id, internal=True)
        self.check(access, current)
        window = self.validate(data, current=current)
        user = self.check(access, window)
        changes = _describe_changes(current, window, self.zone)
        events = [NewEvent(f"Maintenance updated: {changes}", "update", author_id=user.id)] if changes else []
        window, moves = advance(window, at)
        saved = await self.core.store.windows.save(window, events + moves, at=at)
        if saved is None:
            raise NotFound("maintenance", window_id)
        self._track(saved, window_id)
        log.info("action=window_updated window=%d user=%s", window_id, user.name)
        return saved

    async def delete(self, access: Access, window_id: int) -> None:
        self.check(access)
        user = self.check(access, await self.get(window_id, internal=False))
        if not await self.core.store.windows.delete(window_id):
            raise NotFound("maintenance", window_id)
        self._track(None, window_id)
        log.info("action=window_deleted window=%d user=%s", window_id, user.name)

    async def comment(self, access: Access, window_id: int, data: Mapping[str, Any], *, at: float) -> None:
        self.check(access)
        user = self.check(access, await self.get(window_id, internal=False))
        text = data.get("comment")
        if isinstance(text, str) and text.strip() and (fault := text_fault(text)) is not None:
            raise Invalid({"comment": [_sentence(fault)]})
        form, found = shapes.check(Comment, data)
        if found:
            field = next(iter(found))
            raise Invalid({field: [found[field]]})
        text = form.comment
        internal = form.internal in (True, 1, "1", "true")
        event = NewEvent(text, "comment", internal, author_id=user.id)
        if not await self.core.store.windows.add_event(window_id, event, at=at):
            raise NotFound("maintenance", window_id)
        log.info("action=window_commented window=%d internal=%d user=%s", window_id, internal, user.name)

    # -- reads --

    async def read(self, access: Access, window_id: int) -> Window:
        """One window as `access` may see it."""
        window = await self.get(window_id, internal=access.writes_any)
        return self.shown(access, window)

    async def get(self, window_id: int, *, internal: bool) -> Window:
        window = await self.core.store.windows.get(window_id, internal=internal)
        if window is None:
            raise NotFound("maintenance", window_id)
        return window

    async def list(self, filters: Mapping[str, Any], *, page: int, per_page: int,
                   internal: bool, timelines: bool = True) -> tuple[list[Window], int]:
        """A page of the windows the filters match, and how many match; `per_page` 0 counts only."""
        return await self.core.store.windows.list_page(
            self.filters(filters), limit=per_page, offset=(page - 1) * per_page,
            internal=internal, timelines=timelines)

    def coming(self, at: float) -> AsyncIterator[builtins.list[Window]]:
        """Every window that has not ended at `at` (its minute), by scheduled start, in batches."""
        since = self.filters({"end_after": format_date(at, self.zone)})["end_after"]
        return self.core.store.windows.ending_after(since)

    def filters(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """Prod-Manager's list filters (`MaintenanceFilters`), validated; dates in the daemon's zone."""
        form, faults = shapes.check(MaintenanceFilters, query)
        for name, reason in faults.items():
            raise Invalid({name: [reason]})
        found: dict[str, Any] = {name: value for name, value in msgspec.structs.asdict(form).items()
                                 if value is not UNSET}
        if "external_reference" in found:
            found["external_reference"] = found["external_reference"][:LIMITS["external_reference"]]
        for name in FILTER_DATES:
            if name in found:
                try:
                    found[name] = parse_date(found[name], name, self.zone)
                except ValidationError as exc:
                    raise Invalid({name: [exc.reason]}) from exc
        return found


def _describe_changes(before: Window, after: Window, zone: ZoneInfo) -> str:
    changed = []
    for name in ("name", "description", "external_reference", "external_link", "status", "scope_id",
                 "service_id", "service_status", "scheduled_start_date", "scheduled_end_date",
                 "start_date", "end_date"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            if name.endswith("_date"):
                old, new = format_date(old, zone), format_date(new, zone)
            changed.append(f"{name.removesuffix('_id')} {old!s} -> {new!s}")
    return "; ".join(changed)


def install(core: Core) -> Windows:
    windows = Windows(core)
    core.engine.on(WINDOW, windows.on_due)
    core.runner.gate = windows.gate
    core.startup.append(windows.load)
    core.change_hooks["window"] = windows.refresh
    return windows
