"""The one storage seam: what the archive, export, backup, fsck, health and the admin page may
ask of a blob store, whichever backend holds the bytes.

Keys are the SHA-256 hex digest of a blob's original bytes (content addressing): a checksum
check needs nothing but the key, and a copy to another store or a backup is verified by
re-hashing what arrives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from klinika.errors import KlinikaError, StorageFull, StorageUnavailable

KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")

#: What a write of one blob in :meth:`BlobStore.put_many` may meet instead of success.
PutError = StorageFull | StorageUnavailable


def check_key(key: str) -> str:
    """``key`` when it is a 64-digit lowercase hex digest; anything else is refused, so a key
    never becomes a path or object name trick.

    Raises
    ------
    KlinikaError
        For any other text.
    """
    if not KEY_PATTERN.match(key):
        raise KlinikaError(f"invalid blob key {key!r}")
    return key


@dataclass(frozen=True)
class BlobRef:
    """Where a blob is: its key (SHA-256 hex of the bytes) and size."""

    key: str
    size: int


@dataclass(frozen=True)
class StoredBlob:
    """A blob as the store keeps it: ``payload`` is zstd-compressed when ``compressed``.

    Backups copy blobs in this form, so a compressed archive makes a compressed backup.
    """

    payload: bytes
    compressed: bool


@dataclass(frozen=True)
class StorageUsage:
    """How full the store is, for the admin page. ``free_bytes``/``total_bytes`` are ``None``
    when the backend has no such limit to tell (object storage)."""

    kind: str
    location: str
    free_bytes: int | None
    total_bytes: int | None


@runtime_checkable
class BlobStore(Protocol):
    """Blobs by key. Every method but :meth:`check` and :meth:`put_many` raises
    :class:`~klinika.errors.StorageUnavailable` when the backend cannot be reached (after its
    retries), and reads raise :class:`~klinika.errors.NotFound` for a missing key.
    """

    #: ``files`` or ``s3``: the value of the ``storage`` setting that builds this store.
    kind: str

    def put(self, data: bytes) -> BlobRef:
        """Store ``data`` durably; when it returns, the blob survives a crash."""
        ...

    def put_many(self, items: list[bytes]) -> list[BlobRef | PutError]:
        """Store several blobs (concurrently); each result is the reference or the error met."""
        ...

    def read(self, key: str) -> bytes:
        """The original bytes of a blob."""
        ...

    def read_ranges(self, key: str, ranges: tuple[tuple[int, int], ...]) -> bytes:
        """The byte ranges ``(offset, length)`` of a blob's original bytes, concatenated."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A reader over the original bytes (streamed; for large instances and ZIP export)."""
        ...

    def stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The original bytes in chunks."""
        ...

    def read_stored(self, key: str) -> StoredBlob:
        """The blob as kept (compressed or not), for backups."""
        ...

    def put_stored(self, key: str, blob: StoredBlob) -> None:
        """Put a blob given as kept elsewhere (restore, migrate); the caller verified it."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove a blob; a missing one is not an error."""
        ...

    def blob_keys(self) -> Iterator[str]:
        """Every key present in the store."""
        ...

    def usage(self) -> StorageUsage: ...

    def check(self) -> str | None:
        """``None`` when the store can be read and written, else what is wrong (readiness)."""
        ...

    def compress_existing(self, key: str) -> int:
        """Rewrite a blob compressed where the backend supports it; returns bytes saved."""
        ...

    def clean_temporary(self) -> int:
        """Remove leftovers of interrupted writes; returns how many."""
        ...

    def close(self) -> None: ...
