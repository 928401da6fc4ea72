"""Coded values have one typed home each, and every table keyed by one maps all its members."""

from __future__ import annotations

from collections.abc import Collection
from enum import Enum

import pytest

from klinika.audit.atna import OUTCOMES
from klinika.audit.outcomes import Outcome
from klinika.auth.permissions import PERMISSIONS, USER_ROLES, Role
from klinika.dicomweb.stow import FAILURE_REASONS
from klinika.dimse.status import STORE_FAILURES, store_status
from klinika.dimse.workflow import FAILURE_REASONS as COMMITMENT_FAILURES
from klinika.errors import InvalidInstance, RejectReason
from klinika.fhir.resources import REQUEST_STATUS
from klinika.reports.labels import STATUS_LABELS as REPORT_LABELS
from klinika.reports.states import ReportState, VersionStatus, version_state
from klinika.web.pages.context import ROLE_LABELS
from klinika.web.pages.labels import OUTCOME_LABELS
from klinika.web.pages.schedule import PERFORMED_LABELS
from klinika.web.pages.schedule import STATUS_LABELS as STEP_LABELS
from klinika.web.pages.upload import REJECT_LABELS
from klinika.workflow.records import STEP_STATUS_OF_PERFORMED, PerformedStatus, StepStatus
from klinika.workflow.service import FailureReason

#: (table, the enum its keys must cover entirely)
COMPLETE_TABLES: dict[str, tuple[Collection[object], type[Enum]]] = {
    "dimse.status.STORE_FAILURES": (STORE_FAILURES, RejectReason),
    "dicomweb.stow.FAILURE_REASONS": (FAILURE_REASONS, RejectReason),
    "web.pages.upload.REJECT_LABELS": (REJECT_LABELS, RejectReason),
    "reports.labels.STATUS_LABELS": (REPORT_LABELS, ReportState),
    "web.pages.schedule.STATUS_LABELS": (STEP_LABELS, StepStatus),
    "web.pages.schedule.PERFORMED_LABELS": (PERFORMED_LABELS, PerformedStatus),
    "workflow.records.STEP_STATUS_OF_PERFORMED": (STEP_STATUS_OF_PERFORMED, PerformedStatus),
    "fhir.resources.REQUEST_STATUS": (REQUEST_STATUS, StepStatus),
    "audit.atna.OUTCOMES": (OUTCOMES, Outcome),
    "dimse.workflow.FAILURE_REASONS": (COMMITMENT_FAILURES, FailureReason),
    "web.pages.labels.OUTCOME_LABELS": (OUTCOME_LABELS, Outcome),
}


@pytest.mark.parametrize("name", sorted(COMPLETE_TABLES))
def test_every_member_of_the_enum_is_in_the_table(name: str) -> None:
    table, members = COMPLETE_TABLES[name]
    assert set(table) == set(members), set(members) ^ set(table)


def test_rejections_get_the_statuses_of_the_standard() -> None:
    """PS3.4 B.2.3: out of resources (A7xx), data set does not match SOP class (A9xx),
    cannot understand (Cxxx); PS3.7 C.5.8 not authorized; PS3.4 GG.4 (STOW failure reasons)."""
    assert store_status(RejectReason.TOO_LARGE) == 0xA700
    assert store_status(RejectReason.NOT_AUTHORIZED) == 0x0124
    assert store_status(RejectReason.UNREADABLE) == 0xC000
    assert FAILURE_REASONS[RejectReason.UNSUPPORTED_TRANSFER_SYNTAX] == 0xC122
    assert FAILURE_REASONS[RejectReason.DUPLICATE] == 0x0111


def test_a_rejection_reason_outside_the_enum_is_refused() -> None:
    assert InvalidInstance("x", RejectReason.INVALID_UID).reason is RejectReason.INVALID_UID
    with pytest.raises(ValueError, match="too-big"):
        InvalidInstance("x", "too-big")  # type: ignore[arg-type]


def test_every_role_a_page_can_show_has_a_label_and_every_role_a_permission() -> None:
    assert set(USER_ROLES) | {Role.MODALITY} == set(ROLE_LABELS)
    assert set().union(*PERMISSIONS.values()) == set(Role)


def test_a_report_version_is_draft_final_or_amended() -> None:
    assert version_state(1, VersionStatus.DRAFT) is ReportState.DRAFT
    assert version_state(1, VersionStatus.FINAL) is ReportState.FINAL
    assert version_state(2, VersionStatus.FINAL) is ReportState.AMENDED
    assert version_state(2, VersionStatus.DRAFT) is ReportState.DRAFT
