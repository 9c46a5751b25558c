"""Operations: the systemd unit, sd_notify, SIGHUP reload, --daemon, Unix socket, metrics, logs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
import tomli_w

from schedd import daemon as daemon_mod
from schedd import logs, metrics
from schedd.clock import TestClock
from tests.support.daemon import Daemon, schedd

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="sd_notify, signals and Unix sockets")

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "schedd.service"
DASHBOARD = ROOT / "etc" / "grafana" / "schedd.json"
RUN_NOW = "/api/1.0/aggregates/maintenance/orgId/default/run-immediately"
HISTORY = "/aggregates/maintenance/orgId/default/history"
SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/default"


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not met within {timeout} s")


def runs(daemon: Daemon, token: str) -> list[dict]:
    _, body = daemon.request("GET", HISTORY, token=token)
    return body["response"]["data"]


def finished_run(daemon: Daemon, token: str, run_id: str) -> dict:
    def done():
        return next((r for r in runs(daemon, token) if r["id"] == run_id and r["endTime"][:4] != "0001"), None)
    return wait_until(done, what=f"run {run_id} finished")


def run_now(daemon: Daemon, token: str) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{daemon.port}{RUN_NOW}", method="POST",
                                 headers={"X-VoltMX-Authorization": token})
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 200
        return response.headers["X-Run-Id"]


def spawn(daemon: Daemon, *args: str) -> None:
    """`schedd serve ARGS --db --config` as the daemon's process, its stderr in its log."""
    with open(daemon.log, "w") as log:
        daemon.proc = subprocess.Popen(
            [sys.executable, "-m", "schedd", "serve", *args, "--db", daemon.db, "--config", str(daemon.config)],
            stdout=subprocess.DEVNULL, stderr=log)


def write_config(daemon: Daemon, command: list[str], **sections: dict) -> None:
    data = {"scheduler": {"shutdown_grace": "2s"},
            "executors": {"maintenance": {"command": command, "timeout": "60s"}}, **sections}
    daemon.config.write_bytes(tomli_w.dumps(data).encode())


# -- the systemd unit ---------------------------------------------------------------------


def test_unit_declares_notify_watchdog_state_directory_and_reload():
    text = UNIT.read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE))
    assert settings["Type"] == "notify" and settings["NotifyAccess"] == "main"
    assert settings["WatchdogSec"] and settings["StateDirectory"] == "schedd"
    assert settings["DynamicUser"] == "yes" and settings["UMask"] == "0077"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["ExecStart"].split()[1:3] == ["serve", "--config"]
    assert set(settings["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_exposure_is_rated_ok_by_systemd_analyze():
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                         capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for schedd\.service: (\d+\.\d+)", out.stdout)
    assert found, out.stdout + out.stderr
    assert float(found.group(1)) <= 2.0, out.stdout


# -- sd_notify against a stand-in for systemd ---------------------------------------------


class FakeSystemd:
    """A datagram socket where the daemon's notifications arrive."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages: list[dict[str, str]] = []

    def receive(self, timeout: float = 10.0) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        message = dict(line.split("=", 1) for line in data.splitlines())
        self.messages.append(message)
        return message

    def wait_for(self, key: str, timeout: float = 15.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(max(0.01, deadline - time.monotonic()))
            if key in message:
                return message
        raise AssertionError(f"no {key} within {timeout} s; got {self.messages}")


@pytest.fixture(params=["path", "abstract"])
def fake_systemd(request, tmp_path, monkeypatch):
    if request.param == "abstract":
        address = f"@schedd-test-{os.getpid()}-{time.monotonic_ns()}"
    else:
        address = str(tmp_path / "notify.sock")
    fake = FakeSystemd(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    yield fake
    fake.sock.close()


def test_daemon_notifies_ready_watchdog_reload_and_stopping(daemon_factory, fake_systemd):
    check = "import os, sys; sys.exit('leaked ' + os.environ['NOTIFY_SOCKET'] if 'NOTIFY_SOCKET' in os.environ else 0)"
    daemon = daemon_factory([sys.executable, "-c", check])
    spawn(daemon, "--port", "0")

    ready = fake_systemd.wait_for("READY")
    # READY=1 promises: database open, heap loaded, listener bound.
    # Log lines are written by the daemon's log thread: the line may land just after READY.
    listening = wait_until(lambda: re.search(r"action=listening .*port=(\d+)", daemon.log.read_text()),
                           what="listening line")
    daemon.port = int(listening.group(1))
    status, body = daemon.request("GET", "/readyz")
    assert status == 200 and body["ready"] is True
    assert re.fullmatch(r"\d+ timers armed, 0 runs in flight, 0 queued", ready["STATUS"])

    pings = 0
    while pings < 3:
        pings += "WATCHDOG" in fake_systemd.receive()

    token = daemon.login()
    run = finished_run(daemon, token, run_now(daemon, token))
    assert run["status"] == "done", run  # a command run by schedd does not see NOTIFY_SOCKET

    daemon.proc.send_signal(signal.SIGHUP)
    reloading = fake_systemd.wait_for("RELOADING")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    assert fake_systemd.wait_for("READY")["READY"] == "1"

    daemon.proc.send_signal(signal.SIGTERM)
    assert fake_systemd.wait_for("STOPPING")["STOPPING"] == "1"
    assert daemon.proc.wait(timeout=20) == 0


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only():
    env = {"WATCHDOG_USEC": "30000000", "NOTIFY_SOCKET": "/run/x"}
    assert daemon_mod.watchdog_interval(env) == 15.0
    assert "WATCHDOG_USEC" not in env
    assert daemon_mod.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert daemon_mod.watchdog_interval({}) is None


def pending(fake: FakeSystemd) -> list[str]:
    """The notifications that arrived and were not read yet (datagrams are there once sent)."""
    fake.sock.setblocking(False)
    found = []
    while True:
        try:
            found.append(fake.sock.recv(4096).decode())
        except BlockingIOError:
            return found


async def test_watchdog_is_withheld_while_the_engine_loop_stalls(tmp_path):
    fake = FakeSystemd(str(tmp_path / "n.sock"))
    notifier = daemon_mod.Notifier(fake.address)
    clock = TestClock(0)
    healthy = [True]
    task = asyncio.create_task(daemon_mod.keep_alive(notifier, 10, lambda: healthy[0], clock=clock))
    for _ in range(3):
        await clock.parked()
        clock.advance(10)
    await clock.parked()
    assert pending(fake) == ["WATCHDOG=1"] * 4  # one at start, one per interval
    healthy[0] = False
    for _ in range(3):
        clock.advance(10)
        await clock.parked()
    assert pending(fake) == []
    healthy[0] = True
    clock.advance(10)
    await clock.parked()
    assert pending(fake) == ["WATCHDOG=1"]
    task.cancel()
    notifier.close()


async def test_status_is_refreshed_when_it_changes(tmp_path):
    fake = FakeSystemd(str(tmp_path / "n.sock"))
    notifier = daemon_mod.Notifier(fake.address)
    clock = TestClock(0)
    texts = iter(["1 run", "1 run", "2 runs"])
    task = asyncio.create_task(daemon_mod.report_status(notifier, lambda: next(texts, "2 runs"), every=5,
                                                        clock=clock))
    await clock.parked()
    assert pending(fake) == []  # nothing before the first interval
    seen = []
    for _ in range(4):
        clock.advance(5)
        await clock.parked()
        seen += pending(fake)
    assert seen == ["STATUS=1 run", "STATUS=2 runs"]
    task.cancel()
    notifier.close()


# -- SIGHUP reload ----------------------------------------------------------------------


def test_sighup_reloads_the_config_and_refuses_a_bad_one_keeping_the_old(daemon_factory):
    slow = [sys.executable, "-c", "import time; time.sleep(1.5)"]
    daemon = daemon_factory(slow).start()
    token = daemon.login()
    status, created = daemon.request("POST", SCHEDULES, {"time_expression": "0 0 4 ? * * *",
                                                         "scheduler_type": "time-based"}, token)
    assert status == 200
    in_flight = run_now(daemon, token)

    write_config(daemon, [sys.executable, "-c", "import sys; sys.exit('the new command ran')"])
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "action=reloaded" in daemon.log.read_text(), what="reload")
    assert finished_run(daemon, token, in_flight)["status"] == "done"  # the run kept going
    _, listed = daemon.request("GET", SCHEDULES, token=token)
    assert [s["job_id"] for s in listed["response"]] == [created["response"]["job_id"]]
    run = finished_run(daemon, token, run_now(daemon, token))
    assert "the new command ran" in run["errorInformation"]["message"]

    daemon.config.write_text('[scheduler]\nmisfire_grace = -5\n')
    daemon.proc.send_signal(signal.SIGHUP)
    refused = wait_until(lambda: re.findall(r".*action=reload_refused.*", daemon.log.read_text()), what="refusal")
    assert len(refused) == 1
    assert re.search(r'error="scheduler\.misfire_grace: [^"]+"', refused[0]), refused[0]
    run = finished_run(daemon, token, run_now(daemon, token))
    assert "the new command ran" in run["errorInformation"]["message"]  # the last good config stays

    daemon.config.write_text("[scheduler\n")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len(re.findall("action=reload_refused", daemon.log.read_text())) == 2, what="refusal")
    assert daemon.request("GET", "/healthz")[0] == 200
    assert daemon.stop() == 0
    for line in daemon.log.read_text().splitlines():
        assert re.match(r"ts=\S+ level=\w+ logger=\S+ action=\w+", line), line


# -- --daemon and --unix-socket -------------------------------------------------------------


@pytest.fixture
def reap_pidfile():
    pidfiles: list[Path] = []
    yield pidfiles.append
    for pidfile in pidfiles:
        pid = daemon_mod.pidfile_owner(str(pidfile))
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def test_serve_daemon_detaches_writes_the_pidfile_and_stops_cleanly_on_sigterm(daemon_factory, tmp_path,
                                                                               reap_pidfile):
    daemon = daemon_factory([sys.executable, "-c", "pass"])
    pidfile, log = tmp_path / "run" / "schedd.pid", tmp_path / "detached.log"
    pidfile.parent.mkdir()
    reap_pidfile(pidfile)
    args = ("serve", "--daemon", "--pidfile", str(pidfile), "--log-file", str(log), "--port", "0",
            "--db", daemon.db, "--config", str(daemon.config))
    started = time.monotonic()
    out = schedd(*args)
    assert out.returncode == 0, out.stderr + (log.read_text() if log.exists() else "")
    assert out.stdout == "" and time.monotonic() - started < 30
    pid = int(pidfile.read_text())
    assert pid != os.getpid() and daemon_mod.pidfile_owner(str(pidfile)) == pid
    daemon.port = int(wait_until(lambda: re.search(r"action=listening .*port=(\d+)", log.read_text()),
                                 what="listening line").group(1))
    assert daemon.request("GET", "/healthz") == (200, {"status": "ok"})
    assert daemon.login()

    again = schedd(*args)
    assert again.returncode == 2 and f"already running as pid {pid}" in again.stderr

    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pidfile.exists(), what="pidfile removed")
    assert "action=stopped" in log.read_text()


def test_serve_daemon_reports_a_start_up_failure_and_exits_1(daemon_factory, tmp_path):
    daemon = daemon_factory([sys.executable, "-c", "pass"])
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    pidfile = tmp_path / "schedd.pid"
    out = schedd("serve", "--daemon", "--pidfile", str(pidfile), "--log-file", str(tmp_path / "l.log"),
                 "--port", str(busy.getsockname()[1]), "--db", daemon.db, "--config", str(daemon.config))
    busy.close()
    assert out.returncode == 1 and "cannot listen on 127.0.0.1:" in out.stderr
    wait_until(lambda: not pidfile.exists(), what="pidfile removed")
    assert schedd("serve", "--daemon").returncode == 2


def test_unix_socket_listener_answers_and_is_removed_on_stop(daemon_factory, tmp_path):
    daemon = daemon_factory([sys.executable, "-c", "pass"])
    path = tmp_path / "schedd.sock"
    spawn(daemon, "--unix-socket", str(path))
    wait_until(lambda: "action=listening unix_socket=" in daemon.log.read_text(), what="listening")

    async def talk() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as session:
            async with session.get("http://schedd/healthz") as response:
                assert response.status == 200 and await response.json() == {"status": "ok"}
            async with session.post("http://schedd/authService/accounts/login",
                                    data={"userid": "ops", "password": "wrong"}) as response:
                assert response.status == 401

    asyncio.run(talk())
    assert daemon.stop() == 0
    assert not path.exists()


# -- metrics and the dashboard -------------------------------------------------------------


def series_names() -> dict[str, set[str]]:
    """Every series name the registry can expose, with the labels it carries."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names: dict[str, set[str]] = {}
    for collector in metrics.REGISTRY._collector_to_names:  # also the families with no series yet
        for family in getattr(collector, "describe", collector.collect)():
            labels = set(getattr(collector, "_labelnames", ()))
            for suffix in suffixes[family.type]:
                names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_finds_nothing_wrong_with_live_metrics(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "pass"]).start()
    token = daemon.login()
    for _ in range(3):
        finished_run(daemon, token, run_now(daemon, token))
    daemon.request("GET", "/aggregates/maintenance/orgId/nope/history", token=token)
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert daemon.stop() == 0
    assert 'schedd_runs_total{family="maintenance",kind="manual",state="done"} 3.0' in text
    assert "schedd_writer_commit_seconds_bucket" in text and "schedd_http_requests_total" in text
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60,
                         check=False)
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return queries


def test_dashboard_queries_only_metrics_and_labels_that_exist():
    names = series_names()
    queries = dashboard_queries()
    used = set()
    for query in queries:
        for metric in re.findall(r"\bschedd_\w+", query):
            assert metric in names, f"{metric} is not exposed (query: {query})"
            used.add(metric)
            for group in re.findall(r"by \(([^)]*)\)", query):
                labels = {label.strip() for label in group.split(",")}
                assert labels <= names[metric], f"{query}: {labels - names[metric]} not labels of {metric}"
    # Every instrument appears on the dashboard.
    assert {name.removesuffix("_total").removesuffix("_bucket") for name in used} >= {
        "schedd_start_delay_seconds", "schedd_runs", "schedd_misfires", "schedd_skips", "schedd_runs_queued",
        "schedd_runs_in_flight", "schedd_writer_batch_size", "schedd_writer_commit_seconds",
        "schedd_http_requests", "schedd_http_request_seconds"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_dashboard_queries_are_valid_promql(tmp_path):
    rules = [{"record": f"schedd:dashboard:{n}", "expr": q.replace("$__rate_interval", "5m").replace("$instance", ".*")}
             for n, q in enumerate(dashboard_queries()) if not q.startswith("label_values")]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr


# -- logs ------------------------------------------------------------------------------------


def start_logging_json(daemon: Daemon) -> Daemon:
    """Start a daemon whose config logs JSON: its port comes from the `listening` entry."""
    spawn(daemon, "--port", "0")

    def listening():
        for line in daemon.log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("action") == "listening":
                return int(entry["port"])
        assert daemon.proc.poll() is None, daemon.log.read_text()
        return None

    daemon.port = wait_until(listening, what="listening")
    return daemon


def test_json_logs_are_one_object_per_line_with_action_run_and_request_ids(daemon_factory):
    daemon = daemon_factory([sys.executable, "-c", "print('ok')"])
    write_config(daemon, [sys.executable, "-c", "print('ok')"], logging={"format": "json"})
    start_logging_json(daemon)
    token = daemon.login()
    run_id = run_now(daemon, token)
    finished_run(daemon, token, run_id)
    assert daemon.request("GET", "/aggregates/maintenance/orgId/default/history?limit=0", token=token)[0] == 400
    daemon.config.write_text("[logging]\nformat = 'json'\nlevel = 'nope'\n")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload_refused" in daemon.log.read_text(), what="refusal")
    assert daemon.stop() == 0

    entries = [json.loads(line) for line in daemon.log.read_text().splitlines()]
    assert all(e["action"] and e["ts"] and e["level"] for e in entries)
    http = [e for e in entries if e["action"] == "http"]
    assert http and all(re.fullmatch(r"[0-9a-f]{16}", e["request_id"]) for e in http)
    assert {e["status"] for e in http} >= {200, 400}  # numbers, as %d logged them
    run_events = [e for e in entries if e["action"] in ("run_start", "run_end")]
    assert [e["run"] for e in run_events] == [run_id, run_id]
    (refused,) = [e for e in entries if e["action"] == "reload_refused"]
    assert refused["error"].startswith("logging.level: ")


def test_every_line_gets_an_action_even_from_libraries():
    record = logging_record("Task exception was never retrieved")
    assert logs.LogfmtFormatter().format(record).endswith('action=log msg="Task exception was never retrieved"')
    assert json.loads(logs.JsonFormatter().format(record))["action"] == "log"
    record = logging_record('action=reload_refused error=%s', 'a "b"\nc')  # the formatter quotes
    assert json.loads(logs.JsonFormatter().format(record))["error"] == 'a "b"\nc'


def logging_record(message: str, *args):
    import logging

    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, args, None)


def test_background_logging_writes_every_line_by_shutdown_even_from_other_threads(tmp_path):
    import logging
    import threading

    target = tmp_path / "bg.log"
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        logs.setup("logfmt", "INFO", target=str(target), background=True)
        log = logging.getLogger("schedd.test")

        def burst(name: str) -> None:
            for i in range(2000):
                log.info("action=burst thread=%s i=%d", name, i)

        threads = [threading.Thread(target=burst, args=(f"t{n}",)) for n in range(4)]
        for t in threads:
            t.start()
        burst("main")
        for t in threads:
            t.join()
        changing = ["as logged"]
        log.info("action=library_object value=%s", changing)  # not a plain value: formatted at the call
        changing[0] = "changed afterwards"
        logs.shutdown()
        log.info("action=after_shutdown")  # logging goes on, written at once
        lines = target.read_text().splitlines()
        assert len([ln for ln in lines if "action=burst" in ln]) == 5 * 2000
        assert any("as logged" in ln for ln in lines) and not any("changed afterwards" in ln for ln in lines)
        assert lines[-1].endswith("action=after_shutdown")
    finally:
        logs.shutdown()
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
