"""Three instances on one PostgreSQL database: the firing instance killed 20 times and stalled
past its lease 5 times, with 200 every-second schedules (benchmarks/failover.py does the work).

Afterwards every schedule has, for every due second of the window, exactly one record: a run,
or a skip its policies recorded (a misfire during a gap); every acknowledged API write is
there; the next instance fired within 5 s of each kill.
"""

from __future__ import annotations

import asyncio

from benchmarks import failover

KILLS, STOPS, SCHEDULES = 20, 5, 200


async def test_each_fire_runs_once_across_kills_and_stalls(pg_cluster, tmp_path):
    url = await pg_cluster.new_database(migrated=False)
    lines: list[str] = []
    report = await asyncio.to_thread(
        failover.run, url, tmp_path, instances=3, schedules=SCHEDULES, kills=KILLS, stops=STOPS, log=lines.append)
    summary = "\n".join(lines + report.lines())
    assert report.seconds_checked >= SCHEDULES * 30, summary
    assert not report.doubled, summary + f"\ntwo records for one second: {report.doubled[:10]}"
    assert not report.missing, summary + f"\nno record for: {report.missing[:10]}"
    assert report.bad_skip_counts == 0, summary
    assert report.acknowledged > 0 and not report.lost, summary
    assert len(report.kill_gaps) == KILLS and max(report.kill_gaps) <= 5.0, summary
    assert len(report.stall_gaps) == STOPS and report.stepped_down_after_stall == STOPS, summary
