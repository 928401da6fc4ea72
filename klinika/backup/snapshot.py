"""Creating, verifying and restoring backups.

A destination folder holds ``blobs/ab/cd/<sha256>[.zst]`` (shared by every backup in it, the
file store's layout, blobs copied as the installation's store keeps them, files or S3) and one
folder per backup, named by its UTC time, with the index dump and ``manifest.json``. A backup
is built under ``.partial-<time>`` and renamed into place once its manifest is durable, so a
folder with a manifest is complete.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

from klinika import __version__
from klinika.backup.index_dump import dump_index, index_is_empty, load_index
from klinika.backup.manifest import (
    PARTIAL_PREFIX,
    STAMP_FORMAT,
    BackupError,
    Manifest,
    Progress,
    blob_digest,
    blob_path,
    destination_lock,
    fsync_dir,
    in_parallel,
    read_manifest,
    sha256_of,
    stored_blob,
    write_durably,
    write_manifest,
)
from klinika.errors import NotFound
from klinika.storage import BlobStore, StoredBlob
from klinika.storage.files import ZSTD_SUFFIX


def create_backup(
    database_url: str,
    blobs: BlobStore,
    destination: Path,
    *,
    full: bool = False,
    progress: Progress | None = None,
) -> tuple[Path, Manifest]:
    """Back up the index and the blobs it references (read from ``blobs``, files or S3) into
    the folder ``destination``.

    The index is dumped first (a consistent snapshot while the server keeps writing); the
    blobs copied are those *that snapshot* references, so instances arriving meanwhile go
    into the next backup. Only blobs the destination lacks are copied, unless ``full``.
    A blob deleted from the archive after the snapshot is listed in ``problems``.

    Raises
    ------
    BackupError
        When the index cannot be dumped or another backup runs into the same destination.
    StorageUnavailable
        When the installation's blob store cannot be read (nothing is kept of this backup).
    """
    started = time.monotonic()
    with destination_lock(destination):
        stamp = dt.datetime.now(dt.UTC).strftime(STAMP_FORMAT)
        partial = destination / (PARTIAL_PREFIX + stamp)
        partial.mkdir(parents=True)
        try:
            snapshot = dump_index(database_url, partial)
            manifest = Manifest(
                version=__version__,
                created=stamp,
                full=full,
                index_sha256=sha256_of(snapshot.file),
                blobs=snapshot.blobs,
                counts=snapshot.counts,
                index_file=snapshot.file.name,
                dialect=snapshot.dialect,
                audit_head=snapshot.audit_head,
            )
            _copy_blobs(blobs, destination / "blobs", manifest, full, progress)
            manifest.seconds = round(time.monotonic() - started, 3)
            write_manifest(partial, manifest)
            folder = destination / stamp
            partial.rename(folder)
            fsync_dir(destination)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return folder, manifest


def _copy_blobs(
    source: BlobStore, root: Path, manifest: Manifest, full: bool, progress: Progress | None
) -> None:
    def copy(entry: tuple[str, int]) -> tuple[Path | None, Path | None]:
        """(where the blob was written, where the destination had it); (None, None) when
        the archive no longer has it."""
        key = entry[0]
        present = stored_blob(root, key)
        if present is not None and not full:
            return None, present
        try:
            stored = source.read_stored(key)
        except NotFound:  # deleted from the archive since the snapshot
            return None, None
        target = blob_path(root, key)
        if stored.compressed:
            target = target.with_name(key + ZSTD_SUFFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_durably(target, stored.payload, sync_dir=False)
        if present is not None and present != target:
            present.unlink()  # --full after `klinika compress`: keep one form only
        return target, present

    touched: set[Path] = set()
    total = len(manifest.blobs)
    for (key, size), (target, present) in in_parallel(manifest.blobs, copy):
        if target is not None:
            touched.add(target.parent)
            manifest.copied_blobs += 1
            manifest.copied_bytes += size
        elif present is None:
            manifest.problems.append(f"blob {key} was gone from the archive")
        if progress:
            progress(1, total)
    for folder in touched:  # the renames are durable before the manifest says they exist
        fsync_dir(folder)


def verify_backup(backup: Path, progress: Progress | None = None) -> list[str]:
    """Re-read every checksum of a backup: the index dump and every blob it references
    (decompressed when stored compressed). Reads only; works on a read-only mount.
    Returns the problems (empty when whole)."""
    manifest = read_manifest(backup)
    root = backup.parent / "blobs"
    problems = list(manifest.problems)
    index = backup / manifest.index_file
    if not index.exists():
        problems.append(f"the index dump {manifest.index_file} is missing")
    elif sha256_of(index) != manifest.index_sha256:
        problems.append(f"the index dump {manifest.index_file} does not match its checksum")

    def check(entry: tuple[str, int]) -> str | None:
        key, size = entry
        stored = stored_blob(root, key)
        if stored is None:
            return f"blob {key} is missing"
        if blob_digest(stored) != (key, size):
            return f"blob {key} is damaged (checksum mismatch)"
        return None

    total = len(manifest.blobs)
    for _entry, problem in in_parallel(manifest.blobs, check):
        if problem:
            problems.append(problem)
        if progress:
            progress(1, total)
    return problems


def restore_backup(
    backup: Path,
    database_url: str,
    blobs: BlobStore,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> Manifest:
    """Verify a backup, then restore its index into ``database_url`` and its blobs into
    ``blobs`` (files or S3). Refuses an installation that already holds data unless ``force``
    (then the index is replaced and blobs are added; fsck shows what is left over).

    Raises
    ------
    BackupError
        When the backup is not whole or the target is not empty.
    StorageUnavailable
        When the target blob store cannot be written (the index is not loaded then).
    """
    problems = verify_backup(backup)
    if problems:
        raise BackupError(f"the backup is not whole: {problems[0]} ({len(problems)} problem(s))")
    holds_blobs = next(iter(blobs.blob_keys()), None) is not None
    if not force and (holds_blobs or not index_is_empty(database_url)):
        raise BackupError(
            "the target installation is not empty (index or blobs); restore into an empty "
            "data folder and database, or use --force"
        )
    manifest = read_manifest(backup)
    source = backup.parent / "blobs"

    def put(entry: tuple[str, int]) -> None:
        key = entry[0]
        if not blobs.exists(key):
            stored = stored_blob(source, key)
            assert stored is not None  # verified above
            compressed = stored.name.endswith(ZSTD_SUFFIX)
            blobs.put_stored(key, StoredBlob(stored.read_bytes(), compressed))

    total = len(manifest.blobs)
    for _ in in_parallel(manifest.blobs, put):  # blobs first: an index never points at nothing
        if progress:
            progress(1, total)
    load_index(backup / manifest.index_file, manifest.dialect, database_url)
    return manifest
