"""Which store a `--db` / `[database]` target names: a postgresql:// URL is a server, anything else a SQLite file."""

from __future__ import annotations

from collections.abc import Callable

from schedd.config import DatabaseConfig, is_server_url
from schedd.errors import ScheddError
from schedd.store.protocol import Store
from schedd.store.sqlite import SqliteStore


def make_store(
    target: str, database: DatabaseConfig, *, on_commit: Callable[[int, float], None] | None = None
) -> Store:
    """The store at `target`, not yet open."""
    if is_server_url(target):
        try:
            from schedd.store.postgres import PgStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ScheddError(
                f"a postgresql:// database needs asyncpg: pip install 'schedd[postgres]' ({exc})") from exc
        return PgStore.from_url(target, database)
    return SqliteStore.at(target, database.synchronous, on_commit=on_commit)
