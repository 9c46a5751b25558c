"""The one exception hierarchy of schedd; the API maps each class to a status once."""

from __future__ import annotations


class ScheddError(Exception):
    """schedd could not do what was asked."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ValidationError(ScheddError, ValueError):
    """A value was rejected; `field` names it and `reason` says why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")

    def under(self, field: str) -> ValidationError:
        """The same error reported under an outer field name (`time_expression`)."""
        return ValidationError(field, str(self))


class NotFound(ScheddError, LookupError):
    """Nothing of that kind has that id (or the caller may not see it)."""

    def __init__(self, kind: str, ident: object) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident} not found")


class Conflict(ScheddError):
    """The request conflicts with the current state (a run already in progress)."""


class Unavailable(ScheddError):
    """The service cannot do this now (disabled executor, database not writable)."""


class Unauthorized(ScheddError):
    """Missing, invalid or expired credentials."""


class Forbidden(ScheddError):
    """The caller is known but may not do this (a maintenance window outside its grants)."""


class Throttled(ScheddError):
    """Too many attempts; retry later."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed attempts, retry in {retry_after} s")


class StoreError(ScheddError):
    """The database failed."""
