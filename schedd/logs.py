"""Logging: one line per event, logfmt or JSON, to stderr (journald), a file or syslog.

Every line starts with a stable `action=` name; a message from a library that does not
follow the convention is shown as `action=log msg="..."` so that no line lacks one.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import time
from typing import TextIO

_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|\S+)')
_ACTION = re.compile(r"action=\S")
UNSTRUCTURED = "log"
"""The action of a line whose message is not `action=... key=value...` (library messages)."""


def quote(value: object) -> str:
    """A logfmt value that survives spaces, quotes and newlines: a JSON string."""
    return json.dumps(str(value), ensure_ascii=False)


def _ts(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _structured(message: str) -> bool:
    return _ACTION.match(message) is not None


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not _structured(message):
            message = f"action={UNSTRUCTURED} msg={quote(message)}"
        line = f"ts={_ts(record)} level={record.levelname.lower()} logger={record.name} {message}"
        if record.exc_info:
            line += " exc=" + quote(self.formatException(record.exc_info))
        return line


def _unquote(value: str) -> str:
    if value[:1] == '"' and value[-1:] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value[1:-1]
    if value[:1] == "'" and value[-1:] == "'":
        return value[1:-1].replace("\\'", "'")
    return value


class JsonFormatter(logging.Formatter):
    """The logfmt pairs of a message (`action=... run=...`) as JSON fields, values as strings."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {"ts": _ts(record), "level": record.levelname.lower(), "logger": record.name}
        if _structured(message):
            for key, value in _PAIR.findall(message):
                entry.setdefault(key, _unquote(value))
        else:
            entry["action"] = UNSTRUCTURED
            entry["msg"] = message
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


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
    has its message made here, from the objects as they are now.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        args = record.args
        if args and not all(isinstance(a, _PLAIN) for a in (args.values() if isinstance(args, dict) else args)):
            record.msg, record.args = record.getMessage(), None
        return record


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
