"""The root of Klinika's exception tree. Domain errors carry no wire codes; each edge maps them.

May import: nothing from klinika.
"""


class KlinikaError(Exception):
    """Base class of every error Klinika raises on purpose."""


class ConfigError(KlinikaError):
    """The settings are invalid; the message names the setting."""


class InvalidInstance(KlinikaError):
    """A data set that cannot be accepted (malformed, missing or invalid attribute).

    ``reason`` is a short machine-readable code (``missing-attribute``, ``invalid-uid``,
    ``unreadable``, ``unsupported-transfer-syntax``, ``duplicate``); ``str(exc)`` is for humans.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


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
