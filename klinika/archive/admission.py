"""Admission rules: what an instance must hold before the archive keeps it, beyond a valid
header (that is :func:`klinika.dicom.header.parse_instance`).

Each rule returns a :class:`Refusal` (reason code and message) or None; the archive applies
them in :meth:`klinika.archive.Archive.store_many`, the one ingest path. Reason codes:

``unsupported-document``
    An Encapsulated Document whose MIME type is not the one its IOD defines (PS3.3 A.45,
    A.85), e.g. ``text/html``.
``not-authorized``
    An instance of a class the caller may not store, or one whose content is not what a
    derived object of its class holds (an image relabelled as an SR).
``patient-mismatch``
    An instance whose Patient ID, issuer or name differs from the patient its study holds.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from klinika.dicom.header import ParsedInstance
from klinika.dicom.sop import (
    ENCAPSULATED_DOCUMENT_MIME_TYPES,
    PRESENTATION_STATE_SOP_CLASSES,
    SEGMENTATION_SOP_CLASSES,
    SR_SOP_CLASSES,
)
from klinika.errors import RejectReason
from klinika.index.lookups import StudyPatient

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class Refusal:
    """Why an instance is not admitted: a reason code and a message for people."""

    reason: RejectReason
    message: str


def check_document(parsed: ParsedInstance) -> Refusal | None:
    """Encapsulated Documents only with the MIME type their IOD defines.

    References
    ----------
    PS3.3 A.45.1 (PDF), A.45.2 (CDA), A.85.1-3 (STL, OBJ, MTL); C.24.2 Encapsulated Document
    Module (MIME Type of Encapsulated Document, 0042,0012).
    """
    dataset = parsed.dataset
    expected = ENCAPSULATED_DOCUMENT_MIME_TYPES.get(parsed.sop_class_uid)
    holds_document = any(
        keyword in dataset for keyword in ("EncapsulatedDocument", "MIMETypeOfEncapsulatedDocument")
    )
    if expected is None and not holds_document:
        return None
    declared = str(dataset.get("MIMETypeOfEncapsulatedDocument", "")).strip()
    if expected is None:
        return Refusal(
            RejectReason.UNSUPPORTED_DOCUMENT,
            f"SOP class {parsed.sop_class_uid} is not an Encapsulated Document class, "
            f"but the instance carries an encapsulated document ({declared or 'no type'})",
        )
    if declared.lower() != expected:
        return Refusal(
            RejectReason.UNSUPPORTED_DOCUMENT,
            f"an Encapsulated Document of class {parsed.sop_class_uid} must have MIME type "
            f"{expected}, not {declared or 'none'} (PS3.3 A.45/A.85)",
        )
    return None


def check_derived(parsed: ParsedInstance) -> Refusal | None:
    """For callers who may store derived objects only (``dicom:annotate``): the content must be
    what the class says, not an image under a derived SOP Class UID.

    References
    ----------
    PS3.3 A.35 (SR: SR Document Content, no pixel data), A.33.1 (GSPS: Displayed Area,
    no pixel data), A.51 (Segmentation: Segment Sequence, binary or fractional pixels).
    """
    dataset, sop_class = parsed.dataset, parsed.sop_class_uid
    what = f"the instance declares SOP class {sop_class}"
    if sop_class in SR_SOP_CLASSES or sop_class in PRESENTATION_STATE_SOP_CLASSES:
        if has_pixel_data(parsed):
            return Refusal(RejectReason.NOT_AUTHORIZED, f"{what} but carries pixel data")
        if sop_class in SR_SOP_CLASSES and dataset.get("ValueType") != "CONTAINER":
            return Refusal(RejectReason.NOT_AUTHORIZED, f"{what} but has no SR document content")
        if sop_class in PRESENTATION_STATE_SOP_CLASSES and (
            "DisplayedAreaSelectionSequence" not in dataset
        ):
            return Refusal(RejectReason.NOT_AUTHORIZED, f"{what} but has no Displayed Area module")
        return None
    if sop_class in SEGMENTATION_SOP_CLASSES:
        if not dataset.get("SegmentSequence"):
            return Refusal(RejectReason.NOT_AUTHORIZED, f"{what} but has no Segment Sequence")
        if dataset.get("BitsAllocated") not in (1, 8) or not has_pixel_data(parsed):
            return Refusal(
                RejectReason.NOT_AUTHORIZED,
                f"{what} but its pixels are not binary or fractional segments",
            )
        return None
    return Refusal(
        RejectReason.NOT_AUTHORIZED, f"storing SOP class {sop_class} is not allowed here"
    )


def check_patient(
    dataset: Dataset,
    study_uid: str,
    stored: StudyPatient | None,
    *,
    normalize: Callable[[object], str | None],
) -> Refusal | None:
    """An instance joins its study only with the study's patient: same Patient ID, same
    Issuer of Patient ID, same Patient's Name compared through ``normalize`` (PS3.3 C.7.1.1:
    the patient is the subject of every instance of the study). ``stored.name`` is already
    normalized."""
    if stored is None:
        return None
    given = StudyPatient(
        str(dataset.get("PatientID", "") or ""),
        _text(dataset.get("IssuerOfPatientID")),
        normalize(dataset.get("PatientName")),
    )
    for label, mine, theirs in (
        ("Patient ID", given.patient_id, stored.patient_id),
        ("Issuer of Patient ID", given.issuer, stored.issuer),
        ("Patient's Name", given.name, stored.name),
    ):
        if (mine or None) != (theirs or None):
            return Refusal(
                RejectReason.PATIENT_MISMATCH,
                f"{label} {mine or '(empty)'!r} is not the patient of study {study_uid} "
                f"(it holds {theirs or '(empty)'!r})",
            )
    return None


def has_pixel_data(parsed: ParsedInstance) -> bool:
    """Whether the instance carries pixel data (the header parse stops before it)."""
    if parsed.pixel_location is not None:
        return True
    if parsed.transfer_syntax == DeflatedExplicitVRLittleEndian:  # not located: read it all
        full = dcmread(io.BytesIO(parsed.part10))
        return any(keyword in full for keyword in _PIXEL_KEYWORDS)
    return False


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None
