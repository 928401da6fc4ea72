"""The root of Klinika's exception tree. Domain errors carry no wire codes; each edge maps them.

May import: nothing from klinika.
"""

from enum import StrEnum


class RejectReason(StrEnum):
    """Why an instance is not stored: the complete list. Each edge maps every one of them to
    its wire value in a table keyed by this enum (``dimse/status.py``, ``dicomweb/stow.py``,
    the upload page), and a test holds every table to every member."""

    UNREADABLE = "unreadable"
    MISSING_ATTRIBUTE = "missing-attribute"
    INVALID_UID = "invalid-uid"
    INVALID_CHARSET = "invalid-charset"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported-transfer-syntax"
    TOO_LARGE = "too-large"
    STUDY_MISMATCH = "study-mismatch"
    NOT_AUTHORIZED = "not-authorized"
    DUPLICATE = "duplicate"
    STORAGE_FULL = "storage-full"
    STORAGE_UNAVAILABLE = "storage-unavailable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    UNSUPPORTED_DOCUMENT = "unsupported-document"
    PATIENT_MISMATCH = "patient-mismatch"


class KlinikaError(Exception):
    """Base class of every error Klinika raises on purpose."""


class ConfigError(KlinikaError):
    """The settings are invalid; the message names the setting."""


class InvalidInstance(KlinikaError):
    """A data set that cannot be accepted (malformed, missing or invalid attribute).

    ``reason`` is one of :data:`RejectReason` (``missing-attribute``, ``invalid-uid``,
    ``unreadable``, ``too-large`` …); ``str(exc)`` is for humans.
    """

    def __init__(self, message: str, reason: RejectReason = RejectReason.UNREADABLE) -> None:
        super().__init__(message)
        self.reason = RejectReason(reason)


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
