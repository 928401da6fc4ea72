"""Reconciling the index with the blobs in the store, files or S3 (``klinika fsck``).

It lives in ``backup`` because a restore is only done when fsck says the result is whole, and
both need the same blob-by-blob view of an installation; a separate ``integrity`` room would
hold one module and import everything this room does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from klinika.archive import Archive, StoreStatus
from klinika.backup.manifest import Progress
from klinika.errors import StorageUnavailable
from klinika.index import schema
from klinika.storage import BlobStore

REPAIR_BATCH = 50


@dataclass
class FsckReport:
    """What does not add up. Empty problem lists mean the archive is whole."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)  # indexed, blob absent (SOP UIDs)
    corrupt: list[str] = field(default_factory=list)  # blob bytes do not match their key
    orphans: list[str] = field(default_factory=list)  # blob on disk, not indexed (keys)
    stale_counts: list[str] = field(default_factory=list)  # series/studies with wrong counts
    repaired: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.corrupt or self.orphans or self.stale_counts)

    @property
    def whole_after_repair(self) -> bool:
        """Nothing is left that a repair cannot fix (missing or corrupt blobs need a restore)."""
        return not (self.missing or self.corrupt)


def fsck(
    archive: Archive,
    *,
    repair: bool = False,
    delete_orphans: bool = False,
    progress: Progress | None = None,
) -> FsckReport:
    """Check every indexed instance against its blob (presence and SHA-256), find blobs the
    index does not know, and series and studies whose stored counts are stale (their
    ``metadata_version`` is bumped by the recount, so cached metadata documents are rebuilt).

    With ``repair``, orphans go through the one ingest path (``Archive.store_many``) and
    counts are recomputed. Nothing is deleted unless ``delete_orphans``, and then only orphans
    that could not be indexed and that the index still does not reference.
    """
    report = FsckReport()
    on_disk = set(archive.blobs.blob_keys())  # listed first: a blob committed meanwhile is
    with archive.database.reader.connect() as connection:  # then found in the index
        rows = connection.execute(
            sa.select(schema.instances.c.sop_instance_uid, schema.instances.c.blob_key)
        ).all()
        report.stale_counts = _stale_counts(connection)
    indexed = set()
    for sop_uid, key in rows:
        indexed.add(key)
        if key not in on_disk and not archive.blobs.exists(key):
            report.missing.append(sop_uid)
        elif _sha256(archive.blobs, key) != key:
            report.corrupt.append(sop_uid)
        report.checked += 1
        if progress:
            progress(1, len(rows))
    report.orphans = sorted(on_disk - indexed)
    if repair:
        _repair(archive, report, delete_orphans)
    return report


def _stale_counts(connection: sa.Connection) -> list[str]:
    instances, series, studies = schema.instances, schema.series, schema.studies
    per_series = (
        sa.select(sa.func.count()).where(instances.c.series_pk == series.c.pk).scalar_subquery()
    )
    stale = [
        f"series {uid}"
        for uid, stored, actual in connection.execute(
            sa.select(
                series.c.series_instance_uid,
                series.c.number_of_series_related_instances,
                per_series,
            )
        )
        if stored != actual
    ]
    series_count = (
        sa.select(sa.func.count()).where(series.c.study_pk == studies.c.pk).scalar_subquery()
    )
    instance_count = (
        sa.select(sa.func.count())
        .select_from(instances.join(series, instances.c.series_pk == series.c.pk))
        .where(series.c.study_pk == studies.c.pk)
        .scalar_subquery()
    )
    stale += [
        f"study {uid}"
        for uid, stored_series, stored_instances, actual_series, actual_instances in (
            connection.execute(
                sa.select(
                    studies.c.study_instance_uid,
                    studies.c.number_of_study_related_series,
                    studies.c.number_of_study_related_instances,
                    series_count,
                    instance_count,
                )
            )
        )
        if (stored_series, stored_instances) != (actual_series, actual_instances)
    ]
    return stale


def _repair(archive: Archive, report: FsckReport, delete_orphans: bool) -> None:
    unindexable: list[str] = []
    for batch in _batches(report.orphans, REPAIR_BATCH):
        intact = []
        for key in batch:
            if _sha256(archive.blobs, key) == key:
                intact.append(key)
            else:  # indexing it would store other bytes under another key
                unindexable.append(key)
                report.repaired.append(f"orphan {key} not indexed: its bytes do not match")
        outcomes = archive.store_many([archive.blobs.read(key) for key in intact])
        for key, outcome in zip(intact, outcomes, strict=True):
            if outcome.status in (StoreStatus.STORED, StoreStatus.REPLACED):
                report.repaired.append(f"re-indexed orphan {key} as {outcome.sop_instance_uid}")
            else:
                unindexable.append(key)
                report.repaired.append(
                    f"orphan {key} not indexed: {outcome.status} {outcome.reason or ''}".strip()
                )
    if report.stale_counts or report.repaired:
        archive.refresh_counts()
        report.repaired.extend(f"recounted {what}" for what in report.stale_counts)
    if delete_orphans and unindexable:
        referenced = _referenced(archive, unindexable)  # a write may have landed meanwhile
        for key in unindexable:
            if key not in referenced:
                archive.blobs.delete(key)
                report.deleted.append(key)


def _referenced(archive: Archive, keys: list[str]) -> set[str]:
    column = schema.instances.c.blob_key
    with archive.database.reader.connect() as connection:
        return set(connection.execute(sa.select(column).where(column.in_(keys))).scalars())


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sha256(blobs: BlobStore, key: str) -> str:
    """Checksum of a blob's original bytes (decompressed when stored compressed)."""
    try:
        digest = hashlib.sha256()
        for chunk in blobs.stream(key):
            digest.update(chunk)
        return digest.hexdigest()
    except StorageUnavailable:  # the store is down: that is not damage, and fsck must say so
        raise
    except Exception:  # unreadable or undecompressable: damaged
        return ""
