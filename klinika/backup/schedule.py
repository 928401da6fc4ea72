"""Backups on a schedule inside ``klinika serve`` (hourly by default when a destination is set)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from klinika.audit import Actor, AuditTrail
from klinika.backup.manifest import Manifest
from klinika.backup.retention import Retention, latest_backup_time, prune
from klinika.backup.snapshot import create_backup
from klinika.config import Settings
from klinika.storage import open_blob_store

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
