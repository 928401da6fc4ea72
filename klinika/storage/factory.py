"""Building the configured blob store from the settings (the composition root calls this)."""

from __future__ import annotations

from pathlib import Path

from klinika.config import Settings
from klinika.errors import ConfigError
from klinika.storage.files import FileStore
from klinika.storage.protocol import BlobStore


def open_blob_store(settings: Settings, kind: str | None = None) -> BlobStore:
    """The blob store ``settings.storage`` names (or ``kind``, for ``klinika storage migrate``,
    which opens both).

    Raises
    ------
    ConfigError
        For S3 without a bucket, or a secret key file that cannot be read.
    """
    kind = kind or settings.storage
    if kind == "files":
        return FileStore(
            settings.blob_dir, fsync=settings.fsync, compress=settings.compress_storage
        )
    if kind != "s3":
        raise ConfigError(f"storage must be files or s3, not {kind!r}")
    from klinika.storage.s3 import S3Location, S3Store  # the S3 client loads only when used

    if not settings.s3_bucket:
        raise ConfigError("S3 storage needs s3_bucket (KLINIKA_S3_BUCKET)")
    location = S3Location(
        bucket=settings.s3_bucket,
        endpoint=settings.s3_endpoint,
        region=settings.s3_region,
        prefix=settings.s3_prefix,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=_secret_access_key(settings),
    )
    return S3Store(
        location,
        retry_seconds=settings.s3_retry_seconds,
        multipart_bytes=settings.s3_multipart_mb << 20,
    )


def _secret_access_key(settings: Settings) -> str:
    if settings.s3_secret_access_key or not settings.s3_secret_access_key_file:
        return settings.s3_secret_access_key
    path = Path(settings.s3_secret_access_key_file)
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read s3_secret_access_key_file {path}: {exc}") from exc
