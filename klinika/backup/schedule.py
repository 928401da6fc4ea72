"""Backups on a schedule inside ``klinika serve`` (hourly by default when a destination is set).

Several nodes on one PostgreSQL index may all have the scheduler on: a session advisory lock
lets one of them back up at a time, and a node that gets the lock after another one's backup
finds it recent and skips, so a schedule runs once across nodes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from klinika.audit import Actor, AuditTrail
from klinika.backup.manifest import Manifest
from klinika.backup.retention import Retention, latest_backup_time, prune
from klinika.backup.snapshot import create_backup
from klinika.config import Settings
from klinika.db import Database
from klinika.storage import open_blob_store

log = logging.getLogger(__name__)

#: The advisory lock key of scheduled backups ("KLBK"), shared by every node of an index.
BACKUP_LOCK_KEY = 0x4B4C424B


@dataclass
class BackupScheduler:
    """A background thread; ``stop()`` ends it after the backup in progress, if any."""

    thread: threading.Thread
    stopped: threading.Event

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=600)


def run_scheduled_backup(settings: Settings, audit: AuditTrail) -> bool:
    """One incremental backup, its audit event, then pruning by the retention policy; unless
    another node is backing up or has just done so. Returns whether this node backed up."""
    assert settings.backup_dir is not None
    with _one_node(audit.database) as mine:
        if not mine or _recent(settings):
            log.info("scheduled backup skipped: another node runs or ran it")
            return False
        _backup_and_prune(settings, audit)
        return True


@contextlib.contextmanager
def _one_node(database: Database) -> Iterator[bool]:
    """Whether this node holds the backup lock: a PostgreSQL session advisory lock (nodes
    share one index); on SQLite there is one machine and the destination's file lock."""
    if database.dialect != "postgresql":
        yield True
        return
    with database.writer.connect() as connection:
        key = {"key": BACKUP_LOCK_KEY}
        held = bool(connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), key).scalar())
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)
                connection.commit()


def _recent(settings: Settings) -> bool:
    """A backup newer than half the interval exists (another node's, this round)."""
    assert settings.backup_dir is not None
    latest = latest_backup_time(settings.backup_dir)
    if latest is None:
        return False
    age = (dt.datetime.now(dt.UTC) - latest).total_seconds()
    return age < settings.backup_interval_minutes * 30


def _backup_and_prune(settings: Settings, audit: AuditTrail) -> None:
    assert settings.backup_dir is not None
    store = open_blob_store(settings)
    try:
        folder, manifest = create_backup(settings.database_url, store, settings.backup_dir)
        audit.record(
            Actor.system(),
            "backup:create",
            "failure" if manifest.problems else "success",
            details=backup_details(folder, manifest) | {"scheduled": True},
        )
        deleted, blobs = prune(
            settings.backup_dir,
            Retention(
                settings.backup_keep_daily,
                settings.backup_keep_weekly,
                settings.backup_keep_monthly,
            ),
        )
        if deleted:
            audit.record(
                Actor.system(),
                "backup:prune",
                "success",
                details={"deleted": [b.name for b in deleted], "blobs": blobs},
            )
    except Exception as exc:  # a failed backup must not stop the server, but must be seen
        log.exception("scheduled backup failed")
        audit.record(Actor.system(), "backup:create", "failure", details={"error": str(exc)})
    finally:
        store.close()


def backup_details(folder: Path, manifest: Manifest) -> dict[str, object]:
    """The audit event's details of one backup."""
    return {
        "backup": str(folder),
        "full": manifest.full,
        "blobs": len(manifest.blobs),
        "copied": manifest.copied_blobs,
        "copied_bytes": manifest.copied_bytes,
        "instances": manifest.counts.get("instances", 0),
        "problems": manifest.problems[:10],
    }


def _first_wait(settings: Settings, interval: float) -> float:
    """Seconds until the first backup: the interval after the newest one in the destination,
    so a restarted server neither skips its schedule nor backs up twice in a row."""
    assert settings.backup_dir is not None
    latest = latest_backup_time(settings.backup_dir)
    if latest is None:
        return 0.0
    age = (dt.datetime.now(dt.UTC) - latest).total_seconds()
    return max(0.0, interval - age)


def start_backup_scheduler(settings: Settings, audit: AuditTrail) -> BackupScheduler | None:
    """Back up every ``backup_interval_minutes`` into ``backup_dir`` (None when not set)."""
    if settings.backup_dir is None:
        return None
    stopped = threading.Event()
    interval = settings.backup_interval_minutes * 60

    def loop() -> None:
        wait = _first_wait(settings, interval)
        while not stopped.wait(wait):
            run_scheduled_backup(settings, audit)
            wait = interval

    thread = threading.Thread(target=loop, name="backup-scheduler", daemon=True)
    thread.start()
    log.info("backups every %s min into %s", settings.backup_interval_minutes, settings.backup_dir)
    return BackupScheduler(thread, stopped)
