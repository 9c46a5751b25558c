"""Every CLI error is one line on stderr and exit 2, never a traceback, and changes nothing.

Each subcommand that opens a database runs as a real process against a file that is not
a database and against a database its user cannot write; then the single cases: a port
out of range, a password prompt without a terminal, a backup into a missing directory,
an unknown org.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes and process users")

PASSWORD = "a long password"
NOBODY = 65534

# Every subcommand that takes --db, with the arguments it needs besides --db.
COMMANDS: dict[str, list[str]] = {
    "serve": ["serve", "--port", "0"],
    "db migrate": ["db", "migrate"],
    "db backup": ["db", "backup", "{out}/copy.db"],
    "org add": ["org", "add", "acme"],
    "user add": ["user", "add", "ann", "--password-stdin"],
    "token create": ["token", "create", "ops"],
    "db restore": ["db", "restore", "{out}/backup.db"],
    "user list": ["user", "list"],
    "user disable": ["user", "disable", "ops"],
    "user enable": ["user", "enable", "ops"],
    "user passwd": ["user", "passwd", "ops", "--password-stdin"],
    "user remove": ["user", "remove", "ops", "--org", "default"],
    "token list": ["token", "list"],
    "token revoke": ["token", "revoke", "1"],
    "user grant": ["user", "grant", "ops", "--scope", "1"],
    "user revoke": ["user", "revoke", "ops", "--scope", "1"],
}


def run(args: list[str], *, stdin: str | None = PASSWORD + "\n", as_nobody: bool = False,
        cwd: str | None = None) -> subprocess.CompletedProcess:
    prefix: list[str] = []
    if as_nobody:
        # Root writes any file: the unwritable case is run as nobody.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, and setpriv (util-linux) is not there to drop to nobody")
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run([*prefix, sys.executable, "-m", "schedd", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def assert_one_line_error(out: subprocess.CompletedProcess, *, says: str | None = None) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    if says is not None:
        assert says in lines[0], lines[0]
    return lines[0]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can enter (tmp_path is private to its creator)."""
    path = Path(tempfile.mkdtemp(prefix="schedd-cli-"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        child.chmod(0o644)
    path.chmod(0o755)
    shutil.rmtree(path)


def make_database(path: Path) -> None:
    out = run(["user", "add", "ops", "--admin", "--password-stdin", "--db", str(path)])
    assert out.returncode == 0, out.stderr
    # The CLI closed the last connection: SQLite checkpointed and removed -wal and -shm.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_file_that_is_not_a_database_is_one_line_and_untouched(command, tmp_path):
    toml = tmp_path / "some.toml"
    toml.write_text('[scheduler]\ntimezone = "UTC"\n')
    before = snapshot(tmp_path)
    args = [a.format(out=tmp_path) for a in COMMANDS[command]]
    line = assert_one_line_error(run([*args, "--db", str(toml)]))
    assert "is not an SQLite database" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_database_the_user_cannot_write_is_one_line_and_untouched(command, shared_dir):
    db = shared_dir / "schedd.db"
    make_database(db)
    db.chmod(0o444)
    shared_dir.chmod(0o555)
    before = snapshot(shared_dir)
    args = [a.format(out=shared_dir) for a in COMMANDS[command]]  # a backup cannot be written either
    line = assert_one_line_error(run([*args, "--db", str(db)], as_nobody=os.geteuid() == 0))
    assert "Permission denied" in line or "readonly" in line, line
    assert snapshot(shared_dir) == before


def test_serve_with_a_port_out_of_range_says_so_before_it_opens_anything(tmp_path):
    assert_one_line_error(run(["serve", "--port", "99999", "--db", str(tmp_path / "x.db")]),
                          says="argument --port: 99999 is not a port number (0-65535)")
    assert_one_line_error(run(["serve", "--port", "http", "--db", str(tmp_path / "x.db")]), says="--port")
    assert list(tmp_path.iterdir()) == []


def test_user_add_without_a_terminal_asks_for_password_stdin(tmp_path):
    db = tmp_path / "x.db"
    make_database(db)
    before = snapshot(tmp_path)
    # A new session has no controlling terminal: getpass has nowhere to ask.
    out = subprocess.run([sys.executable, "-m", "schedd", "user", "add", "ann", "--db", str(db)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                         start_new_session=True)
    assert_one_line_error(out, says="--password-stdin")
    assert snapshot(tmp_path) == before


def test_db_backup_into_a_missing_directory_is_one_line(tmp_path):
    db = tmp_path / "x.db"
    make_database(db)
    assert_one_line_error(run(["db", "backup", "/nonexist/bk.db", "--db", str(db)]),
                          says="cannot create /nonexist/bk.db: No such file or directory")


def test_user_add_refuses_an_unknown_org_unless_asked_to_create_it(tmp_path):
    db = tmp_path / "x.db"
    make_database(db)
    args = ["--db", str(db), "--password-stdin"]
    assert_one_line_error(run(["user", "add", "ann", "--org", "typo", *args]),
                          says="--org: no organization 'typo'")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM users WHERE name = 'ann'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM orgs WHERE id = 'typo'").fetchone() == (0,)
    conn.close()
    assert run(["user", "add", "ann", "--org", "typo", "--create-org", *args]).returncode == 0
    assert run(["user", "add", "bob", "--org", "default", *args]).returncode == 0
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT org_id FROM user_orgs JOIN users ON id = user_id WHERE name = 'ann'"
                        ).fetchall() == [("typo",)]
    conn.close()


def test_the_database_its_wal_shm_and_backups_are_private(tmp_path):
    db = tmp_path / "x.db"
    old = os.umask(0o022)
    try:
        assert run(["user", "add", "ops", "--password-stdin", "--db", str(db)]).returncode == 0
        conn = sqlite3.connect(db)  # keeps -wal and -shm in place while they are looked at
        conn.execute("SELECT count(*) FROM users").fetchone()
        assert run(["db", "backup", str(tmp_path / "copy.db"), "--db", str(db)]).returncode == 0
        for name in ("x.db", "x.db-wal", "x.db-shm", "copy.db"):
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
        conn.close()
    finally:
        os.umask(old)


def test_the_table_holds_every_subcommand_that_takes_a_database():
    import argparse

    from schedd.cli import _parser

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> Iterator[str]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, (*prefix, name))
        if any("--db" in action.option_strings for action in parser._actions):
            yield " ".join(prefix)

    assert sorted(walk(_parser(), ())) == sorted(COMMANDS)
