"""The patient and study header of a report, read from the index when it is asked for.

The index holds names already decoded from the data set's character set (ISO-IR 144,
ISO 2022, UTF-8 …) to Unicode, so a Cyrillic name arrives here as Cyrillic text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from klinika.archive import Archive
from klinika.dicom.attributes import Level
from klinika.errors import NotFound
from klinika.i18n import Translator
from klinika.index.query import Query
from klinika.reports.labels import HEADER_LABELS, SEX_LABELS

#: Modalities of documents rather than images: never the report's template modality.
_NON_IMAGE_MODALITIES = frozenset({"DOC", "SR", "KO", "PR", "SEG", "REG", "RTSTRUCT"})

_INCLUDE = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "StudyDescription",
        "AccessionNumber",
        "ReferringPhysicianName",
        "ModalitiesInStudy",
    }
)


def person_name(value: Any) -> str:
    """A DICOM person name (PS3.5 6.2, PN; PS3.18 F.2.2 JSON form) as people read it:
    prefix, given, middle, family and suffix components joined by spaces, family first.

    The alphabetic group is used, else the ideographic, else the phonetic one.
    """
    if isinstance(value, dict):
        value = value.get("Alphabetic") or value.get("Ideographic") or value.get("Phonetic") or ""
    parts = [p.strip() for p in str(value or "").split("^")]
    family, given, middle, prefix, suffix = (parts + [""] * 5)[:5]
    return " ".join(p for p in (prefix, family, given, middle, suffix) if p)


@dataclass(frozen=True)
class StudyHeader:
    """What a report says about its patient and study."""

    study_uid: str
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_date: str
    study_time: str
    modalities: tuple[str, ...]
    study_description: str
    accession_number: str
    referring_physician: str

    @property
    def modality(self) -> str:
        """The study's imaging modality (the first one that is not a document)."""
        images = [m for m in self.modalities if m not in _NON_IMAGE_MODALITIES]
        return images[0] if images else (self.modalities[0] if self.modalities else "")

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["modalities"] = list(self.modalities)
        values["modality"] = self.modality
        return values

    def rows(self, speak: Translator) -> list[tuple[str, str]]:
        """(label, value) pairs in ``speak``'s language, dates in its format."""
        values = {
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "birth_date": speak.format_date(self.birth_date, "long"),
            "sex": speak.gettext(SEX_LABELS[self.sex]) if self.sex in SEX_LABELS else self.sex,
            "study_date": speak.format_date(self.study_date, "long"),
            "study_time": speak.format_time(self.study_time),
            "modality": ", ".join(m for m in self.modalities if m != "DOC"),
            "study_description": self.study_description,
            "accession_number": self.accession_number,
            "referring_physician": self.referring_physician,
        }
        return [(speak.gettext(label), values[key]) for key, label in HEADER_LABELS.items()]


def _text(match: dict[str, Any], tag: str) -> str:
    values = match.get(tag, {}).get("Value") or []
    return str(values[0]) if values and values[0] is not None else ""


def study_header(archive: Archive, study_uid: str) -> StudyHeader:
    """The header of ``study_uid``, read through the one query engine.

    Raises
    ------
    NotFound
        When the study is not in the archive.
    """
    found = archive.search(
        Query(Level.STUDY, match={"StudyInstanceUID": study_uid}, include=_INCLUDE, limit=1)
    ).matches
    if not found:
        raise NotFound(f"study {study_uid} is not in the archive")
    match = found[0]
    names = match.get("00100010", {}).get("Value") or [""]
    referring = match.get("00080090", {}).get("Value") or [""]
    modalities = tuple(str(m) for m in match.get("00080061", {}).get("Value") or [] if m)
    return StudyHeader(
        study_uid=study_uid,
        patient_name=person_name(names[0]),
        patient_id=_text(match, "00100020"),
        birth_date=_text(match, "00100030"),
        sex=_text(match, "00100040").upper(),
        study_date=_text(match, "00080020"),
        study_time=_text(match, "00080030"),
        modalities=modalities,
        study_description=_text(match, "00081030"),
        accession_number=_text(match, "00080050"),
        referring_physician=person_name(referring[0]),
    )
