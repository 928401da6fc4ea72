"""Content-addressed blob files with atomic, durable writes.

A write goes to a temporary file in the same file system, is fsynced, renamed into place,
and the directory is fsynced: after :meth:`FileStore.put` returns, the blob survives a crash
of the process or the machine. A crash mid-write leaves only a temporary file, never a
half-written blob under its key.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from klinika.errors import KlinikaError, NotFound, StorageFull

_KEY = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BlobRef:
    """Where a blob is: its key (SHA-256 hex of the bytes) and size."""

    key: str
    size: int


class FileStore:
    """Blobs as files ``<root>/<k[0:2]>/<k[2:4]>/<key>``; temporary files under ``<root>/tmp``."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="blob-writer")

    def path(self, key: str) -> Path:
        """The file of ``key``. Refuses anything but a 64-digit hex key (no path tricks)."""
        if not _KEY.match(key):
            raise KlinikaError(f"invalid blob key {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> BlobRef:
        """Store ``data`` durably and return its reference; a blob already present is kept.

        Raises
        ------
        StorageFull
            When the disk is full; nothing is left behind.
        """
        key = hashlib.sha256(data).hexdigest()
        target = self.path(key)
        if target.exists() and target.stat().st_size == len(data):
            return BlobRef(key, len(data))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except OSError as exc:
            _unlink_quietly(tmp_name)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(f"no space left to store a blob of {len(data)} bytes") from exc
            raise
        if self.fsync:
            _fsync_dir(target.parent)
        return BlobRef(key, len(data))

    def put_many(self, items: list[bytes]) -> list[BlobRef | StorageFull]:
        """Store several blobs at once on a small thread pool (writes and fsyncs overlap).

        Each result is the blob's reference, or the :class:`StorageFull` error it met.
        """

        def put_one(data: bytes) -> BlobRef | StorageFull:
            try:
                return self.put(data)
            except StorageFull as exc:
                return exc

        if len(items) <= 1:
            return [put_one(data) for data in items]
        return list(self._pool.map(put_one, items))

    def open(self, key: str) -> BinaryIO:
        """Open a blob for reading."""
        try:
            return self.path(key).open("rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} is missing from storage") from exc

    def read(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    def read_ranges(self, key: str, ranges: tuple[tuple[int, int], ...]) -> bytes:
        """Concatenate the byte ranges ``(offset, length)`` of a blob."""
        parts = []
        with self.open(key) as handle:
            for offset, length in ranges:
                handle.seek(offset)
                parts.append(handle.read(length))
        return b"".join(parts)

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def delete(self, key: str) -> None:
        """Remove a blob; a missing one is not an error."""
        _unlink_quietly(self.path(key))

    def keys(self) -> Iterator[str]:
        """Every blob key present on disk."""
        for path in self.root.glob("??/??/*"):
            if _KEY.match(path.name):
                yield path.name

    def clean_temporary(self) -> int:
        """Delete leftovers of interrupted writes; returns how many were removed."""
        removed = 0
        for path in self._tmp.glob("blob-*"):
            _unlink_quietly(path)
            removed += 1
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
