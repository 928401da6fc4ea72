"""The JWT signing secret: from settings (``KLINIKA_JWT_SECRET``) or a file in the data folder,
generated on first start with mode 0600. Never logged, never part of ``repr``."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from klinika.auth.tokens import MIN_SECRET_BYTES
from klinika.config import Settings
from klinika.errors import ConfigError


def secret_path(settings: Settings) -> Path:
    return (
        Path(settings.jwt_secret_file)
        if settings.jwt_secret_file
        else (settings.data_dir / "secrets" / "jwt.key")
    )


def load_jwt_secret(settings: Settings) -> bytes:
    """The secret bytes; creates the file atomically if neither the setting nor the file exist.

    Raises
    ------
    ConfigError
        When the configured secret or the file's content is shorter than 32 bytes.
    """
    if settings.jwt_secret:
        secret = settings.jwt_secret.encode("utf-8")
    else:
        path = secret_path(settings)
        if not path.exists():
            _create(path)
        secret = path.read_bytes().strip()
        if not secret:
            raise ConfigError(f"the JWT secret file {path} is empty")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"jwt_secret must be at least {MIN_SECRET_BYTES} bytes long")
    return secret


def _create(path: Path) -> None:
    """Write a fresh secret to a temporary file (0600), then link it into place: when several
    workers start at once, the first link wins and the others read that file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another worker won the race
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
