"""A signed report as a DICOM Encapsulated PDF instance of its study.

References
----------
PS3.3 A.45.1 (Encapsulated PDF IOD), C.24.1 (Encapsulated Document Series),
C.24.2 (Encapsulated Document), C.8.6.1 (SC Equipment); PS3.5 6.2 (OB values are padded
to an even length), PS3.6 (SOP Class 1.2.840.10008.5.1.4.1.1.104.1).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
)

ENCAPSULATED_PDF_STORAGE = EncapsulatedPDFStorage
#: Series Number of the report series: after any modality's image series.
REPORT_SERIES_NUMBER = 9001
#: Patient (C.7.1.1) and General Study (C.7.2.1) attributes copied from the study, as hex tags.
COPIED_TAGS = (
    "00100010",  # PatientName
    "00100020",  # PatientID
    "00100021",  # IssuerOfPatientID
    "00100030",  # PatientBirthDate
    "00100040",  # PatientSex
    "0020000D",  # StudyInstanceUID
    "00080020",  # StudyDate
    "00080030",  # StudyTime
    "00080050",  # AccessionNumber
    "00080090",  # ReferringPhysicianName
    "00081030",  # StudyDescription
    "00200010",  # StudyID
)
#: Type 2 attributes of those modules: present, empty when the study has no value.
_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
)


@dataclass(frozen=True)
class PdfInstance:
    """What the report adds to the study's data."""

    pdf: bytes
    study_metadata_json: str  # the DICOM JSON of one instance of the study
    series_uid: str
    sop_instance_uid: str
    instance_number: int
    title: str
    signed_at: int


def study_attributes(metadata_json: str) -> Dataset:
    """The patient and study attributes of a stored instance's DICOM JSON (PS3.18 F.2)."""
    data: dict[str, Any] = json.loads(metadata_json)
    subset = {tag: data[tag] for tag in COPIED_TAGS if tag in data}
    return Dataset.from_json(subset)


def encapsulated_pdf(instance: PdfInstance) -> bytes:
    """The Part-10 bytes of an Encapsulated PDF instance (Explicit VR Little Endian, UTF-8)."""
    ds = study_attributes(instance.study_metadata_json)
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    moment = dt.datetime.fromtimestamp(instance.signed_at, dt.UTC)
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = instance.sop_instance_uid
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = instance.series_uid
    ds.SeriesNumber = REPORT_SERIES_NUMBER
    ds.SeriesDescription = instance.title
    ds.Manufacturer = "Klinika PACS"
    ds.ConversionType = "WSD"  # workstation
    ds.InstanceNumber = instance.instance_number
    ds.ContentDate = moment.strftime("%Y%m%d")
    ds.ContentTime = moment.strftime("%H%M%S")
    ds.AcquisitionDateTime = moment.strftime("%Y%m%d%H%M%S") + "+0000"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = instance.title
    concept = Dataset()
    concept.CodeValue = "18748-4"
    concept.CodingSchemeDesignator = "LN"
    concept.CodeMeaning = "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = [concept]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(instance.pdf)
    ds.EncapsulatedDocument = instance.pdf + (b"\x00" if len(instance.pdf) % 2 else b"")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = UID(instance.sop_instance_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
