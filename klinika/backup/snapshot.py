"""Creating, verifying and restoring backups."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

from klinika import __version__
from klinika.db import metadata
from klinika.errors import KlinikaError
from klinika.index import schema
from klinika.storage import FileStore

INDEX_FILE = "index.sqlite"
COUNTED = ("patients", "studies", "series", "instances", "users", "audit_events")
MANIFEST = "manifest.json"


class BackupError(KlinikaError):
    """A backup cannot be made, verified or restored; the message says why."""


@dataclass
class Manifest:
    """What one backup holds: enough to verify and restore it without anything else."""

    version: str
    created: str
    full: bool
    index_sha256: str
    blobs: list[tuple[str, int]]
    counts: dict[str, int]
    copied_blobs: int = 0
    copied_bytes: int = 0
    problems: list[str] = field(default_factory=list)


def _sqlite_path(database_url: str) -> Path:
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise BackupError(
            "backups of a PostgreSQL index are not implemented yet (pg_dump is the plan); "
            "this installation's index is " + url.get_backend_name()
        )
    return Path(url.database)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_durably(source: Path, target: Path) -> None:
    """Copy through a temporary file, fsync, rename: a crash never leaves half a blob."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".part")
    with source.open("rb") as reader, temporary.open("wb") as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(temporary, target)


def create_backup(
    database_url: str,
    blob_root: Path,
    destination: Path,
    *,
    full: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, Manifest]:
    """Back up the index and the blobs it references into ``destination``.

    The index is copied first with SQLite's online backup API (a consistent snapshot while the
    server keeps writing); the blobs copied are those that snapshot references, so the backup
    is consistent even if instances arrive meanwhile.
    """
    index_path = _sqlite_path(database_url)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    # The JWT secret stays out of backups on purpose: after a restore, users log in again.
    folder = destination / stamp
    folder.mkdir(parents=True)
    snapshot = folder / INDEX_FILE
    with sqlite3.connect(index_path) as live, sqlite3.connect(snapshot) as copy:
        live.backup(copy)
    engine = sa.create_engine(f"sqlite:///{snapshot}")
    with engine.connect() as copy:
        instances = schema.instances
        blobs = copy.execute(
            sa.select(instances.c.blob_key, instances.c.blob_size).distinct()
        ).all()
        counts = {
            name: copy.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for name, table in metadata.tables.items()
            if name in COUNTED
        }
    engine.dispose()
    source, store = FileStore(blob_root), FileStore(destination / "blobs")
    copied = copied_bytes = 0
    for key, size in blobs:
        if full or not store.exists(key):
            stored = source.stored_path(key)  # copied as stored (compressed or not)
            _copy_durably(stored, store.path(key).with_name(stored.name))
            copied += 1
            copied_bytes += size
        if progress:
            progress(1)
    manifest = Manifest(
        version=__version__,
        created=stamp,
        full=full,
        index_sha256=_sha256(snapshot),
        blobs=[(key, size) for key, size in blobs],
        counts=counts,
        copied_blobs=copied,
        copied_bytes=copied_bytes,
    )
    (folder / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1))
    return folder, manifest


def read_manifest(backup: Path) -> Manifest:
    try:
        data = json.loads((backup / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{backup} is not a Klinika backup: {exc}") from exc
    data["blobs"] = [tuple(b) for b in data["blobs"]]
    return Manifest(**data)


def verify_backup(backup: Path, progress: Callable[[int], None] | None = None) -> list[str]:
    """Re-read every checksum of a backup; returns the problems (empty when whole)."""
    manifest = read_manifest(backup)
    store = FileStore(backup.parent / "blobs")
    problems = []
    if _sha256(backup / INDEX_FILE) != manifest.index_sha256:
        problems.append("the index copy does not match its checksum")
    for key, size in manifest.blobs:
        if not store.exists(key):
            problems.append(f"blob {key} is missing")
        else:
            try:
                data = store.read(key)
            except Exception:  # a damaged compressed blob does not even decompress
                data = b""
            if len(data) != size or hashlib.sha256(data).hexdigest() != key:
                problems.append(f"blob {key} is damaged (checksum mismatch)")
        if progress:
            progress(1)
    return problems


def restore_backup(backup: Path, data_dir: Path, *, force: bool = False) -> Manifest:
    """Restore a verified backup into an empty data folder (``force`` allows a non-empty one)."""
    problems = verify_backup(backup)
    if problems:
        raise BackupError(f"the backup is not whole: {problems[0]} ({len(problems)} problem(s))")
    if data_dir.exists() and any(data_dir.iterdir()) and not force:
        raise BackupError(f"{data_dir} is not empty; restore into an empty folder or use --force")
    manifest = read_manifest(backup)
    data_dir.mkdir(parents=True, exist_ok=True)
    _copy_durably(backup / INDEX_FILE, data_dir / INDEX_FILE)
    for suffix in ("-wal", "-shm"):
        (data_dir / (INDEX_FILE + suffix)).unlink(missing_ok=True)
    source, target = FileStore(backup.parent / "blobs"), FileStore(data_dir / "blobs")
    for key, _size in manifest.blobs:
        if not target.exists(key):
            stored = source.stored_path(key)
            _copy_durably(stored, target.path(key).with_name(stored.name))
    return manifest
