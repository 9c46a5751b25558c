"""Scope grants: a user granted a scope writes the maintenance windows of its services.

Scopes are declared in the config (`[scopes.NAME] id = N`); a grant keeps the scope's id,
which is what windows carry. Admins need no grant. Grants are read on every request, so a
grant or a revoke counts at the next request, with no restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from schedd.config import Config
from schedd.errors import ValidationError
from schedd.store.protocol import Store

ID_DIGITS = 18


@dataclass(frozen=True, slots=True)
class Scope:
    id: int
    name: str | None  # None: an id the config does not declare (any more)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})" if self.name else f"({self.id})"


def resolve(config: Config, text: str, *, declared: bool = True) -> Scope:
    """The scope `text` names, by its config name or its id.

    With `declared=False` an id the config no longer declares is accepted too, so a grant
    of a scope that was removed from the config can still be revoked.
    """
    scope = config.scopes.get(text)
    if scope is not None:
        return Scope(scope.id, scope.name)
    if text.isascii() and text.isdigit() and len(text) <= ID_DIGITS:
        ident = int(text)
        by_id = next((s for s in config.scopes.values() if s.id == ident), None)
        if by_id is not None:
            return Scope(by_id.id, by_id.name)
        if not declared:
            return Scope(ident, None)
    known = ", ".join(f"{s.name} ({s.id})" for s in sorted(config.scopes.values(), key=lambda s: s.id))
    raise ValidationError("--scope", f"no scope {text!r} in the config (declared: {known or 'none'})")


def describe(config: Config, scope_ids: frozenset[int]) -> str:
    """`platform (1), edge (2)`: granted scopes by name where the config still declares them."""
    names = {s.id: s.name for s in config.scopes.values()}
    return ", ".join(str(Scope(i, names.get(i))) for i in sorted(scope_ids)) or "none"


async def grant(store: Store, username: str, scope: Scope, *, at: float) -> frozenset[int]:
    """Grant `scope` to the user (NotFound if unknown); the user's scopes after it."""
    user = await store.accounts.get_user(username)
    await store.grants.grant(user.id, scope.id, at=at)
    return await store.grants.scopes_of(user.id)


async def revoke(store: Store, username: str, scope: Scope) -> tuple[bool, frozenset[int]]:
    """Take `scope` back (NotFound if the user is unknown): whether it was granted, and the scopes left."""
    user = await store.accounts.get_user(username)
    removed = await store.grants.revoke(user.id, scope.id)
    return removed, await store.grants.scopes_of(user.id)
