"""Values every layer checks alike, each declared here once: identifiers, the default org,
and the one-of choice.

Nothing of schedd is imported: the config, the input rule, the accounts, the API models
and the family services all read these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

IDENT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
"""An identifier (an org, project or cube id, a config section's NAME): 1-128 of A-Z a-z 0-9 . _ -,
the first a letter or digit."""
IDENT_RE = re.compile(IDENT_PATTERN)
IDENT_RULE = "1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit"

DEFAULT_ORG = "default"
"""The org that always exists (made at start-up and by `schedd init`)."""

T = TypeVar("T", bound=str)


class NotAChoice(ValueError):
    """A value that is none of the allowed ones; each caller words the message in its envelope."""

    def __init__(self, value: object, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{value!r} is not one of {', '.join(allowed)}")
        self.value = value
        self.allowed = allowed


def choice(value: object, allowed: Iterable[T], *, default: T | None = None, fold_case: bool = False) -> T | None:
    """`value` as the allowed spelling it matches; `default` when it is absent (None or "").

    With `fold_case`, the match ignores case and the allowed spelling is returned.
    Raises NotAChoice for anything else.
    """
    options = tuple(allowed)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        wanted = value.lower() if fold_case else value
        for option in options:
            if (option.lower() if fold_case else option) == wanted:
                return option
    raise NotAChoice(value, options)
