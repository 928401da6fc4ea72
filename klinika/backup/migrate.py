"""Moving an installation's blobs to another backend (``klinika storage migrate``).

It lives with fsck because both need the blob-by-blob view of an installation and its index:
every blob is copied, read back from the target and re-hashed (the key *is* its SHA-256),
and every instance the index holds must then be found in the target.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa

from klinika.archive import Archive
from klinika.backup.manifest import Progress
from klinika.errors import NotFound
from klinika.index import schema
from klinika.storage import BlobStore


@dataclass
class MigrationReport:
    """What a migration did. ``problems`` empty means the target holds the whole archive."""

    copied: int = 0
    copied_bytes: int = 0
    present: int = 0  # already in the target with the right checksum (a resumed migration)
    problems: list[str] = field(default_factory=list)


def migrate_blobs(
    archive: Archive, target: BlobStore, *, progress: Progress | None = None
) -> MigrationReport:
    """Copy every blob of ``archive.blobs`` into ``target`` and verify every checksum there.

    A blob whose bytes do not match its key in the source is not copied (it is reported; a
    restore from backup repairs it). Safe to run again after an interruption: blobs already
    whole in the target are kept. Run it with the server stopped, so that no instance
    arrives in the source meanwhile.

    Raises
    ------
    StorageUnavailable
        When either store cannot be reached.
    """
    report = MigrationReport()
    source = archive.blobs
    keys = list(source.blob_keys())
    for key in keys:
        if _digest(target, key) == key:
            report.present += 1
        else:
            data = source.read(key)
            if hashlib.sha256(data).hexdigest() != key:
                report.problems.append(f"blob {key} is damaged in the source: not copied")
            else:
                target.put(data)
                if _digest(target, key) != key:
                    report.problems.append(f"blob {key} does not read back whole from the target")
                else:
                    report.copied += 1
                    report.copied_bytes += len(data)
        if progress:
            progress(1, len(keys))
    in_target = set(target.blob_keys())
    column = schema.instances.c
    with archive.database.reader.connect() as connection:
        indexed = connection.execute(sa.select(column.sop_instance_uid, column.blob_key)).all()
    report.problems += [
        f"instance {uid}: blob {key} is not in the target"
        for uid, key in indexed
        if key not in in_target
    ]
    return report


def _digest(store: BlobStore, key: str) -> str:
    """SHA-256 of a blob's original bytes in ``store`` ("" when absent)."""
    digest = hashlib.sha256()
    try:
        for chunk in store.stream(key):
            digest.update(chunk)
    except NotFound:
        return ""
    return digest.hexdigest()
