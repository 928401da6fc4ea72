"""The root of Klinika's exception tree. Domain errors carry no wire codes; each edge maps them.

May import: nothing from klinika.
"""

from typing import Literal, get_args

#: Why an instance is not stored: the complete list. Each edge maps every one of them to its
#: wire value (``dimse/status.py``, ``dicomweb/stow.py``), and a test holds the tables to it.
RejectReason = Literal[
    "unreadable",
    "missing-attribute",
    "invalid-uid",
    "invalid-charset",
    "unsupported-transfer-syntax",
    "too-large",
    "study-mismatch",
    "not-authorized",
    "duplicate",
    "storage-full",
    "storage-unavailable",
    "unsupported-media-type",
    "unsupported-document",
    "patient-mismatch",
]
REJECT_REASONS: frozenset[str] = frozenset(get_args(RejectReason))


class KlinikaError(Exception):
    """Base class of every error Klinika raises on purpose."""


class ConfigError(KlinikaError):
    """The settings are invalid; the message names the setting."""


class InvalidInstance(KlinikaError):
    """A data set that cannot be accepted (malformed, missing or invalid attribute).

    ``reason`` is one of :data:`RejectReason` (``missing-attribute``, ``invalid-uid``,
    ``unreadable``, ``too-large`` …); ``str(exc)`` is for humans.
    """

    def __init__(self, message: str, reason: RejectReason = "unreadable") -> None:
        super().__init__(message)
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        self.reason: RejectReason = reason


class StorageFull(KlinikaError):
    """The blob store could not write because the disk is full."""


class StorageUnavailable(KlinikaError):
    """The blob store cannot be reached or answers with errors (object storage down, after
    retries): nothing was stored, and the client may try again later."""


class NotFound(KlinikaError):
    """The study, series, instance or frame asked for is not in the archive."""


class InvalidQuery(KlinikaError):
    """A query parameter or matching key is malformed; the message names it."""


class NotAcceptable(KlinikaError):
    """The requested representation (media type, transfer syntax) cannot be produced."""


class UnsupportedMediaType(KlinikaError):
    """A request body in a format this resource does not take."""


class Conflict(KlinikaError):
    """The resource changed since the caller read it, or is in a state that forbids the change
    (a stale report revision, signing a report that is already signed)."""


class InvalidChange(KlinikaError):
    """A change an admin asked for that cannot be made as given (an attribute that may not
    be changed, a value its VR does not admit); the message names the attribute."""


class RequestTooLarge(KlinikaError):
    """A request body, part or file is larger than a configured limit; the message names it."""
