"""Plain records the archive hands out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from klinika.dicom.frames import PixelLocation
from klinika.dicom.json import PIXEL_DATA_TAGS
from klinika.errors import RejectReason


class StoreStatus(StrEnum):
    """What became of one instance given to the archive (also the ``status`` that upload
    results, the ingest metric's label and audit details carry)."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # the same bytes were already there: nothing written
    REPLACED = "replaced"  # another version of the instance was there: this one replaced it
    REJECTED = "rejected"  # not stored; ``reason`` says why


@dataclass
class StoreOutcome:
    """What happened to one instance given to :meth:`Archive.store`.

    ``reason`` is a short code for rejections, one of :data:`klinika.errors.RejectReason`
    (``unreadable``, ``missing-attribute``, ``too-large`` …); ``message`` says it for people.
    """

    status: StoreStatus
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    reason: RejectReason | None = None
    message: str | None = None
    warnings: list[str] = field(default_factory=list)
    patient_id: str | None = None
    size: int | None = None  # bytes as received, once written

    @property
    def accepted(self) -> bool:
        return self.status != StoreStatus.REJECTED


def audit_subject(studies: Iterable[tuple[str | None, str | None]]) -> dict[str, Any]:
    """What an ingest request was about, for its audit event, from ``(study_uid, patient_id)``
    of each instance: the study and patient when there is one of each, else ``details``
    listing every study with its patient."""
    seen = {study: patient for study, patient in studies if study}
    if not seen:
        return {}
    if len(seen) == 1:
        ((study, patient),) = seen.items()
        return {"study_uid": study, "patient_id": patient}
    patients = set(seen.values())
    subject: dict[str, Any] = {"details": {"studies": dict(sorted(seen.items())[:100])}}
    if len(patients) == 1:
        subject["patient_id"] = patients.pop()
    return subject


@dataclass(frozen=True)
class InstanceRecord:
    """An instance as the index knows it."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    blob_key: str
    blob_size: int
    number_of_frames: int
    pixel_location: PixelLocation | None
    metadata_json: str

    @property
    def has_pixel_data(self) -> bool:
        """Whether the instance has pixel data (of any of the three kinds) to render."""
        return any(f'"{tag}"' in self.metadata_json for tag in PIXEL_DATA_TAGS)


@dataclass(frozen=True)
class MetadataDocument:
    """A ready-to-send DICOM JSON array, with its gzip form and a strong ETag."""

    body: bytes
    gzipped: bytes
    etag: str
