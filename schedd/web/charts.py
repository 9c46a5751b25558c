"""The operator view's two charts as SVG geometry, from per-hour figures (pure: no I/O, no clock).

The template draws what these functions place, so every label goes through the
template's escaping and the page needs no script.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from schedd.store.reports import HourDelay
from schedd.timefmt import clock

HOURS = 24
WIDTH, HEIGHT = 720, 190
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 10, 24
# Stacking order, bottom up, with the legend's words; queued and in progress draw as one.
OUTCOMES = (("done", "done"), ("failed", "failed"), ("interrupted", "interrupted"),
            ("canceled", "canceled"), ("skipped", "skipped"), ("running", "running or queued"))


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    summary: str
    bars: tuple[Bar, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    legend: tuple[tuple[str, str], ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    base: int = HEIGHT - BOTTOM


def window_start(now: float) -> float:
    """Start of the charted day: whole hours, the last bucket being the current hour."""
    return math.floor(now / 3600) * 3600 - (HOURS - 1) * 3600


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (>0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power


def format_seconds(seconds: float) -> str:
    """A duration as a person reads it: 0 ms, 350 ms, 1.2 s, 4 min 5 s, 2 h 3 min."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def runs_text(n: int, what: str = "runs") -> str:
    return f"{n} {what[:-1] if n == 1 else what}"


def _slot(hour: int) -> tuple[float, float]:
    """x and width of an hour's bar."""
    step = (WIDTH - RIGHT - LEFT) / HOURS
    return LEFT + hour * step + 1, step - 2


def _x_ticks(start: float, zone: ZoneInfo) -> tuple[Tick, ...]:
    step = (WIDTH - RIGHT - LEFT) / HOURS
    return tuple(Tick(LEFT + hour * step, clock(start + hour * 3600, zone))
                 for hour in range(0, HOURS, 6))


def axis_parts(top: float) -> int:
    """How many steps divide a 1-2-5 axis top into round values: 5 for 1 and 5, 4 for 2."""
    mantissa = round(top / 10 ** math.floor(math.log10(top)))
    return 4 if mantissa == 2 else 5


def _y_ticks(top: float, label: Callable[[float], str]) -> tuple[Tick, ...]:
    usable = HEIGHT - BOTTOM - TOP
    parts = axis_parts(top)
    return tuple(Tick(HEIGHT - BOTTOM - usable * part / parts, label(top * part / parts))
                 for part in range(parts + 1))


def _hour_label(start: float, hour: int, zone: ZoneInfo) -> str:
    return clock(start + hour * 3600, zone) + "-" + clock(start + (hour + 1) * 3600, zone)


def outcome_chart(counts: Mapping[int, Mapping[str, int]], *, start: float, zone: ZoneInfo) -> Chart:
    """Stacked bars: runs per hour by outcome."""
    per_hour: dict[int, dict[str, int]] = {}
    for hour, states in counts.items():
        slot = per_hour.setdefault(min(max(hour, 0), HOURS - 1), {})
        for state, runs in states.items():
            key = "running" if state in ("queued", "inprogress") else state
            slot[key] = slot.get(key, 0) + runs
    total = sum(sum(states.values()) for states in per_hour.values())
    # At least 5, so that the steps of a count axis are whole numbers.
    top = nice_ceiling(max(5, max((sum(s.values()) for s in per_hour.values()), default=0)))
    scale = (HEIGHT - BOTTOM - TOP) / top
    bars = []
    for hour, states in sorted(per_hour.items()):
        x, width = _slot(hour)
        y = float(HEIGHT - BOTTOM)
        for state, _ in OUTCOMES:
            runs = states.get(state, 0)
            if runs:
                height = runs * scale
                y -= height
                bars.append(Bar(x, y, width, height, f"s-{state}",
                                f"{_hour_label(start, hour, zone)}: {runs} {state}"))
    by_state = {state: sum(s.get(state, 0) for s in per_hour.values()) for state, _ in OUTCOMES}
    summary = ", ".join(f"{runs} {state}" for state, runs in by_state.items() if runs) or "no runs"
    return Chart(
        title="Runs per hour by outcome, last 24 hours",
        summary=f"{runs_text(total)} in the last 24 hours: {summary}.",
        bars=tuple(bars), x_ticks=_x_ticks(start, zone),
        y_ticks=_y_ticks(top, lambda v: f"{v:.0f}"),
        legend=tuple((f"s-{state}", label) for state, label in OUTCOMES))


def delay_chart(delays: Sequence[HourDelay], *, start: float, zone: ZoneInfo) -> Chart:
    """Per hour, the worst start delay of scheduled runs as a bar and the mean as a mark."""
    top = nice_ceiling(max((d.worst for d in delays), default=0.0))
    scale = (HEIGHT - BOTTOM - TOP) / top
    bars = []
    for d in sorted(delays, key=lambda d: d.hour):
        hour = min(max(d.hour, 0), HOURS - 1)
        x, width = _slot(hour)
        label = _hour_label(start, hour, zone)
        bars.append(Bar(x, HEIGHT - BOTTOM - d.worst * scale, width, d.worst * scale, "delay-worst",
                        f"{label}: worst {format_seconds(d.worst)} over {runs_text(d.runs)}"))
        mark = HEIGHT - BOTTOM - d.mean * scale
        bars.append(Bar(x, mark - 1, width, 2, "delay-mean", f"{label}: mean {format_seconds(d.mean)}"))
    runs = sum(d.runs for d in delays)
    if runs:
        mean = sum(d.mean * d.runs for d in delays) / runs
        worst = max(d.worst for d in delays)
        summary = (f"{runs_text(runs, 'scheduled runs')} started in the last 24 hours; start delay mean "
                   f"{format_seconds(mean)}, worst {format_seconds(worst)}.")
    else:
        summary = "No scheduled run started in the last 24 hours."
    return Chart(
        title="Start delay of scheduled runs (start minus due time), last 24 hours",
        summary=summary, bars=tuple(bars), x_ticks=_x_ticks(start, zone),
        y_ticks=_y_ticks(top, format_seconds),
        legend=(("delay-worst", "worst in the hour"), ("delay-mean", "mean")))
