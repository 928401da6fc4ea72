"""Which backups to keep (daily / weekly / monthly), and pruning what no kept backup needs."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from klinika.backup.manifest import (
    MANIFEST,
    PARTIAL_PREFIX,
    STAMP_FORMAT,
    destination_lock,
    read_manifest,
)
from klinika.storage.files import ZSTD_SUFFIX


@dataclass(frozen=True)
class Retention:
    """Keep the newest backup of each of the last ``hourly`` hours, ``daily`` days, ``weekly``
    ISO weeks and ``monthly`` months that have a backup. Each rule counts its periods on its
    own, newest first (as restic's ``--keep-daily/weekly/monthly``), so this week counts as
    one of the weeks even when its backup is kept as a daily already."""

    daily: int = 7
    weekly: int = 4
    monthly: int = 12
    hourly: int = 0  # points in time to go back to within a day (0: the newest of the day)


def _when(backup: Path) -> dt.datetime:
    return dt.datetime.strptime(backup.name, STAMP_FORMAT).replace(tzinfo=dt.UTC)


def backups_in(destination: Path) -> list[Path]:
    """The backups in a destination folder, newest first."""
    if not destination.is_dir():
        return []
    found = [
        p for p in destination.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=_when, reverse=True)


def to_keep(backups: list[Path], policy: Retention) -> set[Path]:
    """The newest backup is always kept; then the newest of each period, per the policy."""
    kept: set[Path] = set(backups[:1])
    for limit, period in (
        (policy.hourly, lambda t: (t.date(), t.hour)),
        (policy.daily, lambda t: t.date()),
        (policy.weekly, lambda t: t.isocalendar()[:2]),
        (policy.monthly, lambda t: (t.year, t.month)),
    ):
        seen: list[object] = []
        for backup in backups:  # newest first: the first of each period is its newest
            key = period(_when(backup))
            if key not in seen and len(seen) < limit:
                seen.append(key)
                kept.add(backup)
    return kept


def prune(destination: Path, policy: Retention) -> tuple[list[Path], int]:
    """Delete the backups the policy does not keep and leftovers of interrupted backups,
    then the blobs no kept manifest references. Returns (deleted backups, deleted blobs).

    Raises
    ------
    BackupError
        When a backup runs into the destination right now, or a kept manifest is unreadable
        (then nothing is deleted: the blobs it needs are unknown).
    """
    with destination_lock(destination):
        backups = backups_in(destination)
        kept = to_keep(backups, policy)
        referenced = {key for b in kept for key, _size in read_manifest(b).blobs}
        deleted = [b for b in backups if b not in kept]
        for backup in deleted:
            shutil.rmtree(backup)
        for partial in destination.glob(PARTIAL_PREFIX + "*"):  # we hold the lock: stale
            shutil.rmtree(partial, ignore_errors=True)
        removed = 0
        for blob in (destination / "blobs").glob("??/??/*"):
            if blob.name.removesuffix(ZSTD_SUFFIX) not in referenced:
                blob.unlink()
                removed += 1
    return deleted, removed


def latest_backup_time(destination: Path) -> dt.datetime | None:
    """When the newest complete backup in ``destination`` was taken (None when none is)."""
    backups = backups_in(destination)
    return _when(backups[0]) if backups else None
