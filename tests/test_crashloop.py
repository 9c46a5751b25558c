"""Five rounds of start, random API writes, kill -9, restart: nothing acknowledged is lost."""

from __future__ import annotations

from benchmarks import crashloop


def test_five_crash_rounds_lose_nothing_and_account_for_every_fire(tmp_path):
    lines: list[str] = []
    results = crashloop.run(5, seed=11, workdir=tmp_path, max_seconds=1.5, max_down=3.0, echo=lines.append)
    assert len(results) == 5
    for r in results:
        assert r.integrity == "ok", lines
        assert r.lost == [], lines
        assert (r.open_runs, r.missing, r.duplicated) == (0, 0, 0), lines
    assert results[-1].acknowledged > 0 and results[-1].fires > 0, lines
