"""Log lines cannot be forged: values are quoted, JSON is built from fields, request ids are checked.

Lines are read back with a logfmt parser written here from the format's grammar (a key, `=`,
a bare value or a JSON-escaped quoted one), independent of schedd/logs.py.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from schedd import logs

FORGED_PATH = "/healthz%0Ats=2026-01-01T00:00:00.000Z%20level=info%20logger=schedd.web%20action=web_login%20user=admin"
GENERATED_ID = re.compile(r"[0-9a-f]{16}")


def parse_logfmt(line: str) -> dict[str, str]:
    """One logfmt line as {key: value}; a bare value may hold no space, quote or `=`; keys appear once."""
    assert len(line.splitlines()) == 1, repr(line)
    out: dict[str, str] = {}
    i = 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        key_end = i
        while key_end < len(line) and line[key_end] not in " =":
            key_end += 1
        key = line[i:key_end]
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), (key, line)
        assert key_end < len(line) and line[key_end] == "=", ("a key without a value", line)
        i = key_end + 1
        if i < len(line) and line[i] == '"':
            end = i + 1
            while line[end] != '"':
                end += 2 if line[end] == "\\" else 1
            value = json.loads(line[i:end + 1])
            i = end + 1
            assert i == len(line) or line[i] == " ", ("text after a quoted value", line)
        else:
            end = i
            while end < len(line) and line[end] != " ":
                end += 1
            value = line[i:end]
            assert value and '"' not in value and "=" not in value and value.isprintable(), (value, line)
            i = end
        assert key not in out, ("a key twice", key, line)
        out[key] = value
    return out


@pytest.fixture
def captured():
    """The root logger writing to a buffer through `logs.setup`, restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffers: list[io.StringIO] = []

    def start(fmt: str) -> io.StringIO:
        buffer = io.StringIO()
        buffers.append(buffer)
        logs.setup(fmt, "INFO", stream=buffer)
        return buffer

    yield start
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().split("\n")[:-1]


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("schedd.test", logging.INFO, __file__, 1, message, args, None)


async def test_a_path_with_a_newline_and_fields_writes_no_forged_line(api, captured):
    buffer = captured("logfmt")
    response = await api.client.get(URL(FORGED_PATH, encoded=True))
    assert response.status == 404
    entries = [parse_logfmt(line) for line in lines(buffer)]
    assert not [e for e in entries if e["action"] == "web_login"], entries
    (http,) = [e for e in entries if e["action"] == "http"]
    assert http["path"] == ("/healthz\nts=2026-01-01T00:00:00.000Z level=info logger=schedd.web "
                            "action=web_login user=admin")
    assert http["status"] == "404" and "user" not in http


@pytest.mark.parametrize("sent", ["abc action=web_login user=mallory", "abc\tx", "a" * 65, "", "ab\"c", "ïd",
                                  "abc%0Aaction=x"])
async def test_a_request_id_outside_the_safe_set_is_replaced(api, captured, sent):
    buffer = captured("logfmt")
    response = await api.client.get("/healthz", headers={"X-Request-Id": sent})
    assert response.status == 200
    given_back = response.headers["X-Request-Id"]
    assert given_back != sent and GENERATED_ID.fullmatch(given_back)
    (http,) = [parse_logfmt(line) for line in lines(buffer) if "action=http" in line]
    assert http["request_id"] == given_back and "user" not in http


async def test_a_request_id_in_the_safe_set_is_kept(api, captured):
    buffer = captured("json")
    sent = "Req-2026.01_a" + "b" * 51  # 64 characters
    response = await api.client.get("/healthz", headers={"X-Request-Id": sent})
    assert response.headers["X-Request-Id"] == sent
    (http,) = [json.loads(line) for line in lines(buffer) if '"http"' in line]
    assert http["request_id"] == sent


async def test_json_records_a_404_with_the_status_as_a_number_whatever_the_path_says(api, captured):
    buffer = captured("json")
    response = await api.client.get(URL("/nothing%20status=200%20ms=1", encoded=True),
                                    headers={"X-Request-Id": "x status=200"})
    assert response.status == 404
    (http,) = [e for e in map(json.loads, lines(buffer)) if e["action"] == "http"]
    assert http["status"] == 404 and isinstance(http["ms"], float)
    assert http["path"] == "/nothing status=200 ms=1"
    assert set(http) == {"ts", "level", "logger", "action", "method", "path", "status", "ms", "request_id"}


HOSTILE = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from([
    "", " ", "=", '"', "\\", '\\"', "a=b c=d", "x\ny action=forged", "\r\n", "\u2028", "\x85", "\x00", "\ud800",
    "\udfff\ud800", "\U0001f600", "\u202e", "\x1b[31m", "ts=1", '" level=error "', "\\u0041"])


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(value=HOSTILE, number=st.integers(-10**20, 10**20), real=st.floats(allow_nan=False, allow_infinity=False))
def test_every_hostile_value_round_trips_through_a_logfmt_parser_and_json(value, number, real):
    entry = record("action=hostile value=%s error=%r count=%d ms=%.3f", value, value, number, real)
    line = logs.LogfmtFormatter().format(entry)
    parsed = parse_logfmt(line)
    assert set(parsed) == {"ts", "level", "logger", "action", "value", "error", "count", "ms"}
    assert (parsed["action"], parsed["value"], parsed["error"]) == ("hostile", value, value)
    assert parsed["count"] == str(number) and parsed["ms"] == "%.3f" % real
    line = logs.JsonFormatter().format(entry)
    assert len(line.splitlines()) == 1
    loaded = json.loads(line)
    assert (loaded["value"], loaded["error"], loaded["count"]) == (value, value, number)
    assert loaded["ms"] == float("%.3f" % real)
    # Without %r the line is the message itself whenever no value needs quoting: the same fields.
    line = logs.LogfmtFormatter().format(record("action=plain value=%s count=%d ms=%.3f", value, number, real))
    plain = parse_logfmt(line)
    assert plain.pop("ts") and plain == {**{k: parsed[k] for k in ("level", "logger", "value", "count", "ms")},
                                         "action": "plain"}


def test_a_value_is_bare_only_when_that_is_unambiguous():
    assert logs.quote("run-1.2_x") == "run-1.2_x"
    assert logs.quote("é") == "é"
    for value, quoted in [("", '""'), ("a b", '"a b"'), ("a=b", '"a=b"'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'),
                          ("a\nb", '"a\\nb"'), ("\x00", '"\\u0000"'), ("\u2028", '"\\u2028"'),
                          ("\ud800", '"\\ud800"'), ("\U000e0001", '"\\udb40\\udc01"')]:
        assert logs.quote(value) == quoted
        assert json.loads(quoted) == value


def test_library_messages_and_unparseable_ones_keep_their_text_in_one_quoted_field():
    for entry, action in [(record("Task exception was never retrieved"), "log"),
                          (record("action=x text with spaces %s", "a action=y"), "x"),
                          (record("%s action=y", "action=z"), "log"),
                          (record("action=x a=%s", 1, 2), "x")]:
        parsed = parse_logfmt(logs.LogfmtFormatter().format(entry))
        assert parsed["action"] == action and set(parsed) == {"ts", "level", "logger", "action", "msg"}
        assert json.loads(logs.JsonFormatter().format(entry))["action"] == action


def test_a_message_cannot_set_the_keys_every_line_starts_with():
    entry = record("action=x level=%s logger=%s ts=%s", "error", "schedd.web", "1970")
    parsed = parse_logfmt(logs.LogfmtFormatter().format(entry))
    assert parsed["level"] == "info" and parsed["logger"] == "schedd.test" and parsed["ts"] != "1970"
    loaded = json.loads(logs.JsonFormatter().format(entry))
    assert loaded["level"] == "info" and loaded["logger"] == "schedd.test"


def test_arguments_that_are_not_plain_values_are_fixed_at_the_call_in_the_log_thread():
    queued = logs._Enqueue(logs._queue)
    changing = ["as logged", "a b"]
    entry = queued.prepare(record("action=x value=%s", changing))
    changing[0] = "changed"
    assert parse_logfmt(logs.LogfmtFormatter().format(entry))["value"] == "['as logged', 'a b']"


def _log_calls() -> list[tuple[str, ast.Call]]:
    root = Path(__file__).resolve().parent.parent / "schedd"
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "log"
                    and node.func.attr in ("debug", "info", "warning", "error", "exception", "critical")):
                found.append((f"{path.relative_to(root)}:{node.lineno}", node))
    return found


@pytest.mark.slow  # parses every module of schedd
def test_every_log_call_of_schedd_is_structured_with_one_argument_per_conversion():
    """A literal `action=NAME key=value...` with as many %-arguments as conversions: never an f-string."""
    calls = _log_calls()
    assert len(calls) > 25
    for where, call in calls:
        first = call.args[0] if call.args else None
        assert isinstance(first, ast.Constant) and isinstance(first.value, str), f"{where}: not a literal format"
        plan = logs._plan(first.value)
        assert plan is not None, f"{where}: {first.value!r} is not action=NAME key=value..."
        assert plan.arguments == len(call.args) - 1, f"{where}: arguments != conversions"
