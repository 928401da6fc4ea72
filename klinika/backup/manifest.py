"""The manifest of one backup, and the durable-copy helpers every backup step uses."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import zstandard

from klinika.errors import KlinikaError
from klinika.storage.files import ZSTD_SUFFIX

Item = TypeVar("Item")
Result = TypeVar("Result")

MANIFEST = "manifest.json"
LOCK = ".lock"
PARTIAL_PREFIX = ".partial-"
STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"

#: ``progress(step, total)``: ``step`` more items done out of ``total``.
Progress = Callable[[int, int], None]

#: Blob copies, checks and restores at once: each waits mostly on an fsync or a network round
#: trip, and the disk commits concurrent fsyncs together.
BLOB_WORKERS = 8


class BackupError(KlinikaError):
    """A backup cannot be made, verified or restored; the message says why."""


def in_parallel(
    items: Iterable[Item], work: Callable[[Item], Result], workers: int = BLOB_WORKERS
) -> Iterator[tuple[Item, Result]]:
    """``(item, work(item))`` for each item, in order, with ``work`` running on a pool of
    threads a bounded window ahead (a million blobs are never all queued at once). An
    exception from ``work`` is raised here, at its item."""
    with ThreadPoolExecutor(workers, thread_name_prefix="backup-blobs") as pool:
        window: deque[tuple[Item, Future[Result]]] = deque()
        for item in items:
            window.append((item, pool.submit(work, item)))
            if len(window) >= 4 * workers:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


@dataclass
class Manifest:
    """What one backup holds: enough to verify and restore it without anything else.

    ``blobs`` lists ``(key, size)``; the key *is* the SHA-256 of the blob's original bytes
    (content addressing), so it is also the checksum verify re-computes.
    """

    version: str
    created: str
    full: bool
    index_sha256: str
    blobs: list[tuple[str, int]]
    counts: dict[str, int]
    copied_blobs: int = 0
    copied_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    index_file: str = "index.sqlite"
    dialect: str = "sqlite"
    audit_head: tuple[int, str] | None = None  # (seq, hash): anchors the audit chain
    seconds: float = 0.0


def read_manifest(backup: Path) -> Manifest:
    """The manifest of the backup folder ``backup``.

    Raises
    ------
    BackupError
        When the folder holds no readable manifest.
    """
    try:
        data = json.loads((backup / MANIFEST).read_text())
        data["blobs"] = [tuple(b) for b in data["blobs"]]
        if data.get("audit_head"):
            data["audit_head"] = tuple(data["audit_head"])
        return Manifest(**data)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise BackupError(f"{backup} is not a Klinika backup: {exc}") from exc


def write_manifest(folder: Path, manifest: Manifest) -> None:
    write_durably(folder / MANIFEST, json.dumps(asdict(manifest), indent=1).encode())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_durably(source: Path, target: Path) -> int:
    """Copy through a temporary file, fsync, rename: a crash never leaves half a file under
    the target's name. Returns the bytes copied. The caller fsyncs the directory."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".part")
    with source.open("rb") as reader, temporary.open("wb") as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)
        writer.flush()
        os.fsync(writer.fileno())
        size = writer.tell()
    os.replace(temporary, target)
    return size


def write_durably(target: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Temporary file, fsync, rename (and fsync the directory unless the caller does)."""
    temporary = target.with_name(target.name + ".part")
    with temporary.open("wb") as writer:
        writer.write(data)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(temporary, target)
    if sync_dir:
        fsync_dir(target.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def destination_lock(destination: Path) -> Iterator[None]:
    """One backup or prune at a time per destination (serve's scheduler and a cron job may
    both point at it).

    Raises
    ------
    BackupError
        When another process holds the lock.
    """
    destination.mkdir(parents=True, exist_ok=True)
    with (destination / LOCK).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BackupError(f"another backup or prune is running in {destination}") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_HEX = frozenset("0123456789abcdef")


def blob_path(root: Path, key: str) -> Path:
    """Where a destination keeps ``key`` uncompressed (the archive's layout). Keys come from
    manifests, which are files on a share: anything but 64 hex digits is refused.

    Raises
    ------
    BackupError
        For a key that is not a SHA-256 hex digest.
    """
    if len(key) != 64 or not set(key) <= _HEX:
        raise BackupError(f"invalid blob key {key!r} in a manifest")
    return root / key[:2] / key[2:4] / key


def stored_blob(root: Path, key: str) -> Path | None:
    """The file holding ``key`` in a destination (``<key>`` or ``<key>.zst``), if any."""
    plain = blob_path(root, key)
    for candidate in (plain, plain.with_name(key + ZSTD_SUFFIX)):
        if candidate.exists():
            return candidate
    return None


def blob_digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a stored blob's original bytes ("", 0 when it cannot be read)."""
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("rb") as raw:
            reader = (
                zstandard.ZstdDecompressor().stream_reader(raw)
                if path.name.endswith(ZSTD_SUFFIX)
                else raw
            )
            for chunk in iter(lambda: reader.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
    except (OSError, zstandard.ZstdError):
        return "", 0
    return digest.hexdigest(), size
