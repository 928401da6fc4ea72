"""Migration 0003 builds exactly the report tables the code declares (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import klinika.audit.schema
import klinika.auth.schema
import klinika.index.schema
import klinika.reports.schema  # noqa: F401  (registers the tables on metadata)
from klinika.db import Database, metadata


def test_upgrade_head_creates_the_declared_report_tables(tmp_path: Path, database_url: str) -> None:
    database = Database(database_url or f"sqlite:///{tmp_path / 'empty.sqlite'}")
    database.upgrade()
    with database.writer.connect() as connection:
        differences = [
            d
            for d in compare_metadata(MigrationContext.configure(connection), metadata)
            if not (
                isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version"
            )
        ]
        tables = set(connection.dialect.get_table_names(connection))
    assert {"reports", "report_versions"} <= tables
    assert differences == []
    database.dispose()
