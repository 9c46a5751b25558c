"""Public ids of schedules and runs: unguessable, and in creation order.

An id has UUID version 4's layout (the version and variant bits of RFC 9562) and 122 free
bits: the first 48 are the creation time in milliseconds, the other 74 are random. 74
random bits cannot be guessed or enumerated (2^74 tries per millisecond of creation), and
the creation time they give away is already public (every schedule and run shows it). The
time first puts each new id at the end of the `uid` indexes, in pages already in memory,
instead of on a random page of a large index, as fully random ids do.
"""

from __future__ import annotations

import os
import time

_TIME_BITS = 48
_TIME_MASK = (1 << _TIME_BITS) - 1


def new_uid(at: float | None = None) -> str:
    """A new public id, created at `at` (default: now)."""
    ms = int((time.time() if at is None else at) * 1000) & _TIME_MASK
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 used
    value = (
        (ms << 80)
        | (0x4 << 76)  # version 4
        | (((rand >> 62) & 0xFFF) << 64)
        | (0b10 << 62)  # variant RFC 9562
        | (rand & ((1 << 62) - 1))
    )
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
