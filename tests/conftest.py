"""Shared fixtures and the test tiers.

Fixtures: the API over a real SQLite file driven by the test clock (`clock`, `make_api`,
`api`), and real daemons as subprocesses (`daemon_factory`). What they are built from lives
in tests/support/, which test modules import; no test module imports another.

Tiers: every test gets one marker by its module (see TIERS): `e2e` for modules that start
real daemons or other subprocesses, `browser` for the Chromium tests, `slow` for modules
that take more than a few seconds, `unit` for the rest. `pytest -m unit` is the inner loop.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from schedd.accounts import Accounts
from schedd.app import make_app
from schedd.clock import TestClock
from schedd.compose import build_core
from schedd.core import Core
from schedd.store import accounts as account_store
from tests.support.api import T0, Api, api_config, password_hash
from tests.support.daemon import Daemon, admin_daemon, kill
from tests.support.jobs import FakeService
from tests.support.postgres import NOT_INSTALLED, Cluster, Snapshot


@pytest.fixture
def clock() -> TestClock:
    return TestClock(T0)


async def _populate(core: Core, accounts: Accounts) -> dict[str, str]:
    """Orgs acme and other; users admin, alice (acme, default) and bob (other); a token each."""
    await accounts.add_org("acme", at=T0)
    await accounts.add_org("other", at=T0)
    encoded = password_hash()
    for name, admin, orgs, email in (("admin", True, (), None),
                                     ("alice", False, ("acme", "default"), "alice@example.com"),
                                     ("bob", False, ("other",), None)):
        await core.store.accounts.create_user(name, encoded, email=email, is_admin=admin, orgs=orgs, at=T0)
    return {name: await accounts.create_token(name, ttl=None, at=T0) for name in ("admin", "alice", "bob")}


_TEMPLATE: list[tuple[bytes, dict[str, str]]] = []
_PG_TEMPLATE: list[tuple[Snapshot, dict[str, str]]] = []
PG_API_TEMPLATE = "schedd_api_template"
STORES = ("sqlite", "postgres")
"""Every test that builds the API (`api`, `make_api`) runs once on each store."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--stores", default=",".join(STORES),
                     help="the stores the API tests run on, comma-separated (default: %(default)s)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" in metafunc.fixturenames:
        chosen = [name.strip() for name in metafunc.config.getoption("stores").split(",") if name.strip()]
        unknown = set(chosen) - set(STORES)
        if unknown:
            raise pytest.UsageError(f"--stores: no store named {', '.join(sorted(unknown))} (stores: {', '.join(STORES)})")
        only = metafunc.definition.get_closest_marker("stores")
        stores = [name for name in chosen if only is None or name in only.args]
        metafunc.parametrize("store_backend", stores, indirect=True)


@pytest.fixture
def store_backend(request) -> str:
    return request.param


async def _pg_template(cluster: Any, directory: Path) -> tuple[Snapshot, dict[str, str]]:
    """`_template` on PostgreSQL: one database, migrated and populated once, and put back to that
    state before each test that uses it."""
    if not _PG_TEMPLATE:
        url = await cluster.new_template(PG_API_TEMPLATE)
        core = build_core(api_config(directory), db_path=url, clock=TestClock(T0))
        await core.start(run_loop=False)
        accounts = Accounts(core.store, core.config.auth, core.clock)
        try:
            tokens = await _populate(core, accounts)
        finally:
            accounts.close()
            await core.stop()
        _PG_TEMPLATE.append((await Snapshot(url).take(), tokens))
    return _PG_TEMPLATE[0]


async def _template(directory: Path) -> tuple[bytes, dict[str, str]]:
    """The database every `make_api` starts from, migrated and populated once per session: each
    test gets a copy of the file (a real SQLite file of its own) instead of building it again."""
    if not _TEMPLATE:
        path = directory / "template.db"
        core = build_core(api_config(directory), db_path=str(path), clock=TestClock(T0))
        await core.start(run_loop=False)
        accounts = Accounts(core.store, core.config.auth, core.clock)
        try:
            tokens = await _populate(core, accounts)
        finally:
            accounts.close()
            await core.stop()
        assert not Path(f"{path}-wal").exists()  # closing folded the log into the file
        _TEMPLATE.append((path.read_bytes(), tokens))
    return _TEMPLATE[0]


@pytest.fixture
async def pg_dropped(request):
    """PostgreSQL databases a test made, dropped after everything else of the test closed."""
    made: list[str] = []
    yield made
    if any(made):
        cluster = request.getfixturevalue("pg_cluster")
        for where in made:
            if where:
                await cluster.drop_database(where)


@pytest.fixture
async def make_api(pg_dropped, aiohttp_client, tmp_path, tmp_path_factory, clock, store_backend, request):
    made = pg_dropped

    async def build(**sections: Any) -> Api:
        if store_backend == "postgres":
            cluster = request.getfixturevalue("pg_cluster")
            snapshot, tokens = await _pg_template(cluster, tmp_path_factory.getbasetemp())
            if made:  # a second API in one test: a database of its own
                where = await cluster.new_database(template=PG_API_TEMPLATE)
                made.append(where)
            else:
                await snapshot.restore()
                where = snapshot.url
                made.append("")
        else:
            content, tokens = await _template(tmp_path_factory.getbasetemp())
            path = tmp_path / "api.db"
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                file.write(content)
            where = str(path)
        core = build_core(api_config(tmp_path, **sections), db_path=where, clock=clock)
        client = await aiohttp_client(make_app(core, run_loop=False))
        return Api(client, core, clock, dict(tokens))

    return build


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


@pytest.fixture
async def service(aiohttp_server):
    """A local HTTP service that service jobs call (tests/support/jobs.py)."""
    fake = FakeService()
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/api/{tail:.*}", fake.handle)
    fake.server = await aiohttp_server(app)
    yield fake
    fake.released.set()


@pytest.fixture(scope="session")
def pg_cluster(request):
    """A throwaway PostgreSQL server for the session (tests/support/postgres.py); skips without one,
    or when `--stores` leaves PostgreSQL out (the inner loop)."""
    if "postgres" not in request.config.getoption("stores").split(","):
        pytest.skip("--stores leaves PostgreSQL out")
    cluster = Cluster.find()
    if cluster is None:
        pytest.skip(NOT_INSTALLED)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def pg_url(pg_cluster):
    """The URL of a new, migrated PostgreSQL database of this test's own, dropped after."""
    url = await pg_cluster.new_database()
    yield url
    await pg_cluster.drop_database(url)


@pytest.fixture
def daemon_factory(tmp_path):
    """Makes Daemons (not started) with the admin user "ops"; kills those still running at the end."""
    made: list[Daemon] = []

    def make(command: list[str]) -> Daemon:
        daemon = admin_daemon(tmp_path, command)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        kill(daemon)


# The tier of each module that is not `unit`.
TIERS: dict[str, tuple[str, ...]] = {
    # schedd serve or the schedd CLI as subprocesses, or the whole system around them
    "test_e2e": ("e2e",),
    "test_ops": ("e2e",),
    "test_lock": ("e2e",),
    "test_restore": ("e2e",),
    "test_revocation": ("e2e",),
    "test_prometheus": ("e2e", "slow"),
    "test_durability": ("e2e", "slow"),
    "test_connections": ("e2e", "slow"),
    "test_cli_errors": ("e2e",),
    "test_readme": ("e2e",),
    "test_prodmanager_client": ("e2e",),
    "test_fuzz": ("e2e", "slow"),
    "test_crashloop": ("e2e", "slow"),
    "test_soak": ("e2e", "slow"),
    "test_failover": ("e2e", "slow"),
    # headless Chromium against a daemon
    "test_browser": ("browser", "e2e"),
    # in-process, but seconds each: ruff and mypy, fuzzers, scrypt-bound logins, the
    # access matrices (every route by every role), large tables
    "test_static": ("slow",),
    "test_input_fuzz": ("slow",),
    "test_hostile": ("slow",),
    "test_login_throttle": ("slow",),
    "test_accounts": ("slow",),
    "test_auth_security": ("slow",),
    "test_window_roles": ("slow",),
    "test_bounded_lists": ("slow",),
    "test_full_disk": ("slow",),
    "test_fairness": ("slow",),
}
# A test whose tier is not its module's: in a module of TIERS it is named here, never by a
# decorator, so that a selection by tier can pass over a module without importing it.
TEST_TIERS: dict[str, tuple[str, ...]] = {
    "test_auth_security.py::test_passwords_and_tokens_are_never_stored_or_logged_in_clear": ("e2e",),
}
TIER_NAMES = ("unit", "e2e", "browser", "slow")
_EXPRESSION_WORDS = frozenset({"and", "or", "not", "(", ")"})


def _selected(expression: str, tiers: tuple[str, ...]) -> bool | None:
    """Whether a `-m` expression over tier names selects a test of `tiers`; None for any other expression."""
    words = expression.replace("(", " ( ").replace(")", " ) ").split()
    if not words or any(w not in _EXPRESSION_WORDS and w not in TIER_NAMES for w in words):
        return None
    text = " ".join(w if w in _EXPRESSION_WORDS else str(w in tiers) for w in words)
    try:
        return bool(eval(text, {"__builtins__": {}}))  # noqa: S307 - only True/False/and/or/not/()
    except SyntaxError:
        return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under `-m` with tiers only (`-m unit`), a module none of whose tests it selects is not
    even imported: the inner loop does not pay for collecting the fuzzers and the browser."""
    module = collection_path.stem
    if collection_path.suffix != ".py" or module not in TIERS or not config.option.markexpr:
        return None
    kinds = [TIERS[module]] + [t for name, t in TEST_TIERS.items() if name.startswith(collection_path.name + "::")]
    answers = [_selected(config.option.markexpr, tiers) for tiers in kinds]
    return True if answers and all(answer is False for answer in answers) else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test its tier markers: TEST_TIERS, else its module's (TIERS; `unit` when the
    module has none), unless it carries a tier of its own in a module that is not in TIERS."""
    for item in items:
        module = item.path.stem
        key = f"{item.path.name}::{item.originalname if isinstance(item, pytest.Function) else item.name}"
        own = [name for name in TIER_NAMES if item.get_closest_marker(name)]
        if own and module in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a tier of its own goes in TEST_TIERS (tests/conftest.py)")
        if own:
            continue
        for name in TEST_TIERS.get(key) or TIERS.get(module, ("unit",)):
            item.add_marker(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under `.ci/run` (SCHEDD_CI=1) a skipped test fails the run.

    Tests that need a tool (promtool, Prometheus, Chromium, strace, faketime, …) skip
    without it on a developer's machine; `.ci/run` installs every one, so a skip there
    means a test that did not run.
    """
    if os.environ.get("SCHEDD_CI") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reasons = sorted({str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
                          for report in skipped})
        sys.stderr.write(f"\nSCHEDD_CI=1: {len(skipped)} tests skipped, which CI must run:\n  "
                         + "\n  ".join(reasons) + "\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
async def upstream(aiohttp_server):
    """A service that answers every POST under /api and records the paths it was called at."""
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/api/{tail:.*}", handle)
    server = await aiohttp_server(app)
    server.calls = calls
    return server
