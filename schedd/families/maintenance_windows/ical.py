"""iCalendar (RFC 5545) of maintenance windows: one event per window, lines escaped and folded.

Used by the API's calendar of one window and by the public status page's feed, which
writes a calendar piece by piece (`CALENDAR_HEAD`, `calendar_events`, `CALENDAR_TAIL`).
"""

from __future__ import annotations

from schedd.store.windows import Window
from schedd.timefmt import utc_compact


def _ics_text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))




def _fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next line after a space, never mid-character."""
    out, current, size = [], "", 0
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > 75:
            out.append(current)
            current, size = " ", 1
        current += char
        size += width
    out.append(current)
    return "\r\n".join(out)


CALENDAR_HEAD = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//schedd//maintenance windows//EN",
                 "CALSCALE:GREGORIAN", "METHOD:PUBLISH"]
CALENDAR_TAIL = ["END:VCALENDAR"]


def calendar_lines(lines: list[str]) -> str:
    return "".join(_fold(line) + "\r\n" for line in lines)


def calendar_events(windows: list[Window], *, at: float, host: str) -> str:
    """The VEVENTs of `windows`, folded: the middle of a calendar, which a feed writes piece by piece."""
    lines = []
    for window in windows:
        lines += [
            "BEGIN:VEVENT",
            f"UID:maintenance-{window.id}@{_ics_text(host)}",
            f"DTSTAMP:{utc_compact(at)}",
            f"DTSTART:{utc_compact(window.scheduled_start_date)}",
            f"DTEND:{utc_compact(window.scheduled_end_date)}",
            f"SUMMARY:{_ics_text(window.name)}",
            f"STATUS:{'CANCELLED' if window.status == 'canceled' else 'CONFIRMED'}",
        ]
        if window.description:
            lines.append(f"DESCRIPTION:{_ics_text(window.description)}")
        if window.external_link:
            lines.append(f"URL:{window.external_link}")
        lines.append("END:VEVENT")
    return calendar_lines(lines)


def calendar(windows: list[Window], *, at: float, host: str) -> str:
    return calendar_lines(CALENDAR_HEAD) + calendar_events(windows, at=at, host=host) + calendar_lines(CALENDAR_TAIL)
