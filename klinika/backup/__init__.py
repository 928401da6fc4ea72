"""Backups, restore, retention and the integrity check (fsck) of one installation.

Owns :func:`create_backup`, :func:`verify_backup`, :func:`restore_backup`, :func:`prune`,
:func:`fsck`, :func:`audit_anchors` (the audit heads manifests recorded) and the scheduler
``klinika serve`` runs (:func:`start_backup_scheduler`).
May import: storage, index, archive (fsck re-indexes orphans through the one ingest path),
audit, db, config, errors.

A destination folder holds a shared, content-addressed blob store (``blobs/ab/cd/<sha256>``,
the archive's own layout) and one folder per backup with a consistent dump of the index and a
manifest. Since blobs are named by their checksum, a new backup copies only the blobs the
folder lacks, and each backup is complete on its own through its manifest. Files under a
destination are read as untrusted input (keys are checked before they become paths).
"""

from klinika.backup.anchors import audit_anchors
from klinika.backup.fsck import FsckReport, fsck
from klinika.backup.manifest import BackupError, Manifest, read_manifest
from klinika.backup.retention import Retention, backups_in, prune
from klinika.backup.schedule import BackupScheduler, start_backup_scheduler
from klinika.backup.snapshot import create_backup, restore_backup, verify_backup

__all__ = [
    "BackupError",
    "BackupScheduler",
    "FsckReport",
    "Manifest",
    "Retention",
    "audit_anchors",
    "backups_in",
    "create_backup",
    "fsck",
    "prune",
    "read_manifest",
    "restore_backup",
    "start_backup_scheduler",
    "verify_backup",
]
