"""The columns whose CHECK constraint each schema derives from an enum (tests/test_states.py, tests/test_postgres.py).

The `family` columns are not among them: a family is whichever package is registered, and the
columns check the shape of its wire name (`schedd.families.base.WIRE_NAME`, tests/test_open_families.py)."""

from __future__ import annotations

from enum import StrEnum

from schedd.states import HistoryStrategy, MisfirePolicy, OverlapPolicy, RunState, WindowState

# (table, column) -> the enum its CHECK constraint must allow exactly.
CHECKED: dict[tuple[str, str], type[StrEnum]] = {
    ("schedules", "misfire_policy"): MisfirePolicy,
    ("schedules", "overlap_policy"): OverlapPolicy,
    ("schedules", "history_strategy"): HistoryStrategy,
    ("runs", "state"): RunState,
    ("windows", "status"): WindowState,
}
