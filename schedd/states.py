"""The states and policies of schedd as types: one `StrEnum` per concept.

A member is the string the wire and the database carry (`RunState.INPROGRESS ==
"inprogress"`, `WindowState.IN_PROGRESS == "in-progress"`), so a member goes wherever the
string went; mypy checks the member names. The lists the rest of schedd needs (the
OpenAPI `enum`s, the validators' choices, the metric labels) are derived here, and
tests/test_states.py checks that the `CHECK` constraints of the schema allow exactly
these values.
"""

from __future__ import annotations

from enum import StrEnum


class Family(StrEnum):
    """The job families a schedule and a run belong to."""

    MAINTENANCE = "maintenance"
    AGGREGATE = "aggregate"
    SERVICE = "service"


class RunState(StrEnum):
    """Where a run is: open (`queued`, `inprogress`) or ended."""

    QUEUED = "queued"
    INPROGRESS = "inprogress"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


class WindowState(StrEnum):
    """The status of a maintenance window (Prod-Manager's spelling: `in-progress`)."""

    SCHEDULED = "scheduled"
    IN_PROGRESS = "in-progress"
    SUCCEED = "succeed"
    FAILED = "failed"
    CANCELED = "canceled"


class OverlapPolicy(StrEnum):
    """What a fire does while the schedule's previous run is still open."""

    FORBID = "forbid"
    BUFFER_ONE = "buffer_one"
    ALLOW = "allow"
    REPLACE = "replace"


class MisfirePolicy(StrEnum):
    """What happens to fires that were due while schedd could not run them."""

    FIRE_ONCE = "fire_once"
    SKIP = "skip"
    FIRE_ALL = "fire_all"


class HistoryStrategy(StrEnum):
    """What a finished run of a service job keeps (Volt MX's spelling)."""

    OFF = "OFF"
    MINIMAL = "MINIMAL"
    ERROR = "ERROR"
    FULL = "FULL"


def values(kind: type[StrEnum]) -> tuple[str, ...]:
    """The wire spellings of an enum, in declaration order."""
    return tuple(member.value for member in kind)


OPEN_RUN_STATES: tuple[RunState, ...] = (RunState.QUEUED, RunState.INPROGRESS)
FAILED_RUN_STATES: tuple[RunState, ...] = (RunState.FAILED, RunState.INTERRUPTED, RunState.CANCELED)
ENDED_RUN_STATES: tuple[RunState, ...] = (
    RunState.DONE, RunState.FAILED, RunState.CANCELED, RunState.INTERRUPTED)
"""The states a run that actually ran can end in (a skip never ran)."""
OPEN_WINDOW_STATES: tuple[WindowState, ...] = (WindowState.SCHEDULED, WindowState.IN_PROGRESS)
