"""The backup promise: backups on a schedule inside ``klinika serve`` (hourly by default when a
destination is set: RPO <= 1 h), the newest backup verified every ``backup_verify_days`` (30),
the audit chain checked daily, and the status readiness, metrics and the admin page report.

The scheduler runs in the one process that owns the schedule (``klinika serve``, the parent of
the workers). ``backup_interval_minutes`` 0 keeps the checks and the monitoring but leaves the
backups to an outside timer (``deploy/backup/``).

Several nodes on one PostgreSQL index may all have the scheduler on: a session advisory lock
lets one of them back up at a time, and a node that gets the lock after another one's backup
finds it recent and skips, so a schedule runs once across nodes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from klinika.audit import Actor, AuditFilter, AuditTrail, Outcome
from klinika.backup.manifest import Manifest
from klinika.backup.retention import Retention, backups_in, latest_backup_time, prune
from klinika.backup.snapshot import create_backup, verify_backup
from klinika.config import Settings
from klinika.db import Database
from klinika.storage import open_blob_store

log = logging.getLogger(__name__)

#: The advisory lock key of scheduled backups ("KLBK"), shared by every node of an index.
BACKUP_LOCK_KEY = 0x4B4C424B
#: The audit actions of the checks; the newest event of each is the check's last result.
VERIFY_ACTION = "backup:verify"
CHAIN_ACTION = "audit:verify"
DRILL_ACTION = "backup:drill"
CHAIN_CHECK_SECONDS = 86400.0
_IDLE_TICK_SECONDS = 3600.0  # how often the checks run when the backups are made elsewhere


@dataclass(frozen=True)
class BackupStatus:
    """Where the promise stands: is a destination configured, when was the newest complete
    backup taken, and is it older than the RPO."""

    configured: bool
    destination: Path | None
    last: dt.datetime | None
    rpo_seconds: float
    now: dt.datetime

    @property
    def age_seconds(self) -> float | None:
        return None if self.last is None else (self.now - self.last).total_seconds()

    @property
    def stale(self) -> bool:
        """Configured, and no backup yet or the newest one older than the RPO."""
        age = self.age_seconds
        return self.configured and (age is None or age > self.rpo_seconds)

    def describe(self) -> str:
        """``ok``, ``not configured`` or ``stale: …`` (what readiness reports)."""
        if not self.configured:
            return "not configured"
        age = self.age_seconds
        rpo = f"RPO {_duration(self.rpo_seconds)}"
        if age is None:
            return f"stale: no backup in {self.destination} yet ({rpo})"
        if age > self.rpo_seconds:
            return f"stale: the newest backup is {_duration(age)} old ({rpo})"
        return "ok"


def _duration(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def backup_status(settings: Settings, now: dt.datetime | None = None) -> BackupStatus:
    """The status of the backups into ``settings.backup_dir`` (not configured without one).
    Reads the destination's folder names only; an unmounted share reads as no backup."""
    now = now or dt.datetime.now(dt.UTC)
    destination = settings.backup_dir
    last = latest_backup_time(destination) if destination is not None else None
    return BackupStatus(
        destination is not None, destination, last, settings.backup_rpo_minutes * 60, now
    )


def last_check(
    audit: AuditTrail, action: str
) -> tuple[dt.datetime, bool, dict[str, object]] | None:
    """When the newest ``action`` event (a check) was recorded, whether it succeeded, and its
    details; None when the check never ran."""
    events, _total = audit.search(AuditFilter(action=action), limit=1)
    if not events:
        return None
    event = events[0].as_dict()
    when = dt.datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
    return when, event["outcome"] == Outcome.SUCCESS, event["details"]


def _due(audit: AuditTrail, action: str, every_seconds: float, now: dt.datetime) -> bool:
    last = last_check(audit, action)
    return last is None or (now - last[0]).total_seconds() >= every_seconds


def run_checks(settings: Settings, audit: AuditTrail, now: dt.datetime | None = None) -> None:
    """The checks that are due: verify the newest backup every ``backup_verify_days`` (every
    checksum, read-only) and the audit chain every day; each records its result."""
    now = now or dt.datetime.now(dt.UTC)
    if settings.backup_dir is not None and _due(
        audit, VERIFY_ACTION, settings.backup_verify_days * 86400, now
    ):
        newest = backups_in(settings.backup_dir)
        if newest:
            problems = verify_backup(newest[0])
            audit.record(
                Actor.system(),
                VERIFY_ACTION,
                Outcome.FAILURE if problems else Outcome.SUCCESS,
                details={"backup": str(newest[0]), "problems": problems[:10], "scheduled": True},
            )
            if problems:
                log.error("backup %s is not whole: %s", newest[0], problems[0])
    if _due(audit, CHAIN_ACTION, CHAIN_CHECK_SECONDS, now):
        chain = audit.verify()
        audit.record(
            Actor.system(),
            CHAIN_ACTION,
            Outcome.SUCCESS if chain.ok else Outcome.FAILURE,
            details={"checked": chain.checked, "problem": chain.problem, "scheduled": True},
        )
        if not chain.ok:
            log.error("the audit chain does not verify: %s", chain.problem)


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
    another node is backing up or has just done so. True when this node backed up and the
    backup is complete without problems."""
    assert settings.backup_dir is not None
    with _one_node(audit.database) as mine:
        if not mine or _recent(settings):
            log.info("scheduled backup skipped: another node runs or ran it")
            return False
        return _backup_and_prune(settings, audit)


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


def _backup_and_prune(settings: Settings, audit: AuditTrail) -> bool:
    assert settings.backup_dir is not None
    store = open_blob_store(settings)
    try:
        folder, manifest = create_backup(settings.database_url, store, settings.backup_dir)
        audit.record(
            Actor.system(),
            "backup:create",
            Outcome.FAILURE if manifest.problems else Outcome.SUCCESS,
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
                Outcome.SUCCESS,
                details={"deleted": [b.name for b in deleted], "blobs": blobs},
            )
    except Exception as exc:  # a failed backup must not stop the server, but must be seen
        log.exception("scheduled backup failed")
        audit.record(Actor.system(), "backup:create", Outcome.FAILURE, details={"error": str(exc)})
        return False
    finally:
        store.close()
    log.info(
        "backup %s: %d blob(s) copied, %.1f MB, %.1f s",
        folder.name,
        manifest.copied_blobs,
        manifest.copied_bytes / 1e6,
        manifest.seconds,
    )
    return not manifest.problems


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


def start_backup_scheduler(
    settings: Settings, audit: AuditTrail, on_backup: Callable[[bool], None] | None = None
) -> BackupScheduler | None:
    """Back up every ``backup_interval_minutes`` into ``backup_dir`` (None when not set), then
    run the checks that are due. ``on_backup(ok)`` is told each backup's result (metrics)."""
    if settings.backup_dir is None:
        return None
    stopped = threading.Event()
    interval = settings.backup_interval_minutes * 60

    def loop() -> None:
        wait = _first_wait(settings, interval) if interval > 0 else 0.0
        while not stopped.wait(wait):
            if interval > 0:
                ok = run_scheduled_backup(settings, audit)
                if on_backup is not None:
                    on_backup(ok)
            try:
                run_checks(settings, audit)
            except Exception:  # a failed check must not stop the schedule
                log.exception("scheduled checks failed")
            wait = interval if interval > 0 else _IDLE_TICK_SECONDS

    thread = threading.Thread(target=loop, name="backup-scheduler", daemon=True)
    thread.start()
    log.info("backups every %s min into %s", settings.backup_interval_minutes, settings.backup_dir)
    return BackupScheduler(thread, stopped)
