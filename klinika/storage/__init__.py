"""Blobs by key, written durably: the bytes of every stored instance.

Owns :class:`FileStore` (content-addressed files under ``<data>/blobs``). May import: config,
errors. Keys are SHA-256 hex digests of the content, so a backup copies only blobs it lacks
and a checksum check needs nothing but the key.
"""

from klinika.storage.files import BlobRef, FileStore

__all__ = ["BlobRef", "FileStore"]
