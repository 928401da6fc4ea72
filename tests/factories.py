"""Small, valid DICOM instances built in memory for tests."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

_counter = iter(range(1, 10**9))
#: The patient number of each study made here: instances of one study name one patient, as the
#: archive requires (``patient-mismatch``); a new study gets a new patient.
_study_patients: dict[str, int] = {}


def make_instance(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    rows: int = 8,
    columns: int = 8,
    frames: int = 1,
    charset: str = "ISO_IR 192",
    transfer_syntax: str = ExplicitVRLittleEndian,
    **attributes: Any,
) -> bytes:
    """A CT instance as Part-10 bytes (uncompressed, in ``transfer_syntax``); keyword
    arguments set any attribute. Instances of one study name the same patient unless
    ``PatientID``/``PatientName`` say otherwise."""
    n = next(_counter)
    study_uid = study_uid or generate_uid()
    patient = _study_patients.setdefault(study_uid, n)
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName = f"Test^Patient{patient}"
    ds.PatientID = f"PID{patient}"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = n
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    pixels = (np.arange(rows * columns * frames, dtype=np.uint16) * 7 + n) % 4096
    ds.PixelData = pixels.tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
