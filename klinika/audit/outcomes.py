"""How an audited action ended: the one list of outcomes (``audit_events.outcome``)."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How an audited action ended (ATNA EventOutcomeIndicator in :mod:`klinika.audit.atna`)."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"  # the permission check refused it
