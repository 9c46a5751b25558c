"""Cost of formatting one log line: the access line every request writes, plain and hostile.

Prints microseconds per line for logfmt and JSON. The daemon formats lines in its log
thread, so this is CPU taken beside the event loop, not latency of a request.

    .venv/bin/python benchmarks/log_bench.py [--lines N]
"""

from __future__ import annotations

import argparse
import logging
import time

from schedd import logs

PLAIN = ("GET", "/aggregates/maintenance/orgId/default/history", 200, 1.234, "5f1c2a9e00000001")
HOSTILE = ("GET", '/healthz\nts=2026-01-01T00:00:00Z action=web_login user="admin" \u2028', 404, 0.5,
           "5f1c2a9e00000002")


def per_line(formatter: logging.Formatter, args: tuple[object, ...], lines: int) -> float:
    record = logging.LogRecord("schedd.http", logging.INFO, __file__, 1,
                               "action=http method=%s path=%s status=%d ms=%.1f request_id=%s", args, None)
    started = time.perf_counter()
    for _ in range(lines):
        formatter.format(record)
    return (time.perf_counter() - started) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    lines = parser.parse_args().lines
    for name, formatter in (("logfmt", logs.LogfmtFormatter()), ("json", logs.JsonFormatter())):
        for label, args in (("plain", PLAIN), ("hostile", HOSTILE)):
            print(f"{name:6} {label:7} {per_line(formatter, args, lines):6.2f} us/line")


if __name__ == "__main__":
    main()
