"""The PostgreSQL store: `PgStore.at("postgresql://...")`, with its own migrations (needs `schedd[postgres]`)."""
