"""The state and policy enums: their wire spellings, and the schema's CHECKs agree with them."""

from __future__ import annotations

import re

import pytest

from schedd.api import openapi
from schedd.states import (
    Family,
    HistoryStrategy,
    MisfirePolicy,
    OverlapPolicy,
    RunState,
    WindowState,
    values,
)
from schedd.store import windows as window_store
from schedd.store.db import Database
from tests.support.schema import CHECKED

# The spellings the wire and existing databases carry; changing one breaks clients.
WIRE = {
    RunState: ("queued", "inprogress", "done", "failed", "canceled", "skipped", "interrupted"),
    WindowState: ("scheduled", "in-progress", "succeed", "failed", "canceled"),
    OverlapPolicy: ("forbid", "buffer_one", "allow", "replace"),
    MisfirePolicy: ("fire_once", "skip", "fire_all"),
    HistoryStrategy: ("OFF", "MINIMAL", "ERROR", "FULL"),
    Family: ("maintenance", "aggregate", "service"),
}

@pytest.mark.parametrize("kind", list(WIRE), ids=lambda k: k.__name__)
def test_each_enum_keeps_its_wire_spellings(kind):
    assert values(kind) == WIRE[kind]
    assert all(member == member.value and f"{member}" == member.value for member in kind)


async def test_the_schema_checks_allow_exactly_the_enum_values(tmp_path):
    db = Database(tmp_path / "s.db")
    await db.open()
    try:
        tables = {row[0]: row[1] for row in await db.fetchall("SELECT name, sql FROM sqlite_master WHERE type='table'")}
    finally:
        await db.close()
    for (table, column), kind in CHECKED.items():
        found = re.search(rf"\b{column}\b[^,]*?CHECK \({column} IN \(([^)]*)\)\)", tables[table], re.S)
        assert found, (table, column)
        allowed = tuple(v.strip().strip("'") for v in found.group(1).split(","))
        assert allowed == values(kind), (table, column)


def test_the_openapi_enums_come_from_the_types():
    schemas = openapi.document()["components"]["schemas"]
    assert schemas["Job"] == openapi.SCHEMAS["Job"]
    assert schemas["Job"]["properties"]["historyStrategy"]["enum"] == list(values(HistoryStrategy))
    assert openapi.RUN_STATES == list(values(RunState))
    assert openapi.WINDOW_STATUSES == list(values(WindowState))


async def test_a_member_is_stored_and_read_back_as_its_wire_spelling(tmp_path):
    db = Database(tmp_path / "s.db")
    await db.open()
    try:
        await db.execute("INSERT INTO runs (uid, family, overlap_key, trigger, state, created_at)"
                         " VALUES (?, ?, 'k', 'Scheduled', ?, 0)", ("r1", Family.SERVICE, RunState.INPROGRESS))
        row = await db.fetchone("SELECT family, state FROM runs")
        assert (type(row[0]), row[0], row[1]) == (str, "service", "inprogress")
        assert window_store.OPEN_STATUSES == ("scheduled", "in-progress")
    finally:
        await db.close()
