"""The one rule every input passes, whichever route or family it reaches.

Text is a string of Unicode scalar values (so it encodes to valid UTF-8: no lone surrogate
such as the `"\\ud800"` a JSON escape can make) without NUL. The rule is the same for every
string field, nested ones included: a job's `requestheaderMap` values, its `postData` and
the JSON text inside it, the keys of every object. Numbers sent as text are ASCII digits:
`str.isdigit()` also accepts '²' and '٣', which `int()` refuses or reads as 3.

The HTTP layer (schedd/http/common.py) applies this rule to every query string, form and
JSON body before a handler runs; the families apply it again to what they store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from schedd.errors import ValidationError

MAX_DIGITS = 18
"""Digits int() is given at most: a bigger number is out of every range schedd has."""
_FIELD_SHOWN = 64
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_UTF8 = "must be valid UTF-8 text (no lone surrogate such as \\ud800)"
_NUL = "must not contain NUL characters"


def text_fault(value: str) -> str | None:
    """Why `value` is not acceptable text, or None when it is."""
    if "\x00" in value:
        return _NUL
    if not value.isascii() and _SURROGATE.search(value):
        return _NOT_UTF8
    return None


def check_text(value: str, field: str) -> str:
    """`value` if it is acceptable text; else a ValidationError naming `field`."""
    fault = text_fault(value)
    if fault is not None:
        raise ValidationError(field, fault)
    return value


def check_tree(value: Any, field: str = "") -> None:
    """Every string in a decoded JSON document (keys too) is acceptable text.

    The first fault is raised under its path (`jobServiceInfo.requestheaderMap.X`); a key
    that is itself bad is reported under the object that holds it.
    """
    for path, key, text in _strings(value, field):
        fault = text_fault(text)
        if fault is not None:
            if key:
                raise ValidationError(path or "body", f"has a key that {fault}")
            raise ValidationError(path or "body", fault)


def _strings(value: Any, field: str) -> Iterator[tuple[str, bool, str]]:
    """(path, is_key, text) of every string in `value`, without recursion (depth is the parser's)."""
    stack: list[tuple[str, Any]] = [(field, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            yield path, False, item
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    yield path, True, key
                    stack.append((_join(path, key), child))
                else:
                    stack.append((path, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(item))


def _join(path: str, key: str) -> str:
    name = key if len(key) <= _FIELD_SHOWN and key.isprintable() else key[:_FIELD_SHOWN].encode(
        "ascii", "backslashreplace").decode("ascii")
    return f"{path}.{name}" if path else name


def parse_int(raw: str, field: str, low: int, high: int) -> int:
    """An integer written in ASCII digits within [low, high]; anything else is a ValidationError."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_DIGITS:
        raise ValidationError(field, f"must be an integer from {low} to {high} in ASCII digits")
    value = int(raw)
    if not low <= value <= high:
        raise ValidationError(field, f"{value} is out of range {low}-{high}")
    return value


def scrub(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD: what a page shows of a stored one."""
    return _SURROGATE.sub("\ufffd", text)
