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
import io
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import zstandard

from klinika.errors import NotFound, StorageFull
from klinika.storage.protocol import (
    KEY_PATTERN,
    BlobRef,
    PutError,
    StorageUsage,
    StoredBlob,
    check_key,
)

_KEY = KEY_PATTERN

ZSTD_SUFFIX = ".zst"
ZSTD_LEVEL = 3


class FileStore:
    """A :class:`~klinika.storage.BlobStore` on the local file system.

    Blobs as files ``<root>/<k[0:2]>/<k[2:4]>/<key>``; temporary files under ``<root>/tmp``.

    With ``compress``, new blobs are written zstd-compressed as ``<key>.zst`` (the key is still
    the SHA-256 of the original bytes), and every read gives the original bytes back: storage
    compression is invisible to the archive and its clients. Both forms can coexist (an archive
    compressed later by ``klinika compress``).
    """

    def __init__(self, root: Path, *, fsync: bool = True, compress: bool = False) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.compress = compress
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._pool: ThreadPoolExecutor | None = None

    kind = "files"

    def path(self, key: str) -> Path:
        """The file of ``key``. Refuses anything but a 64-digit hex key (no path tricks)."""
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def stored_path(self, key: str) -> Path:
        """The file that holds ``key`` as stored (``<key>`` or ``<key>.zst``).

        Raises
        ------
        NotFound
            When neither exists.
        """
        plain = self.path(key)
        if plain.exists():
            return plain
        packed = plain.with_name(key + ZSTD_SUFFIX)
        if packed.exists():
            return packed
        raise NotFound(f"blob {key} is missing from storage")

    def put(self, data: bytes) -> BlobRef:
        """Store ``data`` durably and return its reference; a blob already present is kept.

        Raises
        ------
        StorageFull
            When the disk is full; nothing is left behind.
        """
        key = hashlib.sha256(data).hexdigest()
        if self.exists(key):
            return BlobRef(key, len(data))
        target = self.path(key)
        payload = data
        if self.compress:
            payload = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
            target = target.with_name(key + ZSTD_SUFFIX)
        self._write(target, payload)
        return BlobRef(key, len(data))

    def _write(self, target: Path, payload: bytes) -> None:
        """Temporary file, fsync, rename, fsync the directory."""
        if not target.parent.is_dir():
            self._make_folders(target.parent)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except OSError as exc:
            _unlink_quietly(tmp_name)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(f"no space left to store a blob of {len(payload)} bytes") from exc
            raise
        if self.fsync:
            _fsync_dir(target.parent)

    def _make_folders(self, folder: Path) -> None:
        """Create a blob's ``ab/cd`` folders; each new folder's entry is fsynced into its
        parent, so that a blob acknowledged in it is not lost with the folder after a crash."""
        for level in (folder.parent, folder):
            try:
                level.mkdir()
            except FileExistsError:
                continue
            if self.fsync:
                _fsync_dir(level.parent)

    def put_many(self, items: list[bytes]) -> list[BlobRef | PutError]:
        """Store several blobs at once on a small thread pool (writes and fsyncs overlap).

        Each result is the blob's reference, or the :class:`StorageFull` error it met.
        """

        def put_one(data: bytes) -> BlobRef | PutError:
            try:
                return self.put(data)
            except StorageFull as exc:
                return exc

        if len(items) <= 1:
            return [put_one(data) for data in items]
        return list(self._writers().map(put_one, items))

    def _writers(self) -> ThreadPoolExecutor:
        with self._recent_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="blob-writer")
            return self._pool

    def open(self, key: str) -> BinaryIO:
        """Open a blob for reading (the original bytes, whatever the storage form)."""
        path = self.stored_path(key)
        if path.name.endswith(ZSTD_SUFFIX):
            return io.BytesIO(self.read(key))
        try:
            return path.open("rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} is missing from storage") from exc

    def read(self, key: str) -> bytes:
        """The original bytes of a blob."""
        path = self.stored_path(key)
        if not path.name.endswith(ZSTD_SUFFIX):
            return path.read_bytes()
        with self._recent_lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        data = zstandard.ZstdDecompressor().decompress(path.read_bytes())
        with self._recent_lock:  # frames of one instance come in bursts: keep a few
            self._recent[key] = data
            while len(self._recent) > 16:
                self._recent.popitem(last=False)
        return data

    def read_ranges(self, key: str, ranges: tuple[tuple[int, int], ...]) -> bytes:
        """Concatenate the byte ranges ``(offset, length)`` of a blob's original bytes."""
        path = self.stored_path(key)
        if path.name.endswith(ZSTD_SUFFIX):
            data = self.read(key)
            return b"".join(data[offset : offset + length] for offset, length in ranges)
        parts = []
        with path.open("rb") as handle:
            for offset, length in ranges:
                handle.seek(offset)
                parts.append(handle.read(length))
        return b"".join(parts)

    def stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The original bytes of a blob in chunks."""
        with self.open(key) as handle:
            yield from iter(lambda: handle.read(chunk_size), b"")

    def read_stored(self, key: str) -> StoredBlob:
        """The file's bytes as kept (zstd when the blob is stored compressed)."""
        path = self.stored_path(key)
        try:
            return StoredBlob(path.read_bytes(), path.name.endswith(ZSTD_SUFFIX))
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} is missing from storage") from exc

    def put_stored(self, key: str, blob: StoredBlob) -> None:
        """Write a blob in the form given (temporary file, fsync, rename, fsync dir)."""
        target = self.path(key)
        if blob.compressed:
            target = target.with_name(key + ZSTD_SUFFIX)
        self._write(target, blob.payload)

    def usage(self) -> StorageUsage:
        disk = shutil.disk_usage(self.root)
        return StorageUsage("files", str(self.root), disk.free, disk.total)

    def check(self) -> str | None:
        """The blob folder exists and its temporary folder takes a file."""
        if not self.root.is_dir():
            return "blob folder missing"
        try:
            with tempfile.NamedTemporaryFile(dir=self._tmp, prefix="check-"):
                pass
        except OSError as exc:
            return f"blob folder not writable: {exc.strerror or type(exc).__name__}"
        return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def exists(self, key: str) -> bool:
        plain = self.path(key)
        return plain.exists() or plain.with_name(key + ZSTD_SUFFIX).exists()

    def delete(self, key: str) -> None:
        """Remove a blob (both forms); a missing one is not an error."""
        plain = self.path(key)
        _unlink_quietly(plain)
        _unlink_quietly(plain.with_name(key + ZSTD_SUFFIX))
        with self._recent_lock:
            self._recent.pop(key, None)

    def blob_keys(self) -> Iterator[str]:
        """Every blob key present on disk."""
        for path in self.root.glob("??/??/*"):
            name = path.name.removesuffix(ZSTD_SUFFIX)
            if _KEY.match(name):
                yield name

    def compress_existing(self, key: str) -> int:
        """Rewrite an uncompressed blob zstd-compressed; returns the bytes saved (0 if it was
        compressed already). The compressed file is durable before the plain one goes."""
        plain = self.path(key)
        if not plain.exists():
            return 0
        data = plain.read_bytes()
        packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
        self._write(plain.with_name(key + ZSTD_SUFFIX), packed)
        _unlink_quietly(plain)
        return len(data) - len(packed)

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
