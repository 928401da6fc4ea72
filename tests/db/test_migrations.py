"""Migrations build exactly the schema the code declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import klinika.audit.schema  # registers its tables on metadata
import klinika.auth.schema
import klinika.dimse.schema
import klinika.index.labels
import klinika.index.schema
import klinika.reports.schema
import klinika.workflow.schema  # noqa: F401
from klinika.db import Database, metadata

ALEMBIC = "alembic_version"


def test_upgrade_head_on_an_empty_database_matches_the_declared_tables(
    tmp_path: Path, database_url: str
) -> None:
    database = Database(database_url or f"sqlite:///{tmp_path / 'empty.sqlite'}")
    database.upgrade()
    with database.writer.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = [
            d
            for d in compare_metadata(context, metadata)
            if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == ALEMBIC)
        ]
    assert differences == []
    database.dispose()


def test_upgrade_twice_is_harmless(tmp_path: Path, database_url: str) -> None:
    database = Database(database_url or f"sqlite:///{tmp_path / 'twice.sqlite'}")
    database.upgrade()
    database.upgrade()
    database.dispose()
