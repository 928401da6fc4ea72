"""Changing attributes of a stored Part-10 file (study management): validated values, the
character set widened when a new value needs it, everything else kept as it was.

The pixel data and every attribute not named are written back unchanged (encapsulated
frames as they are); the file meta keeps the transfer syntax and the SOP Instance UID.

References
----------
PS3.5 §6.2 (value representations), PS3.5 §6.1.2.3 and PS3.3 C.12.1.1.2 (Specific Character
Set), PS3.10 §7.1 (the file meta information).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from pydicom import config, dcmread
from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

from klinika.errors import InvalidChange

#: What an admin may change, per level (PS3.3 C.7.1.1 Patient, C.7.2.1 General Study).
PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDs",
)
STUDY_KEYWORDS = (
    "StudyDescription",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDate",
    "StudyTime",
    "StudyID",
)
#: What a study is, beyond its patient: copied to a series that joins another study.
STUDY_IDENTITY = ("StudyInstanceUID", *STUDY_KEYWORDS)
#: What a patient is: copied to the studies of a merged patient.
PATIENT_IDENTITY = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
)
_UTF8 = "ISO_IR 192"
_SEXES = frozenset({"", "M", "F", "O"})


def validated(changes: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, str | None]:
    """``changes`` (keyword → text, or None/"" to empty it) checked against the allowed
    keywords and each attribute's VR; the message names the attribute.

    Raises
    ------
    InvalidChange
        An unknown or not allowed keyword, or a value its VR does not admit.
    """
    out: dict[str, str | None] = {}
    for keyword, raw in changes.items():
        if keyword not in allowed:
            raise InvalidChange(f"{keyword} cannot be changed here (allowed: {', '.join(allowed)})")
        value = None if raw is None else str(raw).strip()
        if value:
            vr = dictionary_VR(tag_for_keyword(keyword) or 0)
            try:
                validate_value(vr, value, config.RAISE)
            except ValueError as exc:
                raise InvalidChange(f"{keyword}: {exc}") from None
            if keyword == "PatientSex" and value not in _SEXES:
                raise InvalidChange("PatientSex must be M, F or O")
        if keyword == "PatientID" and not value:
            raise InvalidChange("PatientID cannot be empty")
        out[keyword] = value or None
    return out


def values_of(dataset: Dataset, keywords: tuple[str, ...]) -> dict[str, str | None]:
    """The text of each keyword in ``dataset`` (None when absent or empty)."""
    out: dict[str, str | None] = {}
    for keyword in keywords:
        value = dataset.get(keyword)
        if value is None or value == "":
            out[keyword] = None
        elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            out[keyword] = "\\".join(str(v) for v in value)
        else:
            out[keyword] = str(value)
    return out


def rewrite(part10: bytes, changes: Mapping[str, str | None]) -> bytes:
    """The Part-10 file with ``changes`` applied (None removes the attribute's value; a
    type 1 UID such as StudyInstanceUID is always given a value by the caller).

    Text that the file's character set cannot hold switches the data set to UTF-8
    (``ISO_IR 192``), after decoding every text value so nothing is re-labelled wrongly.
    """
    dataset = dcmread(io.BytesIO(part10))
    if any(value and not _encodable(dataset, value) for value in changes.values()):
        dataset.decode()
        dataset.SpecificCharacterSet = _UTF8
    for keyword, value in changes.items():
        if value is None:
            if keyword in dataset:
                dataset[keyword].value = ""
        else:
            vr = dictionary_VR(tag_for_keyword(keyword) or 0)
            setattr(dataset, keyword, value.split("\\") if "\\" in value and vr != "PN" else value)
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _encodable(dataset: Dataset, value: str) -> bool:
    """Whether ``value`` can be written in the data set's declared character set (one
    single-byte set or UTF-8; code extensions are left alone unless the value is ASCII)."""
    if value.isascii():
        return True
    declared = dataset.get("SpecificCharacterSet") or ""
    charsets = [str(c) for c in ([declared] if isinstance(declared, str) else declared) if c]
    if _UTF8 in charsets:
        return True
    if len(charsets) != 1 or charsets[0] not in python_encoding:
        return False
    try:
        value.encode(python_encoding[charsets[0]])
    except (LookupError, UnicodeEncodeError):
        return False
    return True
