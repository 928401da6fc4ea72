"""Backups, restore and the integrity check (fsck) of one installation.

Owns :func:`create_backup`, :func:`verify_backup`, :func:`restore_backup` and :func:`fsck`.
May import: storage, index, archive, audit, db, config. A backup folder holds a shared,
content-addressed blob store (``blobs/ab/cd/<sha256>``, the same layout as the archive) and one
folder per backup with a consistent copy of the index and a manifest; since blobs are named by
their checksum, a new backup copies only the blobs the folder lacks, and each backup is complete
on its own through its manifest.
"""

from klinika.backup.fsck import FsckReport, fsck
from klinika.backup.snapshot import Manifest, create_backup, restore_backup, verify_backup

__all__ = ["FsckReport", "Manifest", "create_backup", "fsck", "restore_backup", "verify_backup"]
