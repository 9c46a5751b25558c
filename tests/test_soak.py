"""A 60-second smoke of benchmarks/soak.py: it drives a real daemon, samples it and draws the chart.

Figures are not asserted (the machine is shared); only that the run completes, every request
was answered as a correct call is, and the table, slopes and chart are all there.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"
SERIES = ("RSS MB", "fds", "threads", "tasks", "heap", "timers", "DB MB", "WAL MB", "runs", "job runs", "tokens",
          "delay p99 ms")


def test_a_one_minute_soak_completes_with_no_failed_request_and_writes_its_table_and_chart(tmp_path):
    out = subprocess.run(  # noqa: S603 - this interpreter, the repository's script
        [sys.executable, str(SOAK), "--seconds", "60", "--every", "10", "--orgs", "10", "--fixed-orgs", "3",
         "--out", str(tmp_path / "soak"), "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    table = (tmp_path / "soak.txt").read_text()
    assert table.strip() in out.stdout
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["t", "s", "RSS"])
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(line.split())
    assert len(rows) >= 6  # a baseline and one sample per 10 s
    assert all(int(row[-1]) == 0 for row in rows)  # no failed request in any interval
    assert sum(int(row[-2]) for row in rows) > 200  # the API mix ran
    assert sum(int(row[-3]) for row in rows) >= 100  # scheduled runs started (four every second)
    assert "(0 failed)" in table
    for series in SERIES:
        assert any(line.startswith(series + " ") for line in lines), series

    svg = ET.parse(tmp_path / "soak.svg").getroot()
    polylines = [e for e in svg.iter() if e.tag.endswith("polyline")]
    assert len(polylines) >= len(SERIES)  # one data line per series (and a fitted line each)
    titles = " ".join(e.text or "" for e in svg.iter() if e.tag.endswith("text"))
    for series in SERIES:
        assert f"{series}:" in titles
