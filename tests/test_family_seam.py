"""The families stay behind their seam: no module outside `schedd/families/` names a job family.

The runner, store, executors, metrics, config, the HTTP boundary, the daemon's API and the
web views ask the registry
(`schedd.families.base.FAMILIES`) what a family does; a comparison with a family's wire
name, a table keyed by it or a list of the family names outside the family packages
means a family's rule leaked out of its package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from schedd.compose import JOB_FAMILIES, install_families
from schedd.families.base import FAMILIES, Registry, UnknownFamily

ROOT = Path(__file__).resolve().parent.parent
SCHEDD = ROOT / "schedd"
NAMES = frozenset(family.name for family in JOB_FAMILIES)


def _names_in(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in NAMES]


def family_leaks(source: str, path: str) -> list[str]:
    """Where `source` compares with, keys by or lists family names (`path: line: what`)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        what = None
        if isinstance(node, ast.Compare):
            names = [v for side in [node.left, *node.comparators] for v in _names_in(side)
                     if isinstance(side, (ast.Constant, ast.Tuple, ast.List, ast.Set))]
            if names:
                what = f"compares with family {names[0]!r}"
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in NAMES]
            if keys:
                what = f"a table keyed by family {keys[0]!r}"
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in NAMES:
            what = f"looks up family {node.slice.value!r}"
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in NAMES]
            if len(names) >= 2:
                what = f"lists families {names}"
        elif isinstance(node, ast.keyword) and node.arg == "family" and _names_in(node.value):
            what = f"passes family {_names_in(node.value)[0]!r}"
        if what:
            found.append(f"{path}:{getattr(node, 'lineno', '?')}: {what}")
    return found


def test_no_module_outside_the_family_packages_names_a_family():
    leaks = []
    for path in sorted(SCHEDD.rglob("*.py")):
        relative = path.relative_to(SCHEDD).as_posix()
        if relative.startswith("families/"):
            continue
        leaks += family_leaks(path.read_text(encoding="utf-8"), relative)
    assert leaks == []


@pytest.mark.parametrize("source", [
    'if schedule.family == "service": pass',
    'ok = family in ("maintenance", "aggregate")',
    'TRIGGER = {"maintenance": "TimeBasedMaintenance"}',
    'trigger = TRIGGERS["aggregate"]',
    'FAMILIES = ("maintenance", "aggregate", "service")',
    'run = NewRun(family="service")',
])
def test_the_check_finds_each_way_a_family_rule_can_leak(source):
    assert family_leaks(source, "x.py") != []


def test_the_check_lets_other_uses_of_the_words_pass():
    assert family_leaks('SKIPS.labels(family, "maintenance").inc()\nraise NotFound("service", 3)', "x.py") == []


def test_the_registry_holds_each_family_once_under_its_wire_name():
    install_families()
    install_families()  # again: no change
    assert FAMILIES.names() == ("maintenance", "aggregate", "service")
    assert [FAMILIES.get(name).scheduled_trigger for name in FAMILIES.names()] == [
        "TimeBasedMaintenance", "TimeBasedBuild", "Scheduled"]
    with pytest.raises(UnknownFamily, match="unknown job family 'nightly'"):
        FAMILIES.get("nightly")


def test_a_second_family_under_a_taken_name_is_refused():
    registry = Registry()
    install_families(registry)

    class Impostor:
        name = "service"

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Impostor())  # type: ignore[arg-type]


def test_no_template_compares_with_a_family_name():
    """The operator view's templates show what the family objects say; none branches on a family."""
    pattern = re.compile(r"""[=!]=\s*['"](%s)['"]|['"](%s)['"]\s*[=!]=""" % ("|".join(NAMES), "|".join(NAMES)))
    found = [f"{path.name}: {m.group(0)}" for path in sorted((SCHEDD / "web" / "templates").glob("*.html"))
             for m in pattern.finditer(path.read_text(encoding="utf-8"))]
    assert found == []
