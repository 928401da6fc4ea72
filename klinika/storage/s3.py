"""Blobs as objects in an S3 bucket (AWS S3, MinIO, Ceph RGW, SeaweedFS, any S3 API).

The client is obstore (Rust's ``object_store`` crate): it signs, retries with exponential
backoff and jitter (5xx, dropped connections, timeouts), reads byte ranges, and switches to a
multipart upload for large bodies. A PUT that returns has been acknowledged by the object
store, which is what the archive waits for before it commits the index.

Objects are named ``[<prefix>/]<k[0:2]>/<k[2:4]>/<key>`` (the file store's layout, so backups
and listings look the same). Objects are kept uncompressed: ranged GETs serve frames without
downloading the instance, which compression would rule out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import obstore
import zstandard
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import S3Store as ObstoreS3

from klinika.errors import NotFound, StorageUnavailable
from klinika.storage.protocol import (
    KEY_PATTERN,
    BlobRef,
    PutError,
    StorageUsage,
    StoredBlob,
    check_key,
)

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

PART_SIZE = 8 * 1024 * 1024
_READY_KEY = ".klinika-ready"


@dataclass(frozen=True)
class S3Location:
    """Where the bucket is and how to sign for it. ``endpoint`` empty means AWS."""

    bucket: str
    endpoint: str = ""
    region: str = "us-east-1"
    prefix: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""

    def describe(self) -> str:
        """``endpoint/bucket/prefix`` without credentials (for messages and the admin page)."""
        base = self.endpoint.rstrip("/") or "s3://"
        return f"{base}/{self.bucket}/{self.prefix}".rstrip("/")


class S3Store:
    """A :class:`~klinika.storage.BlobStore` on an S3 bucket.

    Parameters
    ----------
    location
        The bucket, endpoint, region, prefix and credentials.
    retry_seconds
        How long a failing request is retried (exponential backoff) before the store reports
        :class:`~klinika.errors.StorageUnavailable`.
    multipart_bytes
        Blobs larger than this are uploaded in parts of 8 MiB, several at once.
    """

    kind = "s3"

    def __init__(
        self, location: S3Location, *, retry_seconds: float = 30.0, multipart_bytes: int = 16 << 20
    ) -> None:
        self.location = location
        self.multipart_bytes = multipart_bytes
        self._store = _client(location, retry_seconds)
        self._probe = _client(location, 0.0)  # readiness answers at once
        self._pool: ThreadPoolExecutor | None = None

    # ----------------------------------------------------------------- names
    @staticmethod
    def object_name(key: str) -> str:
        """The object's name under the prefix. Refuses anything but a 64-digit hex key."""
        check_key(key)
        return f"{key[:2]}/{key[2:4]}/{key}"

    def _failed(self, exc: Exception, doing: str) -> StorageUnavailable:
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return StorageUnavailable(
            f"object storage {self.location.describe()} cannot {doing}: {reason}"
        )

    # ----------------------------------------------------------------- writes
    def put(self, data: bytes) -> BlobRef:
        """Upload ``data`` (in parts when large); returns once the store acknowledged it.

        Raises
        ------
        StorageUnavailable
            When the store cannot be reached or refuses the write after the retries.
        """
        key = hashlib.sha256(data).hexdigest()
        self._upload(key, data)
        return BlobRef(key, len(data))

    def _upload(self, key: str, data: bytes) -> None:
        try:
            obstore.put(
                self._store,
                self.object_name(key),
                data,
                use_multipart=len(data) > self.multipart_bytes,
                chunk_size=PART_SIZE,
                max_concurrency=4,
            )
        except (ObstoreError, OSError) as exc:
            raise self._failed(exc, f"store blob {key}") from exc

    def put_many(self, items: list[bytes]) -> list[BlobRef | PutError]:
        """Upload several blobs on a small thread pool (the client releases the GIL)."""

        def put_one(data: bytes) -> BlobRef | PutError:
            try:
                return self.put(data)
            except StorageUnavailable as exc:
                return exc

        if len(items) <= 1:
            return [put_one(data) for data in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-writer")
        return list(self._pool.map(put_one, items))

    def put_stored(self, key: str, blob: StoredBlob) -> None:
        """Upload a blob given as kept elsewhere (decompressed: objects stay plain)."""
        data = blob.payload
        if blob.compressed:
            data = zstandard.ZstdDecompressor().decompress(data)
        self._upload(key, data)

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""
        try:
            obstore.delete(self._store, self.object_name(key))
        except FileNotFoundError:
            return
        except (ObstoreError, OSError) as exc:
            raise self._failed(exc, f"delete blob {key}") from exc

    # ----------------------------------------------------------------- reads
    def read(self, key: str) -> bytes:
        try:
            return bytes(obstore.get(self._store, self.object_name(key)).bytes())
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} is missing from storage") from exc
        except (ObstoreError, OSError) as exc:
            raise self._failed(exc, f"read blob {key}") from exc

    def read_ranges(self, key: str, ranges: tuple[tuple[int, int], ...]) -> bytes:
        """Ranged GETs (coalesced by the client) for the frames of one instance."""
        if not ranges:
            return b""
        try:
            parts = obstore.get_ranges(
                self._store,
                self.object_name(key),
                starts=[offset for offset, _ in ranges],
                lengths=[length for _, length in ranges],
            )
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} is missing from storage") from exc
        except (ObstoreError, OSError) as exc:
            raise self._failed(exc, f"read frames of blob {key}") from exc
        return b"".join(bytes(part) for part in parts)

    def stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            result = obstore.get(self._store, self.object_name(key))
            for chunk in result.stream(min_chunk_size=chunk_size):
                yield bytes(chunk)
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} is missing from storage") from exc
        except (ObstoreError, OSError) as exc:
            raise self._failed(exc, f"read blob {key}") from exc

    def open(self, key: str) -> BinaryIO:
        """A buffered reader over the object's body, fetched as it is read."""
        if not self.exists(key):
            raise NotFound(f"blob {key} is missing from storage")
        return io.BufferedReader(_ChunkReader(self.stream(key)), buffer_size=1 << 20)

    def read_stored(self, key: str) -> StoredBlob:
        return StoredBlob(self.read(key), compressed=False)

    def exists(self, key: str) -> bool:
        try:
            obstore.head(self._store, self.object_name(key))
        except FileNotFoundError:
            return False
        except (ObstoreError, OSError) as exc:
            raise self._failed(exc, f"look up blob {key}") from exc
        return True

    def etag(self, key: str) -> str:
        """The object's ETag (a multipart upload's ends in ``-<parts>``)."""
        try:
            return str(obstore.head(self._store, self.object_name(key))["e_tag"] or "")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} is missing from storage") from exc
        except (ObstoreError, OSError) as exc:
            raise self._failed(exc, f"look up blob {key}") from exc

    def blob_keys(self) -> Iterator[str]:
        """Every key in the bucket under the prefix (listed page by page)."""
        try:
            for page in obstore.list(self._store, chunk_size=1000):
                for meta in page:
                    name = meta["path"].rsplit("/", 1)[-1]
                    if KEY_PATTERN.match(name) and meta["path"] == self.object_name(name):
                        yield name
        except (ObstoreError, OSError) as exc:
            raise self._failed(exc, "list blobs") from exc

    # ----------------------------------------------------------------- upkeep
    def usage(self) -> StorageUsage:
        return StorageUsage("s3", self.location.describe(), None, None)

    def check(self) -> str | None:
        """The bucket answers a listing and takes a small write (no retries: readiness)."""
        try:
            next(iter(obstore.list(self._probe, chunk_size=1)), None)
            obstore.put(self._probe, _READY_KEY, b"ok")
        except (ObstoreError, OSError) as exc:
            return str(self._failed(exc, "be reached"))
        return None

    def compress_existing(self, key: str) -> int:
        """Objects stay uncompressed (frames are served by ranged GETs): nothing saved."""
        return 0

    def clean_temporary(self) -> int:
        """Nothing to clean here: an interrupted upload leaves no object under its name
        (abandoned multipart parts are the bucket's lifecycle rule's business)."""
        return 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class _ChunkReader(io.RawIOBase):
    """A raw reader over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            try:
                self._left = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


def _client(location: S3Location, retry_seconds: float) -> ObstoreS3:
    client: ClientConfig = {"connect_timeout": "5s", "timeout": "300s"}
    if location.endpoint.startswith("http://"):
        client["allow_http"] = True
    retry: RetryConfig = {
        "max_retries": 10 if retry_seconds > 0 else 0,
        "retry_timeout": dt.timedelta(seconds=retry_seconds),
        "backoff": {
            "init_backoff": dt.timedelta(milliseconds=100),
            "max_backoff": dt.timedelta(seconds=5),
            "base": 2,
        },
    }
    options: dict[str, str | bool] = {"region": location.region}
    if location.endpoint:  # MinIO, Ceph RGW, SeaweedFS: bucket in the path, not the host name
        options["endpoint"] = location.endpoint
        options["virtual_hosted_style_request"] = False
    if location.access_key_id:
        options["access_key_id"] = location.access_key_id
        options["secret_access_key"] = location.secret_access_key
    return ObstoreS3(
        location.bucket,
        prefix=location.prefix.strip("/") or None,
        config=options,  # type: ignore[arg-type]
        client_options=client,
        retry_config=retry,
    )
