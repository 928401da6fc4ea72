"""Domain outcomes to DIMSE status codes: the one place where they get wire values.

References
----------
PS3.4 B.2.3 (Storage statuses), C.4.1.1.4 / C.4.2.1.5 / C.4.3.1.4 (Q/R statuses),
PS3.7 Annex C (general statuses).
"""

from __future__ import annotations

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
MISSING_ATTRIBUTE = 0x0120
NO_SUCH_ACTION_TYPE = 0x0123
#: Error ID of an N-SET on an MPPS that is COMPLETED or DISCONTINUED (PS3.4 F.7.2.2.4.2)
MPPS_NO_LONGER_UPDATABLE = 0xA710

#: C-STORE status for each rejection reason of ``Archive.store`` (every
#: :data:`klinika.errors.RejectReason`; a test keeps the table complete).
STORE_FAILURES: dict[str, int] = {
    "unreadable": CANNOT_UNDERSTAND,
    "missing-attribute": DATASET_MISMATCH,
    "invalid-uid": DATASET_MISMATCH,
    "invalid-charset": DATASET_MISMATCH,
    "study-mismatch": DATASET_MISMATCH,
    "unsupported-transfer-syntax": CANNOT_UNDERSTAND,
    "too-large": OUT_OF_RESOURCES,
    "not-authorized": NOT_AUTHORIZED,
    "duplicate": DATASET_MISMATCH,
    "storage-full": OUT_OF_RESOURCES,
    "unsupported-media-type": CANNOT_UNDERSTAND,
    "unsupported-document": CANNOT_UNDERSTAND,
    "patient-mismatch": DATASET_MISMATCH,
    "storage-unavailable": OUT_OF_RESOURCES,
}


def store_status(reason: str | None) -> int:
    """The failure status of a rejected instance (unknown reasons: cannot understand)."""
    return STORE_FAILURES.get(reason or "", CANNOT_UNDERSTAND)
