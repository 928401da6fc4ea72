"""The attributes Klinika indexes, per query/retrieve level, taken from pydicom's dictionary.

One table drives the index schema, what ingest extracts, what QIDO-RS and C-FIND can match,
and what they return by default. Tags and VRs come from the standard's data dictionary
(pydicom), never typed by hand.

References
----------
PS3.18 §10.6.1 (QIDO-RS query keys and Table 10.6.3-3/4/5 default return attributes);
PS3.4 C.6.1.1 / C.6.2.1 (Patient Root / Study Root keys).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import cached_property

from pydicom.datadict import dictionary_VR, tag_for_keyword


class Level(enum.IntEnum):
    """Query/retrieve levels, from the top down (PS3.4 C.3)."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    IMAGE = 3


@dataclass(frozen=True)
class IndexedAttribute:
    """An attribute stored as a column of the level's table."""

    keyword: str
    level: Level
    default_return: bool = True
    derived: bool = False  # computed by the archive, not read from the instance

    @cached_property
    def tag(self) -> int:
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword
        return tag

    @cached_property
    def tag_hex(self) -> str:
        return f"{self.tag:08X}"

    @cached_property
    def vr(self) -> str:
        return dictionary_VR(self.tag)

    @cached_property
    def column(self) -> str:
        """Column name in the index: the keyword in snake case."""
        return _snake(self.keyword)

    @cached_property
    def is_integer(self) -> bool:
        return self.vr in {"IS", "US", "UL", "SS", "SL"}


def _snake(keyword: str) -> str:
    """``SOPInstanceUID`` -> ``sop_instance_uid``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", keyword).lower()


P, ST, SE, IM = Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE

INDEXED_ATTRIBUTES: tuple[IndexedAttribute, ...] = (
    IndexedAttribute("PatientID", P),
    IndexedAttribute("IssuerOfPatientID", P, default_return=False),
    IndexedAttribute("PatientName", P),
    IndexedAttribute("PatientBirthDate", P),
    IndexedAttribute("PatientSex", P),
    IndexedAttribute("StudyInstanceUID", ST),
    IndexedAttribute("StudyDate", ST),
    IndexedAttribute("StudyTime", ST),
    IndexedAttribute("AccessionNumber", ST),
    IndexedAttribute("StudyID", ST),
    IndexedAttribute("StudyDescription", ST),
    IndexedAttribute("ReferringPhysicianName", ST),
    IndexedAttribute("TimezoneOffsetFromUTC", ST, default_return=False),
    IndexedAttribute("PatientAge", ST, default_return=False),
    IndexedAttribute("InstitutionName", ST, default_return=False),
    IndexedAttribute("ModalitiesInStudy", ST, derived=True),
    IndexedAttribute("NumberOfStudyRelatedSeries", ST, derived=True),
    IndexedAttribute("NumberOfStudyRelatedInstances", ST, derived=True),
    IndexedAttribute("SeriesInstanceUID", SE),
    IndexedAttribute("Modality", SE),
    IndexedAttribute("SeriesNumber", SE),
    IndexedAttribute("SeriesDescription", SE),
    IndexedAttribute("SeriesDate", SE, default_return=False),
    IndexedAttribute("SeriesTime", SE, default_return=False),
    IndexedAttribute("BodyPartExamined", SE, default_return=False),
    IndexedAttribute("Laterality", SE, default_return=False),
    IndexedAttribute("ProtocolName", SE, default_return=False),
    IndexedAttribute("Manufacturer", SE, default_return=False),
    IndexedAttribute("PerformedProcedureStepStartDate", SE),
    IndexedAttribute("PerformedProcedureStepStartTime", SE),
    IndexedAttribute("NumberOfSeriesRelatedInstances", SE, derived=True),
    IndexedAttribute("SOPInstanceUID", IM),
    IndexedAttribute("SOPClassUID", IM),
    IndexedAttribute("InstanceNumber", IM),
    IndexedAttribute("Rows", IM),
    IndexedAttribute("Columns", IM),
    IndexedAttribute("BitsAllocated", IM),
    IndexedAttribute("NumberOfFrames", IM),
    IndexedAttribute("ContentDate", IM, default_return=False),
    IndexedAttribute("ContentTime", IM, default_return=False),
    IndexedAttribute("AcquisitionNumber", IM, default_return=False),
    IndexedAttribute("ImageType", IM, default_return=False),
    IndexedAttribute("AvailableTransferSyntaxUID", IM, derived=True),
)

BY_KEYWORD: dict[str, IndexedAttribute] = {a.keyword: a for a in INDEXED_ATTRIBUTES}

#: The attribute whose value identifies a row at each level.
UNIQUE_KEY: dict[Level, str] = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}


def attributes_of(level: Level) -> tuple[IndexedAttribute, ...]:
    """The indexed attributes that live at ``level``."""
    return tuple(a for a in INDEXED_ATTRIBUTES if a.level == level)
