"""The only package that speaks SQL: named statements in, frozen records out."""

from schedd.store.db import Database, backup, migrations

__all__ = ["Database", "backup", "migrations"]
