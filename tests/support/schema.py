"""The columns whose CHECK constraint each schema derives from an enum (tests/test_states.py, tests/test_postgres.py)."""

from __future__ import annotations

from enum import StrEnum

from schedd.states import Family, HistoryStrategy, MisfirePolicy, OverlapPolicy, RunState, WindowState

# (table, column) -> the enum its CHECK constraint must allow exactly.
CHECKED: dict[tuple[str, str], type[StrEnum]] = {
    ("schedules", "family"): Family,
    ("schedules", "misfire_policy"): MisfirePolicy,
    ("schedules", "overlap_policy"): OverlapPolicy,
    ("schedules", "history_strategy"): HistoryStrategy,
    ("runs", "family"): Family,
    ("runs", "state"): RunState,
    ("windows", "status"): WindowState,
}
