"""The PostgreSQL store: `PgStore.at("postgresql://...")`, with its own migrations (needs `schedd[postgres]`)."""

from schedd.store.postgres.store import PgStore

__all__ = ["PgStore"]
