"""Reconciling the index with the blobs on disk."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from klinika.archive import Archive
from klinika.index import schema
from klinika.storage import FileStore


@dataclass
class FsckReport:
    """What does not add up. Empty lists mean the archive is whole."""

    missing: list[str] = field(default_factory=list)  # indexed, blob absent (SOP UIDs)
    corrupt: list[str] = field(default_factory=list)  # blob bytes do not match their key
    orphans: list[str] = field(default_factory=list)  # blob on disk, not indexed (keys)
    stale_counts: list[str] = field(default_factory=list)  # series whose counts are wrong
    repaired: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.corrupt or self.orphans or self.stale_counts)


def fsck(
    archive: Archive,
    *,
    repair: bool = False,
    delete_orphans: bool = False,
    progress: Callable[[int], None] | None = None,
) -> FsckReport:
    """Check every indexed instance against its blob (presence and SHA-256), find blobs the
    index does not know, and series whose instance counts are stale.

    With ``repair``, orphans go through the one ingest path (``Archive.store_many``) and counts
    are recomputed; nothing is deleted unless ``delete_orphans`` (for orphans that cannot be
    indexed).
    """
    report = FsckReport()
    instances, series = schema.instances, schema.series
    with archive.database.reader.connect() as connection:
        rows = connection.execute(
            sa.select(instances.c.sop_instance_uid, instances.c.blob_key)
        ).all()
        counts = connection.execute(
            sa.select(
                series.c.series_instance_uid,
                series.c.number_of_series_related_instances,
                sa.select(sa.func.count())
                .where(instances.c.series_pk == series.c.pk)
                .scalar_subquery(),
            )
        ).all()
    indexed = set()
    for sop_uid, key in rows:
        indexed.add(key)
        if not archive.blobs.exists(key):
            report.missing.append(sop_uid)
        elif _sha256(archive.blobs, key) != key:
            report.corrupt.append(sop_uid)
        if progress:
            progress(1)
    report.orphans = sorted(set(archive.blobs.blob_keys()) - indexed)
    report.stale_counts = [uid for uid, stored, actual in counts if stored != actual]
    if repair:
        _repair(archive, report, delete_orphans)
    return report


def _repair(archive: Archive, report: FsckReport, delete_orphans: bool) -> None:
    for key in report.orphans:
        outcome = archive.store(archive.blobs.read(key))
        if outcome.accepted:
            report.repaired.append(f"re-indexed orphan {key} as {outcome.sop_instance_uid}")
        elif delete_orphans:
            archive.blobs.delete(key)
            report.deleted.append(key)
    if report.stale_counts:
        archive.refresh_counts()
        report.repaired.extend(f"recounted series {uid}" for uid in report.stale_counts)


def _sha256(blobs: FileStore, key: str) -> str:
    """Checksum of a blob's original bytes (decompressed when stored compressed)."""
    try:
        with blobs.open(key) as handle:
            digest = hashlib.sha256()
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
            return digest.hexdigest()
    except Exception:  # unreadable or undecompressable: damaged
        return ""
