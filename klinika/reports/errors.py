"""Errors of the reports room. No HTTP codes here: ``web.errors`` maps them."""

from __future__ import annotations

from klinika.errors import Conflict, InvalidQuery, KlinikaError


class StaleReport(Conflict):
    """The report changed since the caller read it (its revision moved on)."""

    def __init__(self, message: str, revision: int) -> None:
        super().__init__(message)
        self.revision = revision


class ReportStateError(Conflict):
    """The change does not fit the report's state (edit a signed report, sign twice, amend a
    draft)."""


class InvalidReport(InvalidQuery):
    """A report body that breaks a rule (unknown language or section, text too long, a key
    image that is not in the study); the message names it."""


class PdfUnavailable(KlinikaError):
    """The PDF cannot be made on this machine (no fonts installed); the message says why."""
