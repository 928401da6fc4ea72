"""Errors of the auth room. No HTTP codes here: ``web.errors`` maps them."""

from __future__ import annotations

from klinika.errors import KlinikaError, NotFound


class Unauthenticated(KlinikaError):
    """No valid session: missing, malformed, forged, expired or revoked token."""


class Forbidden(KlinikaError):
    """The principal is known but its role may not do this action."""

    def __init__(self, message: str, action: str) -> None:
        super().__init__(message)
        self.action = action


class CrossSiteRequest(KlinikaError):
    """An unsafe request that may come from another site (no proof of our origin or form)."""


class PasswordChangeRequired(KlinikaError):
    """The account's password was generated for it and must be changed before anything else."""


class LoginThrottled(KlinikaError):
    """Too many failed logins for this account; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidAccount(KlinikaError):
    """A username, role, language, display name or password that breaks a rule."""


class PasswordRejected(InvalidAccount):
    """A password the policy refuses: ``rule`` names which rule (``too-short``, ``too-long``,
    ``too-few-characters``, ``common``, ``username``, ``wrong-current``), ``limit`` its
    number, so that pages can say it in the user's language."""

    def __init__(self, message: str, rule: str, limit: int = 0) -> None:
        super().__init__(message)
        self.rule = rule
        self.limit = limit


class UserExists(KlinikaError):
    """A user with this username already exists."""


class UnknownUser(NotFound):
    """No user (or session) by that name or id."""
