"""Password hashing (argon2id, argon2-cffi's RFC 9106 defaults) and the password rules."""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from klinika.auth.errors import InvalidAccount

MIN_LENGTH = 10
MAX_LENGTH = 1024

_hasher = PasswordHasher(type=Type.ID)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so both cases cost the same time."""
    return _hasher.hash(secrets.token_urlsafe(16))


def check_policy(password: str) -> None:
    """Refuse passwords that are too short or absurdly long (a hashing cost attack)."""
    if len(password) < MIN_LENGTH:
        raise InvalidAccount(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidAccount(f"a password may have at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; ``stored_hash`` None burns the same time and fails."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def generate_password() -> str:
    """A random password to print once (about 96 bits)."""
    return secrets.token_urlsafe(12)
