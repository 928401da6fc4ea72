"""Domain outcomes to DIMSE status codes: the one place where they get wire values.

References
----------
PS3.4 B.2.3 (Storage statuses), C.4.1.1.4 / C.4.2.1.5 / C.4.3.1.4 (Q/R statuses),
PS3.7 Annex C (general statuses).
"""

from __future__ import annotations

from klinika.errors import RejectReason

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
WARNING_COERCED = 0xB000
NOT_AUTHORIZED = 0x0124
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
FIND_UNABLE_TO_PROCESS = 0xC000
IDENTIFIER_MISMATCH = 0xA900
MOVE_DESTINATION_UNKNOWN = 0xA801
SUBOPERATIONS_FAILED = 0xA702
#: DIMSE-N statuses (PS3.7 C.4; MPPS PS3.4 F.7.2, Storage Commitment J.3.2)
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_OBJECT_INSTANCE = 0x0112
INVALID_ARGUMENT_VALUE = 0x0115
CLASS_INSTANCE_CONFLICT = 0x0119
MISSING_ATTRIBUTE = 0x0120
NO_SUCH_ACTION_TYPE = 0x0123
#: Error ID of an N-SET on an MPPS that is COMPLETED or DISCONTINUED (PS3.4 F.7.2.2.4.2)
MPPS_NO_LONGER_UPDATABLE = 0xA710

#: C-STORE failure status for each rejection reason of ``Archive.store`` (PS3.4 B.2.3): every
#: member of :class:`~klinika.errors.RejectReason`; a test keeps the table complete.
STORE_FAILURES: dict[RejectReason, int] = {
    RejectReason.UNREADABLE: CANNOT_UNDERSTAND,
    RejectReason.MISSING_ATTRIBUTE: DATASET_MISMATCH,
    RejectReason.INVALID_UID: DATASET_MISMATCH,
    RejectReason.INVALID_CHARSET: DATASET_MISMATCH,
    RejectReason.STUDY_MISMATCH: DATASET_MISMATCH,
    RejectReason.UNSUPPORTED_TRANSFER_SYNTAX: CANNOT_UNDERSTAND,
    RejectReason.TOO_LARGE: OUT_OF_RESOURCES,
    RejectReason.NOT_AUTHORIZED: NOT_AUTHORIZED,
    RejectReason.DUPLICATE: DATASET_MISMATCH,
    RejectReason.STORAGE_FULL: OUT_OF_RESOURCES,
    RejectReason.UNSUPPORTED_MEDIA_TYPE: CANNOT_UNDERSTAND,
    RejectReason.UNSUPPORTED_DOCUMENT: CANNOT_UNDERSTAND,
    RejectReason.PATIENT_MISMATCH: DATASET_MISMATCH,
    RejectReason.STORAGE_UNAVAILABLE: OUT_OF_RESOURCES,
}


def store_status(reason: RejectReason | None) -> int:
    """The C-STORE failure status of a rejected instance. ``Archive.store`` gives every
    rejection its reason; one without (a bug) is a processing failure, said as such."""
    if reason is None:
        return PROCESSING_FAILURE
    return STORE_FAILURES[reason]
