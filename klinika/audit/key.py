"""The audit key: 32 random bytes in a file of the secrets folder (mode 0600), never in the
database, so that whoever can write the database cannot re-chain the trail.

The file holds one key per line in hex: the first chains new events; the others are older
keys, kept so that the events they chained still verify (a restore onto a new machine, a key
rotation: add the old key as a second line).

The file is created on first start, the way the JWT secret is (:mod:`klinika.auth.secret`):
written to a temporary file, then linked into place, so concurrent workers agree on one key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from klinika.errors import ConfigError

KEY_BYTES = 32


def load_audit_key(path: Path) -> bytes:
    """The current key in ``path``; creates the file when it does not exist.

    Raises
    ------
    ConfigError
        When the file exists but does not hold a key of at least 32 bytes.
    """
    return load_audit_keys(path)[0]


def load_audit_keys(path: Path) -> list[bytes]:
    """Every key in ``path``, the current one first; creates the file when it does not exist.

    Raises
    ------
    ConfigError
        When the file exists but a line is not a hex key of at least 32 bytes.
    """
    if not path.exists():
        create_secret_file(path, secrets.token_hex(KEY_BYTES))
    keys: list[bytes] = []
    for line in path.read_text(encoding="ascii").splitlines():
        if not line.strip():
            continue
        try:
            key = bytes.fromhex(line.strip())
        except ValueError as exc:
            raise ConfigError(f"the audit key file {path} holds a line that is not hex") from exc
        if len(key) < KEY_BYTES:
            raise ConfigError(f"an audit key in {path} is shorter than {KEY_BYTES} bytes")
        keys.append(key)
    if not keys:
        raise ConfigError(f"the audit key file {path} is empty")
    return keys


def create_secret_file(path: Path, content: str) -> None:
    """Write ``content`` to a temporary file (0600), then link it into place: when several
    processes start at once, the first link wins and the others read that file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(content + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
