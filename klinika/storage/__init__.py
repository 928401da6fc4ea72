"""Blobs by key, written durably: the bytes of every stored instance.

Owns the :class:`BlobStore` protocol (the one storage seam), :class:`FileStore`
(content-addressed files under ``<data>/blobs``), :class:`S3Store` (any S3 API) and
:func:`open_blob_store`, which builds the configured one. May import: config, errors. Keys are
SHA-256 hex digests of the content, so a backup copies only blobs it lacks and a checksum
check needs nothing but the key. Nothing outside this room knows a blob's path or object name.
"""

from klinika.storage.factory import open_blob_store
from klinika.storage.files import FileStore
from klinika.storage.protocol import BlobRef, BlobStore, PutError, StorageUsage, StoredBlob

__all__ = [
    "BlobRef",
    "BlobStore",
    "FileStore",
    "PutError",
    "StorageUsage",
    "StoredBlob",
    "open_blob_store",
]
