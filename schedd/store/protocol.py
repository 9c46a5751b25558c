"""The store as an interface: the named operations the rest of schedd calls, with their records.

`Store` is what a backend provides: one group of operations per kind of record
(`accounts`, `schedules`, `runs`, `windows`, `grants`, `reports`) and its lifecycle
(`open`, `close`, `flush`, `backup`). Every write an operation makes is durable when the
operation returns. The records are the frozen dataclasses of the store modules
(`Schedule`, `Run`, `Window`, `User`, ...); no operation takes or gives a connection, a
cursor or SQL, so a PostgreSQL backend can satisfy the same Protocol without callers
changing. `schedd.store.sqlite.SqliteStore` is the SQLite backend; tests/test_store_protocol.py
runs against every backend listed there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from schedd.store.accounts import TokenInfo, TokenRecord, User
from schedd.store.reports import HourDelay, Visibility
from schedd.store.runs import Finish, Fired, NewRun, Outcome, Run, RunSummary, SkipText
from schedd.store.schedules import Cap, NewSchedule, Schedule, Scope
from schedd.store.windows import NewEvent, Window


class RevocationWatch(Protocol):
    """The revocation epoch (a count every revocation raises), read without waiting on the event loop.

    `epoch()` may lag a revocation committed elsewhere by at most a few milliseconds."""

    def epoch(self) -> int: ...

    def close(self) -> None: ...


class AccountStore(Protocol):
    """Organizations, users and their tokens."""

    async def ensure_org(self, org_id: str, at: float) -> None: ...

    async def create_org(self, org_id: str, at: float) -> bool:
        """Create an organization; False when it already existed."""
        ...

    async def org_exists(self, org_id: str) -> bool: ...

    async def list_orgs(self) -> list[str]: ...

    async def create_user(
        self,
        name: str,
        password_hash: str,
        *,
        email: str | None,
        is_admin: bool,
        orgs: tuple[str, ...],
        create_orgs: bool = True,
        at: float,
    ) -> int:
        """Create a user and its memberships; Conflict if the name is taken."""
        ...

    async def get_user(self, name: str) -> User: ...

    async def find_user(self, name: str) -> User | None: ...

    async def find_password_hash(self, name: str) -> str | None: ...

    async def add_tokens(
        self, user_id: int, tokens: Sequence[tuple[bytes, str, float]], *, name: str | None, at: float
    ) -> None:
        """Store tokens as (hash, kind, expires_at) rows, all in one commit."""
        ...

    async def lookup_token(self, token_hash: bytes) -> TokenRecord | None: ...

    async def revoke_token(self, token_hash: bytes, at: float) -> bool: ...

    async def revoke_token_id(self, token_id: int, at: float) -> bool:
        """Revoke a token by id: True, or False when it was revoked already; NotFound if unknown."""
        ...

    async def list_tokens(self, user: str | None = None) -> list[TokenInfo]: ...

    async def list_users(self) -> list[User]: ...

    async def set_disabled(self, name: str, disabled_at: float | None, at: float) -> int:
        """Disable a user and revoke every token it has (or enable it: `disabled_at` None)."""
        ...

    async def set_password(self, name: str, password_hash: str, *, revoke_tokens: bool, at: float) -> int:
        """A new password hash; with `revoke_tokens` every token of the user is revoked too (count returned)."""
        ...

    async def remove_member(self, name: str, org_id: str) -> bool:
        """Take a user out of an organization; False when it was not a member, NotFound if unknown."""
        ...

    async def purge_tokens(self, before: float) -> int: ...

    def revocation_watch(self) -> RevocationWatch:
        """A watch over the revocation epoch, for checking cached tokens."""
        ...


class ScheduleStore(Protocol):
    """Schedules of every family."""

    async def insert(self, new: NewSchedule, *, cap: Cap | None = None) -> Schedule:
        """Create a schedule; Conflict when a service job's name is taken, CapReached when `cap` is full."""
        ...

    async def replace(self, schedule_id: int, new: NewSchedule, *, by: str | None, at: float) -> Schedule:
        """Replace a schedule's definition; counters and history stay."""
        ...

    async def get(self, schedule_id: int) -> Schedule | None: ...

    async def get_many(self, ids: list[int]) -> dict[int, Schedule]: ...

    async def get_by_uid(self, family: str, uid: str) -> Schedule | None: ...

    async def list_scope(
        self,
        family: str,
        org_id: str,
        *,
        project_id: str | None = None,
        cube_id: str | None = None,
        active: bool | None = None,
    ) -> list[Schedule]: ...

    async def list_family(self, family: str) -> list[Schedule]: ...

    def scope_batches(
        self,
        scope: Scope,
        *,
        offset: int = 0,
        limit: int | None = None,
        size: int | None = None,
        with_kept: bool = False,
    ) -> AsyncIterator[list[tuple[Schedule, int]]]:
        """The scope's schedules in id order from `offset` on (at most `limit`), `size` per read."""
        ...

    def due_index(self) -> AsyncIterator[list[tuple[int, float]]]:
        """(id, next_fire_at) of every active schedule, in chunks: all the engine loads at start."""
        ...

    async def set_active(
        self, schedule_id: int, active: bool, next_fire_at: float | None, *, by: str | None, at: float
    ) -> bool: ...

    async def delete(self, schedule_id: int) -> bool: ...

    async def retention_list(self, at: float) -> list[tuple[int, int]]:
        """(id, retention days) of the schedules with runs to delete at `at`."""
        ...

    async def last_success(self) -> dict[str, float]:
        """Family -> end of its latest successful run that a schedule records (for the metrics at start)."""
        ...


class RunStore(Protocol):
    """Runs: reads, and the retention sweep."""

    async def insert(self, new: NewRun) -> int:
        """Record one run on its own; its id."""
        ...

    async def get_by_uid(self, uid: str) -> Run | None: ...

    async def get_of_schedule(self, schedule_id: int, run_id: int) -> Run | None: ...

    async def open_for_key(self, overlap_key: str) -> list[Run]: ...

    async def list_org(
        self,
        family: str,
        org_id: str,
        *,
        limit: int,
        offset: int,
        state: str | None = None,
        project_id: str | None = None,
        cube_id: str | None = None,
    ) -> list[Run]: ...

    async def list_schedule(self, schedule_id: int, *, limit: int, offset: int) -> list[Run]: ...

    async def list_schedule_summaries(self, schedule_id: int, *, limit: int, offset: int) -> list[RunSummary]:
        """`list_schedule` reduced to `RunSummary`: a seventh of the columns, no `Run` per row."""
        ...

    async def count_schedule(self, schedule_id: int) -> int: ...

    async def recent_durations(
        self, family: str, org_id: str, project_id: str, cube_id: str, n: int = 10,
    ) -> list[float]: ...

    async def cube_has_built(
        self, family: str, org_id: str, project_id: str, cube_id: str, *, other_than: int,
    ) -> bool: ...

    async def delete_older(self, schedule_id: int, before: float, batch: int = 500) -> int:
        """Delete at most `batch` of a schedule's ended runs created before `before`."""
        ...

    async def delete_unkept(self, before: float, batch: int = 500) -> int:
        """Delete up to `batch` runs created before `before` that no schedule's own retention keeps."""
        ...

    async def fires_by_schedule(self) -> dict[int, int]: ...

    async def latest_created(self) -> float | None:
        """When the newest run record was created, or None without runs."""
        ...


class LeaseLost(Exception):
    """A fire write carried a lease epoch that is no longer the current one: another instance fires now."""


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds the firing lease: its instance name and epoch, and seconds until it lapses unless renewed."""

    holder: str | None
    epoch: int
    expires_in: float


class LeaseStore(Protocol):
    """The firing lease: at most one instance fires at a time, and the epoch fences out the one before.

    The epoch only grows: every change of holder raises it. Expiry is measured on the store's
    own clock, so instances on hosts whose clocks disagree still agree on who holds it. A
    server backend keeps the lease in one row; the fire writes (`FireStore.record_fires`,
    `FireStore.mark_started`) check it in their own transaction, locking it for share, so a
    takeover (which updates it) waits for a fire write under way and every later one sees the
    new epoch and raises LeaseLost. The runs an instance records are held by it (its name,
    given to `beat`), so that the runs of an instance that stopped can be found and closed.
    """

    @property
    def shared(self) -> bool:
        """Whether other instances may use this store (a server); False when one process owns it."""
        ...

    async def take(self, holder: str, ttl: float) -> int | None:
        """Take the lease for `ttl` seconds when it is free or lapsed, or renew it when `holder` has it:
        the epoch now held, or None while another instance holds a live lease."""
        ...

    async def release(self, holder: str, epoch: int) -> None:
        """Give the lease up at once (a clean stop), if `holder` still has it at `epoch`."""
        ...

    async def current(self) -> LeaseHolder:
        """Who holds the lease now."""
        ...

    async def beat(self, instance: str, ttl: float) -> None:
        """This instance is alive for `ttl` seconds more (the runs it holds are its own)."""
        ...

    async def instances(self) -> list[tuple[str, float]]:
        """The instances alive now, with the seconds left of each one's beat."""
        ...


class FireStore(Protocol):
    """The runner's writes: each call is one commit of everything it names, or nothing."""

    def set_fence(self, holder: str | None, epoch: int | None) -> None:
        """From now on `record_fires` and `mark_started` carry this lease epoch, and raise LeaseLost once
        another instance holds the lease (None: they carry none, as when one process owns the store).
        `mark_started` raises it for the run of a fire only: a run started through the API (no due
        time) starts on any instance."""
        ...

    async def interrupt_open(
        self, at: float, error: str, *, previous: str | None = None
    ) -> list[tuple[int, int | None, str]]:
        """Close the runs left open as interrupted, counted on their schedules: every open run where one
        process owns the store; else those held by instances no longer alive and by `previous`, the
        instance that held the firing lease before this one took it."""
        ...

    async def record_fires(
        self, rows: Sequence[tuple[NewRun, SkipText | None]], fired: Sequence[Fired], *,
        skip_since: float, at: float,
    ) -> tuple[list[int], list[str]]:
        """A batch of due fires: each row a run (text None) or a skip, which joins the schedule's latest skip
        of the same kind begun at or after `skip_since`; then each schedule's next fire time (and the run it
        started at `at`). Returns the record id of each row in order, and the family of each joined skip."""
        ...

    async def start_now(self, row: NewRun, schedule_id: int | None) -> int:
        """A run started outside the cron: its record, and the schedule's last run."""
        ...

    async def record_skip(self, row: NewRun, text: SkipText, *, since: float) -> tuple[int, bool]:
        """One skip, joined as in `record_fires`; (record id, joined)."""
        ...

    async def mark_started(self, run_id: int, at: float) -> bool:
        """A queued run begins its work."""
        ...

    async def record_starts(self, starts: Sequence[tuple[float, int]]) -> None:
        """`(started_at, run id)` of runs whose executors started their work (several in one commit)."""
        ...

    async def finish(self, run_id: int, finish: Finish | None, outcome: Outcome | None) -> None:
        """A run ended: its record closed (or removed, `finish` None), and its outcome counted on its schedule.
        A run closed already (interrupted by the instance that took over firing) is left as it was."""
        ...


class WindowStore(Protocol):
    """Maintenance windows and their events."""

    async def insert(self, window: Window, event: NewEvent, *, at: float) -> Window:
        """Create a window with its first event."""
        ...

    async def save(self, window: Window, events: list[NewEvent], *, at: float) -> Window | None:
        """Rewrite a window and append events in one transaction; None if it is gone."""
        ...

    async def add_event(self, window_id: int, event: NewEvent, *, at: float) -> bool:
        """Append an event; False if the window does not exist."""
        ...

    async def delete(self, window_id: int) -> bool: ...

    async def get(self, window_id: int, *, internal: bool) -> Window | None: ...

    async def list_page(
        self, filters: dict[str, Any], *, limit: int, offset: int, internal: bool, timelines: bool = True
    ) -> tuple[list[Window], int]:
        """A page of windows with their timelines (unless `timelines` is False), and the total that match."""
        ...

    def ending_after(self, at: float, *, size: int | None = None) -> AsyncIterator[list[Window]]:
        """The windows that end after `at`, by scheduled start, `size` at a time (without timelines)."""
        ...

    async def open_windows(self) -> list[Window]: ...


class GrantStore(Protocol):
    """Which window scopes a user may write."""

    async def grant(self, user_id: int, scope_id: int, *, at: float) -> bool:
        """Grant `scope_id` to the user; False when it was granted already."""
        ...

    async def revoke(self, user_id: int, scope_id: int) -> bool:
        """Take `scope_id` back; False when the user did not have it."""
        ...

    async def scopes_of(self, user_id: int) -> frozenset[int]: ...


class ReportStore(Protocol):
    """Reports across families for the operator view."""

    async def list_runs(
        self, seen: Visibility, *, family: str | None, org_id: str | None, state: str | None, limit: int, offset: int
    ) -> list[Run]: ...

    async def outcomes_by_hour(self, seen: Visibility, *, since: float) -> dict[int, dict[str, int]]:
        """{hour: {state: runs}} for the runs created since `since`."""
        ...

    async def delays_by_hour(self, seen: Visibility, *, since: float) -> list[HourDelay]: ...

    async def list_schedules(
        self, seen: Visibility, *, family: str | None, org_id: str | None, active: bool | None, limit: int, offset: int
    ) -> tuple[list[Schedule], int]:
        """A page of the schedules the caller may see, and how many match in all."""
        ...


class Store(Protocol):
    """A whole store: its groups of operations and its lifecycle."""

    @property
    def accounts(self) -> AccountStore: ...

    @property
    def schedules(self) -> ScheduleStore: ...

    @property
    def runs(self) -> RunStore: ...

    @property
    def fires(self) -> FireStore: ...

    @property
    def lease(self) -> LeaseStore: ...

    @property
    def windows(self) -> WindowStore: ...

    @property
    def grants(self) -> GrantStore: ...

    @property
    def reports(self) -> ReportStore: ...

    @property
    def is_open(self) -> bool: ...

    @property
    def location(self) -> str:
        """Where the store is, for logs: a file path, or a URL without its password."""
        ...

    @property
    def applied_migrations(self) -> list[int]:
        """The schema migrations `open()` applied (empty when the schema was up to date)."""
        ...

    @property
    def local_file(self) -> str | None:
        """The file on this host that holds the store (its size is a metric), or None for a server."""
        ...

    async def open(self) -> None:
        """Connect and bring the schema up to date; writes are accepted from then on."""
        ...

    async def close(self) -> None:
        """Commit what is queued, then disconnect."""
        ...

    async def flush(self) -> None:
        """Wait until every write queued so far is durable."""
        ...

    async def listen(self, on_change: Callable[[str, int], None]) -> None:
        """Call `on_change(kind, id)` ("schedule" or "window") for each change committed through the
        schedule and window operations (insert, replace, set_active, delete; a window's insert, save,
        delete), by any instance, from now until `close()` (the fire writes' own updates of a schedule's
        next fire time are not changes). A server backend notifies at commit (PostgreSQL: NOTIFY in
        the same transaction) and listens on a connection of its own; where one process owns the
        store, its changes are applied where they are made and there is nothing to do."""
        ...

    async def backup(self, target: str | Path, progress: Callable[[int, int], None] | None = None) -> None:
        """A consistent copy of the live store at `target` (which must not exist)."""
        ...
