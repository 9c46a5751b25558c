"""Executors through real processes and a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from schedd import config as cfg
from schedd.executors import PAYLOAD_LIMIT, RunContext, ServiceCall
from schedd.executors.command import CommandExecutor
from schedd.executors.http import HttpExecutor
from schedd.compose import install_families
from schedd.executors.registry import Executors
from schedd.families.base import RunTarget

install_families()  # the executors ask the families which executor a run takes

PY = sys.executable
PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


RUN_VALUES = ("org_id", "project_id", "cube_id", "full_build")


def context(**overrides) -> RunContext:
    """A cube build's context; a run value given as None is one the run has none for."""
    fields = dict(run_id=7, run_uid="run-uid-7", family="aggregate", trigger="schedule", timeout=5.0)
    values = dict(org_id="org1", project_id="proj1", cube_id="cube1", full_build="true")
    for name, value in overrides.items():
        if name not in RUN_VALUES:
            fields[name] = value
        elif value is None:
            values.pop(name)
        else:
            values[name] = value
    return RunContext(**fields, values=values)


def command(*argv: str, **kwargs) -> CommandExecutor:
    return CommandExecutor(tuple(argv), "executors.aggregate.command",
                           placeholders=cfg.AggregateExecutorConfig.PLACEHOLDERS, **kwargs)


async def listening(path: Path):
    """A Unix socket at `path`, and a future of the first message a process sends to it: a test
    awaits the child's own word that it is up instead of sleeping."""
    message: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        if not message.done():
            message.set_result(data)
        writer.close()

    server = await asyncio.start_unix_server(receive, str(path))
    return server, message


def tell(path: Path, what: str) -> str:
    """Python source that sends `what` (an expression) to the socket at `path`."""
    return (f"import socket as _s; _c = _s.socket(_s.AF_UNIX); _c.connect({str(path)!r}); "
            f"_c.sendall(str({what}).encode()); _c.close()")


def gone(pid: int) -> bool:
    """True when the process no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


# --- command executor ------------------------------------------------------------------


async def test_placeholders_fill_argv_items_one_for_one():
    ctx = context(org_id="a b; rm -rf / $(id) `id`", full_build="false")
    outcome = await command(PY, "-c", PRINT_ARGV, "{org_id}", "--project={project_id}",
                            "{cube_id}/{run_id}", "{full_build}", '{"json": 1}').run(ctx)
    assert outcome.ok, outcome
    assert json.loads(outcome.response_body) == [
        "a b; rm -rf / $(id) `id`", "--project=proj1", "cube1/run-uid-7", "false", '{"json": 1}']
    assert outcome.exit_code == 0


async def test_placeholder_value_is_not_rescanned_for_placeholders():
    outcome = await command(PY, "-c", PRINT_ARGV, "{org_id}").run(context(org_id="{cube_id}"))
    assert json.loads(outcome.response_body) == ["{cube_id}"]


@pytest.mark.parametrize("item, ctx, message", [
    ("{nope}", context(), "unknown placeholder {nope}"),
    ("x={cube_id}", context(cube_id=None), "placeholder {cube_id} has no value"),
    ("{full_build}", context(full_build=None), "placeholder {full_build} has no value"),
])
async def test_bad_placeholder_fails_naming_it(item, ctx, message):
    outcome = await command(PY, "-c", PRINT_ARGV, item).run(ctx)
    assert not outcome.ok
    assert message in outcome.error
    assert "executors.aggregate.command" in outcome.error


async def test_environment_carries_run_values_and_daemon_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("SCHEDD_")]:  # e.g. SCHEDD_CONFIG, SCHEDD_CI
        monkeypatch.delenv(name)
    monkeypatch.setenv("SCHEDD_TEST_INHERITED", "yes")
    monkeypatch.setenv("SCHEDD_CUBE_ID", "stale")
    code = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items()"
            " if k.startswith('SCHEDD_')}))")
    outcome = await command(PY, "-c", code).run(context(trigger="manual", cube_id=None))
    env = json.loads(outcome.response_body)
    assert env == {"SCHEDD_TEST_INHERITED": "yes", "SCHEDD_RUN_ID": "run-uid-7",
                   "SCHEDD_TRIGGER": "manual", "SCHEDD_FAMILY": "aggregate",
                   "SCHEDD_ORG_ID": "org1", "SCHEDD_PROJECT_ID": "proj1",
                   "SCHEDD_FULL_BUILD": "true"}


async def test_stdin_is_empty_and_stderr_is_captured_with_stdout():
    code = "import sys; print(repr(sys.stdin.read())); print('to stderr', file=sys.stderr)"
    outcome = await command(PY, "-c", code).run(context())
    assert outcome.ok
    assert outcome.response_body.split() == ["''", "to", "stderr"]


async def test_non_zero_exit_fails_with_code_and_last_line():
    code = "import sys; print('working'); print('disk full', file=sys.stderr); sys.exit(3)"
    outcome = await command(PY, "-c", code).run(context())
    assert not outcome.ok
    assert outcome.exit_code == 3
    assert outcome.error == "exit code 3: disk full"
    assert "working" in outcome.response_body


async def test_output_over_limit_keeps_the_tail_and_counts_dropped_bytes():
    code = "import sys; sys.stdout.write('A' * 200000 + '\\nEND\\n'); sys.exit(1)"
    outcome = await command(PY, "-c", code).run(context())
    dropped = 200005 - PAYLOAD_LIMIT
    assert outcome.response_body.startswith(f"…[truncated {dropped} bytes]\n")
    assert outcome.response_body.endswith("A" * 100 + "\nEND\n")
    assert outcome.error == "exit code 1: END"


async def test_missing_binary_fails_clearly():
    outcome = await command("/nonexistent/schedd-tool", "x").run(context())
    assert not outcome.ok
    assert outcome.error == ("command not found: /nonexistent/schedd-tool "
                             "(executors.aggregate.command)")


async def test_no_command_configured_names_the_key():
    outcome = await CommandExecutor((), "executors.maintenance.command").run(context())
    assert not outcome.ok
    assert outcome.error == "no command configured: set [executors.maintenance] command"


async def test_cancelled_run_kills_the_process_group_including_grandchildren(tmp_path):
    server, pids = await listening(tmp_path / "pids.sock")
    # The grandchild ignores SIGTERM, so only the SIGKILL after the grace ends it.
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)'])\n"
        + tell(tmp_path / "pids.sock", "f'{os.getpid()} {child.pid}'") + "\n"
        "child.wait()\n")
    task = asyncio.create_task(command(PY, "-c", code, kill_grace=0.2).run(context()))
    async with asyncio.timeout(20):  # a bound on start-up, not a wait
        leader, grandchild = map(int, (await pids).split())
    server.close()
    assert os.getpgid(grandchild) == leader
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gone(leader)
    for _ in range(50):
        if gone(grandchild):
            break
        await asyncio.sleep(0.02)
    assert gone(grandchild)


async def test_cancelled_run_that_obeys_sigterm_ends_without_waiting_the_grace(tmp_path):
    server, up = await listening(tmp_path / "up.sock")
    task = asyncio.create_task(command(PY, "-c", tell(tmp_path / "up.sock", "'up'") + "; import time; "
                                       "time.sleep(30)").run(context()))
    async with asyncio.timeout(20):  # a bound on start-up, not a wait
        assert await up == b"up"
    server.close()
    loop = asyncio.get_running_loop()
    started = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < 1.0  # the default grace is 2 s


# --- HTTP executor ---------------------------------------------------------------------


class Recorder:
    """A local service that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"method": request.method, "path": request.path,
                              "headers": request.headers.copy(), "body": await request.read()})
        tail = request.path.removeprefix("/api/")
        if tail.startswith("status/"):
            return web.Response(status=int(tail.split("/")[1]), text="try later")
        if tail == "slow":
            await self.release.wait()
        if tail == "redirect":
            raise web.HTTPFound("/target")
        if tail == "big":
            return web.Response(body=b"B" * 100_000)
        if tail == "big-chunked":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for _ in range(10):
                await resp.write(b"C" * 10_000)
            return resp
        return web.json_response({"ok": True})


@pytest.fixture
async def service(aiohttp_server):
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    server = await aiohttp_server(app)
    recorder.base_url = str(server.make_url("/api"))
    yield recorder
    recorder.release.set()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        yield s


def http(base_url: str, session=None, timeout: float = 5.0, headers=()) -> HttpExecutor:
    service = cfg.ServiceConfig(name="svc", base_url=base_url, timeout=timeout,
                                headers=tuple(headers))
    return HttpExecutor(service, (lambda: session) if session else no_session)


def no_session() -> aiohttp.ClientSession:
    pytest.fail("a refused call must not reach the network")


def call(operation: str = "v1/items", post_data: str = '{"a": "é"}', headers=None, **kw) -> RunContext:
    return context(family="service", call=ServiceCall("svc", operation, post_data, headers or {}), **kw)


async def test_post_arrives_with_path_body_and_default_json(service, session):
    outcome = await http(service.base_url, session).run(call())
    assert outcome.ok, outcome
    assert outcome.response_status == 200
    assert json.loads(outcome.response_body) == {"ok": True}
    assert outcome.request_payload == '{"a": "é"}'
    [got] = service.requests
    assert (got["method"], got["path"]) == ("POST", "/api/v1/items")
    assert got["body"] == '{"a": "é"}'.encode()
    assert got["headers"]["Content-Type"] == "application/json"


async def test_service_headers_then_job_headers_which_win(service, session):
    executor = http(service.base_url, session,
                    headers=[("X-Service", "s"), ("X-Both", "service"), ("Authorization", "k")])
    ctx = call(headers={"x-both": "job", "X-Job": "j", "content-type": "text/plain"})
    assert (await executor.run(ctx)).ok
    headers = service.requests[0]["headers"]
    assert headers.getall("X-Both") == ["job"]
    assert (headers["X-Service"], headers["X-Job"]) == ("s", "j")
    assert headers["Authorization"] == "k"
    assert headers.getall("Content-Type") == ["text/plain"]


async def test_non_2xx_fails_with_status_and_keeps_body(service, session):
    outcome = await http(service.base_url, session).run(call("status/503"))
    assert not outcome.ok
    assert outcome.error == "HTTP 503 Service Unavailable"
    assert (outcome.response_status, outcome.response_body) == (503, "try later")
    assert outcome.request_payload == '{"a": "é"}'


async def test_redirect_is_not_followed(service, session):
    outcome = await http(service.base_url, session).run(call("redirect"))
    assert not outcome.ok
    assert outcome.error == "HTTP 302 Found"
    assert [r["path"] for r in service.requests] == ["/api/redirect"]


async def test_slow_service_times_out(service, session):
    outcome = await http(service.base_url, session, timeout=0.2).run(call("slow"))
    assert not outcome.ok
    assert outcome.timed_out
    assert outcome.error == "timeout after 0.2 s"
    assert outcome.request_payload == '{"a": "é"}'


async def test_run_timeout_below_service_timeout_wins(service, session):
    outcome = await http(service.base_url, session, timeout=30).run(call("slow", timeout=0.2))
    assert outcome.error == "timeout after 0.2 s"


async def test_connection_refused_fails_with_reason(session):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        port = sock.getsockname()[1]
        outcome = await http(f"http://127.0.0.1:{port}", session).run(call())
    assert not outcome.ok
    assert outcome.error == f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert outcome.response_status is None


async def test_large_response_is_read_bounded_and_marked(service, session):
    outcome = await http(service.base_url, session).run(call("big"))
    assert outcome.ok
    dropped = 100_000 - PAYLOAD_LIMIT
    assert outcome.response_body == "B" * PAYLOAD_LIMIT + f"…[truncated {dropped} bytes]"
    chunked = await http(service.base_url, session).run(call("big-chunked"))
    assert chunked.response_body == (
        "C" * PAYLOAD_LIMIT + f"…[truncated: body over {PAYLOAD_LIMIT} bytes]")


@pytest.mark.parametrize("operation", [
    "../x", "a/../b", "a//b", "./a", "a/", "", "http://evil", "//evil/x", "/abs", "a@b",
    "a?b=1", "a#b", "a%2e%2e/b", "a\\b", "a b", "a\r\nb", "x" * 201,
])
async def test_unsafe_operation_name_is_refused_without_a_request(operation):
    outcome = await http("http://127.0.0.1:9/api").run(call(operation))
    assert not outcome.ok
    assert outcome.error.startswith("operationName")


@pytest.mark.parametrize("headers", [
    {"X-Bad": "a\r\nInjected: 1"}, {"X-Bad": "a\nb"}, {"X-Bad\r\nInjected": "1"},
    {"Connection": "close"}, {"Keep-Alive": "5"}, {"Proxy-Authorization": "x"}, {"TE": "trailers"},
    {"Trailer": "x"}, {"transfer-encoding": "chunked"}, {"Upgrade": "h2c"}, {"Host": "evil"},
    {"Content-Length": "5"}, {"Bad Name": "x"}, {"": "x"},
])
async def test_unsafe_header_is_refused_without_a_request(headers):
    outcome = await http("http://127.0.0.1:9/api").run(call(headers=headers))
    assert not outcome.ok
    assert outcome.error.startswith("header")


async def test_allowed_operation_characters_reach_the_service(service, session):
    assert (await http(service.base_url, session).run(call("a-b/c.d_e~f/9"))).ok
    assert service.requests[0]["path"] == "/api/a-b/c.d_e~f/9"


# --- registry --------------------------------------------------------------------------


def config_for(base_url: str, maintenance: list[str] | None = None) -> cfg.Config:
    executors = {"aggregate": {"command": [PY, "-c", PRINT_ARGV, "agg", "{cube_id}"],
                               "timeout": 12}}
    if maintenance:
        executors["maintenance"] = {"command": maintenance, "timeout": 34}
    return cfg.from_dict({
        "executors": executors,
        "services": {"svc": {"base_url": base_url, "timeout": 7,
                             "headers": {"X-Service": "s"}},
                     "bare": {"timeout": 1}},
    })


async def test_registry_dispatches_by_family_and_shares_one_session(service):
    executors = Executors(config_for(service.base_url))
    await executors.start()
    try:
        agg = await executors.get(context()).run(context())
        assert json.loads(agg.response_body) == ["agg", "cube1"]
        maint = await executors.get(context(family="maintenance")).run(context())
        assert maint.error == "no command configured: set [executors.maintenance] command"
        assert (await executors.get(call()).run(call())).ok
        assert service.requests[0]["headers"]["X-Service"] == "s"

        session = executors._session
        executors.replace_config(config_for(service.base_url, [PY, "-c", PRINT_ARGV, "m"]))
        maint = await executors.get(context(family="maintenance")).run(context())
        assert json.loads(maint.response_body) == ["m"]
        assert (await executors.get(call()).run(call())).ok
        assert executors._session is session and not session.closed
        assert executors.timeout_for("maintenance") == 34
        assert executors.timeout_for("aggregate") == 12
        assert executors.timeout_for("service", RunTarget(call=ServiceCall("svc"))) == 7
    finally:
        await executors.close()
    assert session.closed


@pytest.mark.parametrize("name", ["bare", "missing"])
async def test_registry_service_without_base_url_fails_naming_the_key(name):
    executors = Executors(config_for("http://127.0.0.1:9"))
    ctx = context(family="service", call=ServiceCall(name, "x"))
    outcome = await executors.get(ctx).run(ctx)
    assert not outcome.ok
    assert f"services.{name}.base_url" in outcome.error


async def test_registry_disabled_executor_fails_at_once():
    config = cfg.from_dict({"executors": {"aggregate": {"enabled": False, "command": ["x"]}}})
    outcome = await Executors(config).get(context()).run(context())
    assert outcome.error == (
        "executors.aggregate is disabled: set [executors.aggregate] enabled = true")
