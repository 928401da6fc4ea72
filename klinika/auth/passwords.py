"""Password hashing (argon2id, argon2-cffi's RFC 9106 defaults) and the password rules.

The rules follow OWASP ASVS 4.0 §2.1 (NIST SP 800-63B §5.1.1.2): at least 12 characters, no
composition rules, and no password from a list of commonly used ones (zxcvbn's list of the
30,000 most frequent passwords of public breaches), nor one made of a few repeated characters
or containing the username.

The ``test`` profile (``KLINIKA_PASSWORD_HASH_PROFILE=test``) hashes with argon2-cffi's
cheapest parameters so that a test suite does not pay 64 MiB per login; it offers no
protection against guessing and is never for an installation with real users.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher, Type, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from klinika.auth.errors import PasswordRejected
from klinika.config import PasswordHashProfile

MIN_LENGTH = 12
MAX_LENGTH = 1024
#: Fewer distinct characters than this (``aaaaaaaaaaaa``, ``abababababab``) is refused.
MIN_DISTINCT = 5

_HASHERS: dict[str, PasswordHasher] = {
    "production": PasswordHasher(type=Type.ID),  # RFC 9106 low memory: t=3, 64 MiB, p=4
    "test": PasswordHasher.from_parameters(profiles.CHEAPEST),  # t=1, 8 KiB: tests only
}


@functools.cache
def _dummy_hash(profile: PasswordHashProfile) -> str:
    """Verified against when the username is unknown, so both cases cost the same time."""
    return _HASHERS[profile].hash(secrets.token_urlsafe(16))


@functools.cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_policy(password: str, *, username: str = "", min_length: int = MIN_LENGTH) -> None:
    """Refuse a password that is too short, absurdly long (a hashing cost attack), common,
    made of a few repeated characters, or the username repeated (ASVS 2.1.1, 2.1.7).

    Raises
    ------
    PasswordRejected
        An InvalidAccount whose message (and ``rule``) says which rule the password breaks.
    """
    if len(password) < min_length:
        raise PasswordRejected(
            f"a password needs at least {min_length} characters", "too-short", min_length
        )
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(
            f"a password may have at most {MAX_LENGTH} characters", "too-long", MAX_LENGTH
        )
    if len(set(password)) < MIN_DISTINCT:
        raise PasswordRejected(
            f"a password needs at least {MIN_DISTINCT} different characters",
            "too-few-characters",
            MIN_DISTINCT,
        )
    if password.lower() in _common_passwords():
        raise PasswordRejected("this password is in a list of commonly used passwords", "common")
    if len(username) >= 3 and password.lower() == username.lower() * (
        len(password) // len(username)
    ):
        raise PasswordRejected("a password must not be the username", "username")


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
