"""Password hashing (argon2id, argon2-cffi's RFC 9106 defaults) and the password rules.

The ``test`` profile (``KLINIKA_PASSWORD_HASH_PROFILE=test``) hashes with argon2-cffi's
cheapest parameters so that a test suite does not pay 64 MiB per login; it offers no
protection against guessing and is never for an installation with real users.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher, Type, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from klinika.auth.errors import InvalidAccount
from klinika.config import PasswordHashProfile

MIN_LENGTH = 10
MAX_LENGTH = 1024

_HASHERS: dict[str, PasswordHasher] = {
    "production": PasswordHasher(type=Type.ID),  # RFC 9106 low memory: t=3, 64 MiB, p=4
    "test": PasswordHasher.from_parameters(profiles.CHEAPEST),  # t=1, 8 KiB: tests only
}


@functools.cache
def _dummy_hash(profile: PasswordHashProfile) -> str:
    """Verified against when the username is unknown, so both cases cost the same time."""
    return _HASHERS[profile].hash(secrets.token_urlsafe(16))


def check_policy(password: str) -> None:
    """Refuse passwords that are too short or absurdly long (a hashing cost attack)."""
    if len(password) < MIN_LENGTH:
        raise InvalidAccount(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidAccount(f"a password may have at most {MAX_LENGTH} characters")


def hash_password(password: str, profile: PasswordHashProfile = "production") -> str:
    return _HASHERS[profile].hash(password)


def verify_password(
    stored_hash: str | None, password: str, profile: PasswordHashProfile = "production"
) -> bool:
    """True if ``password`` matches; ``stored_hash`` None burns the same time and fails."""
    if len(password) > MAX_LENGTH:
        return False
    hasher = _HASHERS[profile]
    try:
        return (
            hasher.verify(stored_hash or _dummy_hash(profile), password) and stored_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str, profile: PasswordHashProfile = "production") -> bool:
    """Whether a hash was made with other parameters than ``profile``'s."""
    return _HASHERS[profile].check_needs_rehash(stored_hash)


def generate_password() -> str:
    """A random password to print once (about 96 bits)."""
    return secrets.token_urlsafe(12)
