"""What a job family is, as the rest of schedd sees it, and the registry that holds them.

A family is one kind of scheduled job: org maintenance, cube builds, service jobs. The
runner, the store, the executors, the metrics and the web views name no family; they ask
the registry for the `Family` a schedule or run belongs to (by the wire name stored in
the database) and call it. Each family is one package under `schedd.families`; the
composition root (`schedd.compose`) registers them, once, at start-up.

This module is the bottom of the families layer: it imports nothing of schedd at run
time, so that the store and the runner may depend on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from schedd.core import Core
    from schedd.executors import Executor, RunContext, ServiceCall
    from schedd.runner import RunRef
    from schedd.store.accounts import User
    from schedd.store.schedules import Schedule


WIRE_NAME = re.compile(r"[a-z][a-z_]{0,39}")
"""What a family's wire name may be: the shape the `family` columns of the schema check."""


@dataclass(frozen=True, slots=True)
class RunTarget:
    """What a run carries to its executor beyond its ids, worked out by its family: the input
    of an executor kind (`schedd.executors.RunContext` takes both fields as they are)."""

    values: Mapping[str, str] = field(default_factory=dict)
    """Named values a command fills into its `{placeholders}` and exports as `SCHEDD_<NAME>`."""
    call: ServiceCall | None = None
    """The HTTP call to a configured service the run makes."""


class RunFields(Protocol):
    """What a family reads of a run to build its target: the run's job and the values of its
    record (the runner's `Active`)."""

    @property
    def schedule(self) -> Schedule | None: ...

    @property
    def org_id(self) -> str | None: ...

    @property
    def project_id(self) -> str | None: ...

    @property
    def cube_id(self) -> str | None: ...

    @property
    def full_build(self) -> bool | None: ...


class ExecutorPool(Protocol):
    """The executors a family may choose from (`schedd.executors.registry.Executors`)."""

    def command(self, section: str) -> Executor:
        """The command executor of the `[executors.<section>]` config table."""
        ...

    def command_timeout(self, section: str) -> float: ...

    def service(self, name: str) -> Executor:
        """The HTTP executor of the `[services.<name>]` config table (one that refuses if unknown)."""
        ...

    def service_timeout(self, name: str) -> float | None: ...


class Family(Protocol):
    """One job family: what its schedules and runs carry and how the runner treats them."""

    name: str
    """The wire name, stored in `schedules.family` and `runs.family` and used as metric label."""
    label: str
    """How the operator view names the family."""
    scheduled_trigger: str
    """The trigger recorded on a run of a due fire."""
    gated: bool
    """Whether maintenance windows of its service hold its runs back (the service gate)."""
    admin_only: bool
    """Whether its jobs belong to no org and are seen by administrators only."""
    can_reactivate: bool
    """Whether the operator view may activate a deactivated schedule of the family."""
    run_hint: str
    """The operator view's title of the run-now button."""

    def overlap_key(self, schedule: Schedule) -> str:
        """What "the same job" means for overlap: two runs with one key never overlap."""
        ...

    def row_label(self, org_id: str | None, project_id: str | None, cube_id: str | None,
                  name: str | None) -> str:
        """How the operator view names one job or run of the family."""
        ...

    def target(self, run: RunFields) -> RunTarget:
        """What a run carries to its executor: the values or the call its executor needs."""
        ...

    def executor(self, pool: ExecutorPool, ctx: RunContext) -> Executor:
        """The executor that performs a run."""
        ...

    def timeout(self, pool: ExecutorPool, target: RunTarget) -> float:
        """The run timeout when the job sets none."""
        ...

    async def start_run(self, core: Core, user: User, schedule: Schedule, *, at: float) -> RunRef:
        """Run now, through the family's own service (what its API's run-now does)."""
        ...

    async def set_active(self, core: Core, user: User, schedule: Schedule, active: bool, *, at: float) -> None:
        """(De)activate a schedule through the family's own service."""
        ...


class CommandRuns:
    """What the families whose runs are a configured command share: `[executors.SECTION]` names
    the command and its timeout; the family's `target` names the values the command fills in."""

    executor_section: str

    def executor(self, pool: ExecutorPool, ctx: RunContext) -> Executor:
        return pool.command(self.executor_section)

    def timeout(self, pool: ExecutorPool, target: RunTarget) -> float:
        return pool.command_timeout(self.executor_section)


class UnknownFamily(ValueError):
    """A family name no package registered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown job family {name!r}")
        self.name = name


class Registry:
    """The families schedd runs, by wire name, in the order they were registered."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def register(self, family: Family) -> None:
        """Add a family; registering the same object again changes nothing."""
        if not isinstance(family.name, str) or not WIRE_NAME.fullmatch(family.name):
            raise ValueError(f"job family name {family.name!r}: must be 1-40 of a-z and _, starting with a letter "
                             "(what the database's family columns accept)")
        known = self._families.get(family.name)
        if known is not None and known is not family:
            raise ValueError(f"job family {family.name!r} is registered twice")
        self._families[family.name] = family

    def get(self, name: str) -> Family:
        try:
            return self._families[name]
        except KeyError:
            raise UnknownFamily(name) from None

    def find(self, name: str) -> Family | None:
        return self._families.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._families)

    def __iter__(self) -> Iterator[Family]:
        return iter(self._families.values())

    def __len__(self) -> int:
        return len(self._families)


FAMILIES = Registry()
"""The registry schedd runs with; the composition root (`schedd.compose`) fills it."""
