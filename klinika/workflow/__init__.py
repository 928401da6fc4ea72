"""Clinical workflow: the modality worklist's scheduled procedure steps, performed procedure
steps (MPPS) and storage commitment.

Owns the ``scheduled_steps`` and ``performed_steps`` tables and :class:`Schedule`, the one
service that ``/api/worklist``, the console's schedule page, the DIMSE SCPs (Modality
Worklist C-FIND, MPPS, Storage Commitment) and order interfaces (HL7 v2, FHIR) call. Worklist
queries are matched by the index's matching rules (:mod:`klinika.index.matching`).
May import: db, index, audit, dicom, errors.
"""

from klinika.workflow import schema as _schema  # noqa: F401  (registers the workflow tables)
from klinika.workflow.errors import (
    DuplicatePerformedStep,
    InvalidAttribute,
    InvalidStep,
    PerformedStepFinal,
    StepStateError,
    UnknownPerformedStep,
    UnknownStep,
)
from klinika.workflow.items import worklist_item
from klinika.workflow.records import (
    PerformedStatus,
    PerformedStep,
    ScheduledStep,
    StepDetails,
    StepStatus,
)
from klinika.workflow.service import (
    WORKLIST_COLUMNS,
    CommitmentResult,
    FailureReason,
    Schedule,
    StepFilter,
)

__all__ = [
    "WORKLIST_COLUMNS",
    "CommitmentResult",
    "DuplicatePerformedStep",
    "FailureReason",
    "InvalidAttribute",
    "InvalidStep",
    "PerformedStatus",
    "PerformedStep",
    "PerformedStepFinal",
    "Schedule",
    "ScheduledStep",
    "StepDetails",
    "StepFilter",
    "StepStateError",
    "StepStatus",
    "UnknownPerformedStep",
    "UnknownStep",
    "worklist_item",
]
