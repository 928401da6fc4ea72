"""Scheduled backups run once across nodes that share one PostgreSQL index."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from klinika.backup.schedule import BACKUP_LOCK_KEY, run_scheduled_backup
from klinika.config import load_settings
from klinika.runtime import Runtime


def backups(destination: Path) -> list[Path]:
    return sorted(destination.glob("2*/manifest.json"))


def test_a_node_skips_while_another_holds_the_lock_or_has_just_backed_up(
    postgres_database: str, tmp_path: Path
) -> None:
    destination = tmp_path / "backups"
    settings = load_settings(
        env={},
        data_dir=tmp_path / "node",
        database_url=postgres_database,
        backup_dir=destination,
        backup_interval_minutes=60,
    )
    with Runtime(settings) as runtime:
        other_node = sa.create_engine(postgres_database)
        with other_node.connect() as connection:  # another node is backing up right now
            connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": BACKUP_LOCK_KEY})
            assert run_scheduled_backup(settings, runtime.audit) is False
            assert backups(destination) == []
            connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": BACKUP_LOCK_KEY})
        other_node.dispose()
        assert run_scheduled_backup(settings, runtime.audit) is True
        assert len(backups(destination)) == 1
        # a second node whose timer fires now finds this round's backup and skips
        assert run_scheduled_backup(settings, runtime.audit) is False
        assert len(backups(destination)) == 1
