"""Static checks as tests, so the README's test command enforces them: ruff (with its security rules) and mypy."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from schedd.store import windows

ROOT = Path(__file__).resolve().parent.parent


def _tool(module: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_ruff_finds_nothing_in_schedd():
    out = _tool("ruff", "check", "--no-cache", "schedd")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_finds_nothing_in_schedd():
    out = _tool("mypy", "schedd")
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_layers_hold():
    # The import-linter contracts of pyproject.toml: layers one way, the API apart from the
    # views, nothing below the families naming one (docs/architecture.md, "Layers").
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    script = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(script), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_window_statements_name_the_fields_in_the_order_values_gives_them():
    # The statements are written out (no SQL built from strings); this keeps them in step.
    inserted = re.search(r"INSERT INTO windows \(creation_date, ([^)]*)\)", windows.SQL_INSERT)
    assert inserted is not None
    assert tuple(inserted.group(1).split(", ")) == windows._FIELDS
    updated = re.search(r"UPDATE windows SET (.*) WHERE id = \?", windows.SQL_UPDATE)
    assert updated is not None
    assert tuple(part.removesuffix(" = ?") for part in updated.group(1).split(", ")) == windows._FIELDS


def test_test_modules_import_no_other_test_module_and_leave_sys_path_alone():
    # Shared helpers live in tests/support (and fixtures in conftest.py), the crash loop in the
    # benchmarks package: a test module never imports another one or edits the import path.
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        text = path.read_text("utf-8")
        for line in re.findall(r"^\s*(?:from tests\.(?:test_|conftest)\S*|import test_\S+|from test_\S+).*$"
                               r"|^.*sys\.path\.(?:insert|append).*$", text, re.MULTILINE):
            found.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert found == []


def test_the_repository_cites_no_document_outside_it():
    # The APIs are named by their products (docs/api.md) and the rules cite docs/; the
    # pattern is built from pieces so that this file does not match it.
    outside = re.compile("|".join([r"\bseeds?[ -]0\d\d", "the " + "seed'?s?\\b", "API" + "-NOTES", "DESIGN" + r"\.md"]),
                         re.IGNORECASE)
    found = []
    for top in ("schedd", "tests", "benchmarks", "etc", "docs", "systemd", "README.md"):
        base = ROOT / top
        for path in sorted([base] if base.is_file() else base.rglob("*")):
            if path.suffix not in (".py", ".md", ".toml", ".sql", ".html", ".yml", ".service", ".json", ""):
                continue
            if not path.is_file() or path.name == "cron_fixture.json":
                continue
            for number, line in enumerate(path.read_text("utf-8", "replace").splitlines(), 1):
                if outside.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
