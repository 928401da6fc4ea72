"""Workflow errors: no wire codes; the REST edge and the DIMSE edge map them."""

from __future__ import annotations

from klinika.errors import Conflict, InvalidQuery, NotFound


class InvalidStep(InvalidQuery):
    """A scheduled step's field is missing or malformed; the message names it."""


class UnknownStep(NotFound):
    """No scheduled step has this step id."""


class StepStateError(Conflict):
    """The step is in a state that forbids the change (a completed step cannot be edited)."""


class InvalidAttribute(InvalidQuery):
    """An MPPS attribute is missing (``missing``) or has a value the standard does not allow.

    References
    ----------
    PS3.4 F.7.2.1.4 / F.7.2.2.4 (N-CREATE, N-SET statuses).
    """

    def __init__(self, keyword: str, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.keyword = keyword
        self.missing = missing


class UnknownPerformedStep(NotFound):
    """No MPPS instance has this SOP Instance UID."""


class DuplicatePerformedStep(Conflict):
    """An MPPS instance with this SOP Instance UID exists already."""


class PerformedStepFinal(Conflict):
    """The MPPS is COMPLETED or DISCONTINUED: it may no longer be updated (PS3.4 F.7.2.2.4.2)."""
