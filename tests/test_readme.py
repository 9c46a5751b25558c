"""README.md's curl demo, run as written against a real daemon, and the docs' other promises.

The shell blocks of "Try it with curl" run in one bash (`set -euo pipefail`) in an empty
directory, on free ports instead of 8470/8471; the test fails when a command fails, when an
answer changes shape, or when the demo leaves a file behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Daemon

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

S, I, B, N = "str", "int", "bool", None

ENGINE_STATUS = {"code": I, "message": S}
DESIGN_STATUS = {"i18n_message": S, "message": S}
WINDOW = {
    "id": I, "name": S, "description": N, "external_reference": N, "external_link": N, "status": S, "scope": I,
    "service": I, "service_status": S, "creation_date": S, "scheduled_start_date": S, "scheduled_end_date": S,
    "start_date": N, "end_date": N, "events": [{"creation_date": S, "content": S, "internal": I, "type": S}],
    "links": {"self": S, "scope": S, "service": S, "calendar": S},
}
# What those who may write the window read: each event names its author too.
WINDOW_WRITER = {**WINDOW, "events": [{"creation_date": S, "content": S, "internal": I, "type": S, "author": S}]}
JOB_RUN = {"jobRunId": I, "jobStartTime": S, "jobEndTime": S, "jobDuration": I, "executionFrequency": S,
           "executionStatus": S, "completeHistory": B}

# What the demo prints, line by line: a shape for a JSON answer, else a regular expression.
EXPECTED: list[Any] = [
    r"ops",
    {"status": ENGINE_STATUS, "responseCreated": S,
     "response": {"job_id": S, "time_expression": S, "scheduler_type": S, "created_at": S, "created_by_user": S,
                  "timezone": S, "next_execution": S}},
    {"status": ENGINE_STATUS, "responseCreated": S, "response": N},
    {"status": ENGINE_STATUS, "responseCreated": S,
     "response": {"data": [{"id": S, "organizationId": S, "triggerType": S, "creationTime": S, "startTime": S,
                            "endTime": S, "status": S, "errorInformation": {}}],
                  "limit": I, "offset": I, "force_pull": B}},
    {"response": {"created_at": S, "created_by_user": S, "cube_id": S, "full_build": B, "job_id": S,
                  "latest_execution": {"executedAt": S, "id": S, "jobId": S}, "organization_Id": S, "path": S,
                  "project_id": S, "time_expression": S, "timezone": S, "active": B, "next_execution": S},
     "status": DESIGN_STATUS},
    {"response": {"success": B, "id": S}, "status": DESIGN_STATUS},
    {"response": {"data": [{"batchType": S, "createDate": S, "cubeId": S, "endTime": S, "estimateTime": I,
                            "id": S, "organizationId": S, "projectId": S, "startTime": S, "status": S,
                            "errorInformation": {}, "triggerType": S}],
                  "force_pull": B, "limit": I, "offset": I},
     "status": DESIGN_STATUS},
    {"jobId": I, "jobName": S, "jobFrequency": S,
     "jobServiceInfo": {"objectName": S, "operationName": S, "operationSecurityLevel": S, "postData": S,
                        "requestheaderMap": {}, "serviceExecutionType": S, "serviceName": S, "serviceType": S,
                        "version": S},
     "jobStatus": S, "historyStrategy": S, "retentionPeriod": S,
     "jobFrequencyInfo": {"frequencyType": I, "minuteValues": [I]},
     "description": S, "jobNextRunTime": S, "updatedUser": S, "updatedDate": S},
    [JOB_RUN],
    {**JOB_RUN, "triggerType": S, "requestPayload": S, "responseStatus": I, "responseBody": S,
     "errorMessage": N, "skipReason": N, "windowId": N},
    r"Location: /api/maintenance/1",
    r"Location: /api/maintenance/1",
    r"X-Total: 1",
    WINDOW,
    WINDOW_WRITER,
    r"BEGIN:VCALENDAR", r"VERSION:2\.0", r"PRODID:.*", r"CALSCALE:GREGORIAN", r"METHOD:PUBLISH", r"BEGIN:VEVENT",
    r"UID:maintenance-1@.*", r"DTSTAMP:\d{8}T\d{6}Z", r"DTSTART:20300101T030000Z", r"DTEND:20300101T050000Z",
    r"SUMMARY:Database upgrade", r"STATUS:CONFIRMED", r"END:VEVENT", r"END:VCALENDAR",
    r"mia", r"mia may write the windows of: platform \(1\)", r"302", r"mia may write the windows of: none",
    {"message": S, "reasons": {}},
    r"2026-01-30T10:15:00\+00:00", r"2026-02-27T10:15:00\+00:00", r"2026-03-27T10:15:00\+00:00",
    r"2026-03-08T03:00:00-04:00",
]


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def shell_blocks(section: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def same_shape(actual: Any, expected: Any, path: str = "$") -> None:
    """The same fields and types; null stands for any type (whether a run ended by then is timing)."""
    if actual is None or expected is None:
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        assert sorted(actual) == sorted(expected), f"{path}: fields {sorted(actual)} != {sorted(expected)}"
        for key, sub in expected.items():
            same_shape(actual[key], sub, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: {actual!r} is not an array"
        assert bool(actual) == bool(expected), f"{path}: {actual!r}"
        for n, item in enumerate(actual):
            same_shape(item, expected[0], f"{path}[{n}]")
    else:
        assert type(actual).__name__ == expected, f"{path}: {actual!r} is not {expected}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(sys.platform != "linux", reason="a shell script with background processes")
@pytest.mark.skipif(not all(shutil.which(tool) for tool in ("bash", "curl", "python3")),
                    reason="the demo needs bash, curl and python3")
def test_the_curl_demo_runs_as_written_answers_in_shape_and_cleans_up(tmp_path):
    schedd = tmp_path / ".venv" / "bin" / "schedd"
    schedd.parent.mkdir(parents=True)
    schedd.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m schedd "$@"\n')
    schedd.chmod(0o755)
    script = "\n".join(shell_blocks(readme_section("Try it with curl")))
    ports = {"8470": str(free_port()), "8471": str(free_port())}
    script = re.sub(r"\b847[01]\b", lambda m: ports[m.group()], script)
    script = script.replace("\nsleep 1\n", "\nsleep 2\n")  # the runs end well within this, even under load
    proc = subprocess.Popen(["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "SCHEDD_CONFIG": ""})
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None or proc.returncode != 0:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the daemon and the stand-in service, if left
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, f"the demo failed:\n{err}\n{out}"
    assert err == ""
    lines = out.replace("\r\n", "\n").split("\n")
    assert lines[-1] == "", "every answer ends with a newline"
    lines = lines[:-1]
    assert len(lines) == len(EXPECTED), "\n".join(lines)
    for n, (line, expected) in enumerate(zip(lines, EXPECTED, strict=True)):
        if isinstance(expected, str):
            assert re.fullmatch(expected, line), f"line {n + 1}: {line!r} !~ {expected!r}"
        else:
            same_shape(json.loads(line), expected, f"line {n + 1}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".venv"], "the demo left files behind"


def test_the_shape_check_catches_a_changed_answer():
    with pytest.raises(AssertionError):
        same_shape({"status": "SUCCESS", "result": {"jobRunId": 1}}, {"status": S, "result": N, "message": N})
    with pytest.raises(AssertionError):
        same_shape({"a": "1"}, {"a": I})
    same_shape({"a": None, "b": [{"c": 1}]}, {"a": S, "b": [{"c": I}]})


# -- the docs say what the program does ---------------------------------------------------------


def test_the_command_table_lists_every_serve_flag():
    from schedd.cli import _parser

    table = readme_section("Command line")
    serve = _parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flags = {opt for action in serve._actions for opt in action.option_strings if opt.startswith("--")}
    assert flags - {"--help"} == {"--config", "--db", "--host", "--port", "--unix-socket", "--daemon", "--pidfile",
                                  "--log-file"}
    for flag in flags - {"--help"}:
        assert f"{flag} " in table or f"{flag}]" in table or f"{flag}`" in table, f"{flag} is not in the table"


def test_the_example_config_lists_exactly_the_accepted_log_levels():
    from schedd import config

    comment = next(line for line in (ROOT / "etc" / "schedd.toml").read_text().splitlines()
                   if line.startswith("# Lowest level logged:"))
    listed = re.findall(r"\b[A-Z]{4,}\b", comment.split("Default")[0])
    assert tuple(listed) == config.LOG_LEVELS
    for level in listed:
        assert config.from_dict({"logging": {"level": level.lower()}}).logging.level == level
    for alias in ("WARN", "FATAL", "NOTSET"):
        with pytest.raises(config.ConfigError) as err:
            config.from_dict({"logging": {"level": alias}})
        assert err.value.field == "logging.level"


def test_the_systemd_readme_gives_the_exit_codes_of_serve_daemon(tmp_path):
    text = " ".join((ROOT / "systemd" / "README.md").read_text().split())
    assert "exits 2 without starting anything when the command is refused" in text
    assert "1 when the detached daemon failed to start" in text
    assert "ProtectHome=yes" in text and "/usr/bin/python3 -m venv" in text
    out = subprocess.run([sys.executable, "-m", "schedd", "serve", "--daemon"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "SCHEDD_CONFIG": ""})
    assert out.returncode == 2 and "--daemon needs --pidfile" in out.stderr


def test_a_command_group_alone_prints_its_help(capsys):
    from schedd.cli import main

    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: schedd config") and "init" in err and "check" in err
    assert main(["db"]) == 2
    assert capsys.readouterr().err.startswith("usage: schedd db")


def test_a_config_file_that_cannot_be_read_is_named_by_its_flag_or_variable(tmp_path, monkeypatch, capsys):
    from schedd.cli import main

    missing = tmp_path / "missing.toml"
    monkeypatch.delenv("SCHEDD_CONFIG", raising=False)
    assert main(["serve", "--config", str(missing)]) == 2
    assert capsys.readouterr().err == f"schedd: --config: cannot read {missing}: No such file or directory\n"
    monkeypatch.setenv("SCHEDD_CONFIG", str(missing))
    assert main(["token", "create", "ops", "--db", str(tmp_path / "x.db")]) == 2
    assert capsys.readouterr().err == f"schedd: SCHEDD_CONFIG: cannot read {missing}: No such file or directory\n"


def test_db_migrate_says_whether_it_created_the_schema(tmp_path, monkeypatch, capsys):
    from schedd.cli import main

    monkeypatch.delenv("SCHEDD_CONFIG", raising=False)
    db = tmp_path / "new.db"
    assert main(["db", "migrate", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith(f"{db}: created the schema (migrations 0001")
    assert main(["db", "migrate", "--db", str(db)]) == 0
    assert capsys.readouterr().out == f"{db}: schema up to date\n"


@pytest.mark.skipif(sys.platform != "linux", reason="a real daemon")
def test_the_daemon_logs_its_stop_with_its_own_logger(tmp_path):
    daemon = Daemon(tmp_path, [sys.executable, "-c", "pass"]).start()
    try:
        assert daemon.stop() == 0
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    (line,) = [line for line in daemon.log.read_text().splitlines() if "action=stopped" in line]
    assert "logger=schedd.server " in line, line
    assert re.search(r"action=stopped runs_finished=0 runs_interrupted=0$", line), line
