"""Logging: one line per event, logfmt or JSON, to stderr (journald), a file or syslog.

Every line starts with a stable `action=` name; a message from a library that does not
follow the convention is shown as `action=log msg="..."` so that no line lacks one.

Call sites keep the stdlib form `log.info("action=run_end run=%s state=%s", uid, state)`.
The fields come from the format string, never from the rendered text: each `key=` of it
takes the %-arguments of its own value, so no argument can add a key, a line or a quote.
logfmt quotes a value when it must (space, `=`, quote, backslash, an empty value, any
character that is not printable, escaped as in JSON); JSON gets the same fields, numbers
as numbers (`%d`, `%.1f`, or a number passed to `%s`), and `%r` of a string is that string.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import logging.handlers
import math
import os
import queue
import re
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from schedd.timefmt import utc_millis

UNSTRUCTURED = "log"
"""The action of a line whose message is not `action=... key=value...` (library messages)."""
BASE_KEYS = ("ts", "level", "logger")
"""Keys every line starts with; a message cannot set them."""

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ACTION = re.compile(r"action=([A-Za-z0-9_.-]+)(?: |$)")
_SPEC = re.compile(r"%(\([^)]*\))?[#0 +-]*(\*|[0-9]+)?(?:\.(\*|[0-9]+))?[hlL]?([diouxXeEfFgGcrsa%])")
_MUST_QUOTE = re.compile(r'[ ="\\]')
_BARE_ASCII = re.compile(r'[!#-<>-\[\]-~]+')  # printable ASCII but space, `"`, `=` and `\`
_VERBATIM_SPEC = re.compile(r"%(?:s|d|i|g|\.[0-9]f|%)")
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_INTEGER, _REAL = frozenset("diu"), frozenset("eEfFgG")
# Characters str.splitlines() breaks at that JSON leaves as they are: escaped in JSON lines.
_JSON_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def quote(value: object) -> str:
    """`value` as a logfmt value: bare when that is unambiguous, else a JSON-escaped quoted string.

    A bare value is non-empty, printable, without space, `=`, `"` or `\\`; every other value
    is quoted, with `"`, `\\`, line breaks and every unprintable character escaped, so that a
    value can never end the line, start a key or close its quotes.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isascii():
        if _BARE_ASCII.fullmatch(text):
            return text
        printable = text.isprintable()
    else:
        printable = text.isprintable()
        if printable and text and not _MUST_QUOTE.search(text):
            return text
    if printable:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"' + "".join(ch if ch.isprintable() and ch not in '"\\' else _escape(ch) for ch in text) + '"'


def _escape(ch: str) -> str:
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    code = ord(ch)
    if code > 0xFFFF:  # a surrogate pair, as JSON writes it
        high, low = divmod(code - 0x10000, 0x400)
        return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"
    return f"\\u{code:04x}"


def _ts(record: logging.LogRecord) -> str:
    return utc_millis(record.created)


@dataclass(frozen=True, slots=True)
class _Slot:
    """One `key=value` of a format string: its value template and which arguments fill it."""

    key: str
    template: str
    start: int
    end: int
    """The slot takes `args[start:end]`."""
    single: str
    """The conversion when the value is exactly one (`%s`, `%d`, `%.1f`), else "": its argument may stay
    a number."""
    literal: bool
    """No `%` at all: the value is the template, whatever the arguments."""


@dataclass(frozen=True, slots=True)
class _Plan:
    slots: tuple[_Slot, ...]
    arguments: int
    verbatim: bool
    """The format string is already logfmt as it stands (no `%r`, no key every line has, no literal
    that needs quoting): with bare-safe arguments, `message % args` is the line's own text."""


Field = tuple[str, str, Any]
"""(key, the value as logfmt shows it before quoting, the value for JSON)."""


@functools.lru_cache(maxsize=1024)
def _plan(message: str) -> _Plan | None:
    """The `key=value` slots of a format string; None unless it is `action=NAME key=value...`."""
    if not _ACTION.match(message):
        return None
    slots = []
    position = 0
    for token in message.split(" "):
        if not token:
            continue
        key, eq, template = token.partition("=")
        if not eq or not _KEY.fullmatch(key):
            return None
        conversions = []
        for spec in _SPEC.finditer(template):
            mapping, width, precision, conversion = spec.groups()
            if conversion == "%":
                continue
            if mapping or width == "*" or precision == "*":
                return None
            conversions.append(conversion)
        single = conversions[0] if len(conversions) == 1 and _SPEC.fullmatch(template) else ""
        slots.append(_Slot(key, template, position, position + len(conversions), single, "%" not in template))
        position += len(conversions)
    verbatim = all(slot.key not in BASE_KEYS and _bare_template(slot.template) for slot in slots)
    return _Plan(tuple(slots), position, verbatim)


def _bare_template(template: str) -> bool:
    """Only conversions that print a bare argument as it is (no repr, width or padding), in bare text."""
    if not all(_VERBATIM_SPEC.fullmatch(spec.group(0)) for spec in _SPEC.finditer(template)):
        return False
    literal = _SPEC.sub("", template)
    return not literal or _BARE_ASCII.fullmatch(literal) is not None


def _verbatim(record: logging.LogRecord) -> str | None:
    """The message as logfmt text when neither it nor any argument can need a quote, else None."""
    message, args = record.msg, record.args
    if not isinstance(message, str) or isinstance(args, dict) or "schedd_fields" in record.__dict__:
        return None
    plan = _plan(message)
    if plan is None or not plan.verbatim:
        return None
    values = tuple(args) if args else ()
    if plan.arguments != len(values):
        return None
    for value in values:
        kind = type(value)
        if isinstance(value, str):
            if kind is not str or _BARE_ASCII.fullmatch(value) is None:  # a subclass may print otherwise
                return None
        elif kind is not int and kind is not float:
            return None
    try:
        return message % values if values else message
    except (TypeError, ValueError, OverflowError):
        return None


def fields(record: logging.LogRecord) -> list[Field]:
    """The fields of a record: from its format string and arguments, else `action=... msg=...`."""
    stashed = getattr(record, "schedd_fields", None)
    if stashed is not None:
        return stashed
    return _structured(record) or _unstructured(record)


def _structured(record: logging.LogRecord) -> list[Field] | None:
    message, args = record.msg, record.args
    if not isinstance(message, str) or isinstance(args, dict):
        return None
    plan = _plan(message)
    if plan is None:
        return None
    values = tuple(args) if args else ()
    if plan.arguments != len(values):
        return None
    try:
        if not values:
            return [(slot.key, slot.template, slot.template) for slot in plan.slots]
        return [(slot.key, slot.template, slot.template) if slot.literal else (slot.key, *_value(slot, values))
                for slot in plan.slots]
    except (TypeError, ValueError, OverflowError):
        return None


def _value(slot: _Slot, values: tuple[Any, ...]) -> tuple[str, Any]:
    """(text, JSON value) of one slot filled with its arguments."""
    conversion = slot.single
    if conversion:
        arg = values[slot.start]
        if isinstance(arg, str) and conversion in "rs":
            return arg, arg
        if conversion == "s":
            if arg is None:
                return "None", None
            if isinstance(arg, int | float) and (isinstance(arg, int) or math.isfinite(arg)):
                return str(arg), arg
        elif isinstance(arg, int | float) and not isinstance(arg, bool) and math.isfinite(arg):
            if conversion in _INTEGER:
                text = slot.template % arg
                return text, int(text)
            if conversion in _REAL:
                text = slot.template % arg
                return text, float(text)
    text = slot.template % values[slot.start:slot.end]
    return text, text


def _unstructured(record: logging.LogRecord) -> list[Field]:
    """`action=log msg=...` (or the format string's own literal action) with the whole message."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a library's bad arguments must not lose the line
        message = f"{record.msg!s} {record.args!r}"
    found = _ACTION.match(record.msg) if isinstance(record.msg, str) else None
    action = found.group(1) if found else UNSTRUCTURED
    return [("action", action, action), ("msg", message, message)]


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [f"ts={_ts(record)}", f"level={record.levelname.lower()}", f"logger={quote(record.name)}"]
        verbatim = _verbatim(record)
        if verbatim is not None:
            parts.append(verbatim)
        else:
            parts += [f"{key}={quote(text)}" for key, text, _ in fields(record) if key not in BASE_KEYS]
        if record.exc_info:
            parts.append("exc=" + quote(self.formatException(record.exc_info)))
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """The fields of a record as one JSON object: numbers as numbers, the rest as strings."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"ts": _ts(record), "level": record.levelname.lower(), "logger": record.name}
        for key, _, value in fields(record):
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = json.dumps(entry, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: only an ASCII escape can write it
            line = json.dumps(entry)
        for char, escaped in _JSON_BREAKS.items():
            if char in line:
                line = line.replace(char, escaped)
        return line


class _SyslogFormatter(logging.Formatter):
    """syslog(3)'s `ident[pid]: ` before the line; syslog adds the time itself."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"schedd[{os.getpid()}]: {self.inner.format(record)}"


SYSLOG = "syslog"
"""`setup(target=SYSLOG)`: log to the local syslog daemon through /dev/log."""
SYSLOG_SOCKET = "/dev/log"

_target: TextIO | str | None = None
_handler: logging.Handler | None = None
_listener: logging.handlers.QueueListener | None = None
_queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()


_PLAIN = (str, int, float, type(None))


class _Enqueue(logging.handlers.QueueHandler):
    """Hands each record to the log thread: formatting and writing happen there.

    schedd's own log calls pass strings and numbers, which nothing can change after the
    call, so their records go as they are; a record with any other argument (a library's)
    has its fields made here, from the objects as they are now, and its message with them.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        args = record.args
        if args and not all(isinstance(a, _PLAIN) for a in (args.values() if isinstance(args, dict) else args)):
            record.__dict__["schedd_fields"] = fields(record)
            record.msg, record.args = _message(record), None
        return record


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a library's bad arguments must not lose the line
        return f"{record.msg!s} {record.args!r}"


def setup(fmt: str = "logfmt", level: str = "INFO", stream: TextIO | None = None, *,
          target: str | None = None, background: bool = False) -> None:
    """Send every log line to `stream` (default stderr), or to the file `target`, or to syslog.

    The target is remembered: `reconfigure()` changes format and level and reopens it.
    With `background` (the daemon), lines are formatted and written by a thread of their
    own, so a slow disk or journal never holds up the event loop; `shutdown()` (also run at
    exit) writes what is still queued.
    """
    global _target
    _target = target if target is not None else stream
    if background and _listener is None:
        atexit.register(shutdown)
        reconfigure(fmt, level, _start=True)
    else:
        reconfigure(fmt, level)


def shutdown() -> None:
    """Write every queued line and stop the log thread (logging goes on, in the caller's thread)."""
    global _listener
    if _listener is None:
        return
    listener, _listener = _listener, None
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if _handler is not None:
        root.addHandler(_handler)  # new lines go straight out; the thread writes what is queued
    listener.stop()


def reconfigure(fmt: str, level: str, *, _start: bool = False) -> None:
    """New format and level on the target of the last `setup()` (a log file is reopened).

    The new handler is made before the old one goes, so a failure leaves logging as it was.
    """
    global _handler, _listener
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else LogfmtFormatter()
    handler: logging.Handler
    if _target == SYSLOG:
        handler = logging.handlers.SysLogHandler(
            SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        formatter = _SyslogFormatter(formatter)
    elif isinstance(_target, str):
        # Reopens the file when logrotate moved it away, without a signal.
        handler = logging.handlers.WatchedFileHandler(_target, encoding="utf-8")
    else:
        handler = logging.StreamHandler(_target or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    background = _start or _listener is not None
    if _listener is not None:
        _listener.stop()  # writes what the old handler still has queued
    for old in list(root.handlers):
        root.removeHandler(old)
    if _handler is not None:
        _handler.close()
    _handler = handler
    if background:
        _listener = logging.handlers.QueueListener(_queue, handler)
        _listener.start()
        root.addHandler(_Enqueue(_queue))
    else:
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
