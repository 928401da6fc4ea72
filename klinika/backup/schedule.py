"""Backups on a schedule inside ``klinika serve`` (hourly by default when a destination is set)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from klinika.audit import Actor, AuditTrail
from klinika.backup.retention import Retention, prune
from klinika.backup.snapshot import create_backup
from klinika.config import Settings

log = logging.getLogger(__name__)


@dataclass
class BackupScheduler:
    """A background thread; ``stop()`` ends it after the backup in progress, if any."""

    thread: threading.Thread
    stopped: threading.Event

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=600)


def run_scheduled_backup(settings: Settings, audit: AuditTrail) -> None:
    """One incremental backup, its audit event, then pruning by the retention policy."""
    assert settings.backup_dir is not None
    try:
        folder, manifest = create_backup(
            settings.database_url, settings.blob_dir, settings.backup_dir
        )
        audit.record(
            Actor.system(),
            "backup:create",
            "success",
            details={"backup": str(folder), "copied": manifest.copied_blobs, "scheduled": True},
        )
        prune(
            settings.backup_dir,
            Retention(
                settings.backup_keep_daily,
                settings.backup_keep_weekly,
                settings.backup_keep_monthly,
            ),
        )
    except Exception as exc:  # a failed backup must not stop the server, but must be seen
        log.exception("scheduled backup failed")
        audit.record(Actor.system(), "backup:create", "failure", details={"error": str(exc)})


def start_backup_scheduler(settings: Settings, audit: AuditTrail) -> BackupScheduler | None:
    """Back up every ``backup_interval_minutes`` into ``backup_dir`` (None when not set)."""
    if settings.backup_dir is None:
        return None
    stopped = threading.Event()
    interval = settings.backup_interval_minutes * 60

    def loop() -> None:
        while not stopped.wait(interval):
            run_scheduled_backup(settings, audit)

    thread = threading.Thread(target=loop, name="backup-scheduler", daemon=True)
    thread.start()
    log.info("backups every %s min into %s", settings.backup_interval_minutes, settings.backup_dir)
    return BackupScheduler(thread, stopped)
