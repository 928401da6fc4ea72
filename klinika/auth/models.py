"""Plain records the auth room hands out: principals, users, sessions, login results."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from klinika.audit import Actor
from klinika.auth.permissions import Role
from klinika.config import PasswordHashProfile, Settings


def iso(seconds: int | None) -> str | None:
    """Unix seconds as ISO-8601 UTC, for API answers."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in user (with the session behind the token)."""

    user_id: int
    username: str
    role: Role
    display_name: str
    language: str
    session_id: str
    expires_at: int
    must_change_password: bool = False

    @property
    def actor(self) -> Actor:
        return Actor(self.username, self.role)


@dataclass(frozen=True)
class User:
    """A user account, without its password hash."""

    id: int
    username: str
    display_name: str
    role: Role
    language: str
    active: bool
    created_at: int
    last_login_at: int | None
    password_changed_at: int
    must_change_password: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "language": self.language,
            "active": self.active,
            "created_at": iso(self.created_at),
            "last_login_at": iso(self.last_login_at),
            "password_changed_at": iso(self.password_changed_at),
            "must_change_password": self.must_change_password,
        }


@dataclass(frozen=True)
class Session:
    """One issued token, as the server remembers it."""

    id: str
    username: str
    created_at: int
    expires_at: int
    revoked_at: int | None
    source: str | None
    user_agent: str | None
    #: the last request seen with it (to the minute), None before the first one
    last_seen_at: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "source": self.source,
            "user_agent": self.user_agent,
            "last_seen_at": iso(self.last_seen_at),
        }


@dataclass(frozen=True)
class LoginResult:
    """A fresh session: the token to hand to the client and who it belongs to."""

    token: str
    expires_at: int
    user: User


@dataclass(frozen=True)
class AuthPolicy:
    """Token lifetimes, the lockout rule and the password hash profile, from the settings."""

    token_hours_admin: int = 24
    token_hours_user: int = 8
    max_failures: int = 5
    lockout_seconds: int = 300
    lockout_max: int = 3600
    account_max_failures: int = 20
    max_concurrent_hashes: int = 2
    hash_wait_seconds: float = 5.0
    password_min_length: int = 12
    password_hash_profile: PasswordHashProfile = "production"

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthPolicy:
        return cls(
            token_hours_admin=settings.token_hours_admin,
            token_hours_user=settings.token_hours_user,
            max_failures=settings.login_max_failures,
            lockout_seconds=settings.login_lockout_seconds,
            lockout_max=settings.login_lockout_max_seconds,
            account_max_failures=settings.login_account_max_failures,
            max_concurrent_hashes=settings.login_max_concurrent_hashes,
            hash_wait_seconds=settings.login_hash_wait_seconds,
            password_min_length=settings.password_min_length,
            password_hash_profile=settings.password_hash_profile,
        )

    def token_seconds(self, role: str) -> int:
        hours = self.token_hours_admin if role == Role.ADMIN else self.token_hours_user
        return hours * 3600
