"""Database engines, the shared ``metadata`` object and migrations.

Owns :class:`Database` (how we connect to SQLite or PostgreSQL) and the Alembic migrations.
May import: config. Tables are declared by the rooms that own them (``index.schema``) on
:data:`metadata`.
"""

from klinika.db.engine import Database, OverBudget, metadata

__all__ = ["Database", "OverBudget", "metadata"]
