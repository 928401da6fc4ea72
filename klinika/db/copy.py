"""Copying an installation's database to another one (SQLite → PostgreSQL), table by table."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from klinika.db.engine import Database, metadata

BATCH = 500
#: Tables the migrations seed with a row of their own (the audit chain's head).
SEEDED = frozenset({"audit_chain"})


def copy_database(
    source: Database, target: Database, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copy every table declared on :data:`metadata` from ``source`` into an empty ``target``
    (migrated to the newest schema first), in foreign-key order, keeping primary keys, and
    move PostgreSQL's sequences past them. Returns the rows copied per table.

    Raises
    ------
    ValueError
        When the target already holds rows (nothing is copied then).
    """
    target.upgrade()
    tables = metadata.sorted_tables
    with target.reader.connect() as connection:
        for table in tables:
            if table.name in SEEDED:
                continue
            if connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
                raise ValueError(f"the target database is not empty (table {table.name})")
    copied: dict[str, int] = {}
    with source.reader.connect() as reader, target.writer.begin() as writer:
        for table in tables:
            if table.name in SEEDED:
                writer.execute(sa.delete(table))
            result = reader.execution_options(yield_per=BATCH).execute(sa.select(table))
            count = 0
            for rows in result.partitions(BATCH):
                writer.execute(sa.insert(table), [dict(row._mapping) for row in rows])
                count += len(rows)
                if progress:
                    progress(table.name, len(rows))
            copied[table.name] = count
        if target.dialect == "postgresql":
            for table in tables:
                pk = list(table.primary_key.columns)
                if len(pk) == 1 and isinstance(pk[0].type, sa.Integer) and pk[0].autoincrement:
                    highest = writer.execute(sa.select(sa.func.max(pk[0]))).scalar() or 0
                    writer.execute(
                        sa.text("SELECT setval(pg_get_serial_sequence(:t, :c), :v, false)"),
                        {"t": table.name, "c": pk[0].name, "v": highest + 1},
                    )
    return copied
