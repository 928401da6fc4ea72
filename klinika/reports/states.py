"""The coded values of a report's life: what a stored version is, and what a reader is told."""

from __future__ import annotations

from enum import StrEnum


class VersionStatus(StrEnum):
    """What one stored version is (``report_versions.status``): still editable, or signed."""

    DRAFT = "draft"
    FINAL = "final"


class ReportState(StrEnum):
    """What lists and readers are told: never signed, signed once, signed again after an
    amendment (the FHIR DiagnosticReport statuses ``final`` and ``amended`` have these codes)."""

    DRAFT = "draft"
    FINAL = "final"
    AMENDED = "amended"


def version_state(number: int, status: VersionStatus) -> ReportState:
    """The state of version ``number``: draft, final (the first signed version) or amended."""
    if status != VersionStatus.FINAL:
        return ReportState.DRAFT
    return ReportState.FINAL if number == 1 else ReportState.AMENDED
