"""Logging: one line per event, logfmt or JSON, to stderr (journald picks it up)."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|\S+)')


def _ts(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"ts={_ts(record)} level={record.levelname.lower()} logger={record.name} {record.getMessage()}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """The logfmt pairs of a message (`action=... run=...`) as JSON fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {"ts": _ts(record), "level": record.levelname.lower(), "logger": record.name}
        pairs = _PAIR.findall(message)
        if pairs and message.startswith(pairs[0][0] + "="):
            for key, value in pairs:
                if value[:1] in "\"'" and value[-1:] == value[:1]:
                    value = value[1:-1]
                entry[key] = value
        else:
            entry["msg"] = message
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(fmt: str = "logfmt", level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
