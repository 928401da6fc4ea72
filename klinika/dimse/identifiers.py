"""C-FIND / C-MOVE / C-GET identifiers to queries of the one query engine, and answers back.

References
----------
PS3.4 C.4.1.1.3 (identifier), C.2.2.1 (keys), PS3.18 §F.2 (DICOM JSON, the engine's output).
"""

from __future__ import annotations

import struct
from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from klinika.dicom.attributes import Level
from klinika.errors import InvalidQuery
from klinika.index.query import Query

_SKIP = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "InstanceAvailability"}


#: Study Root information models (FIND, MOVE, GET): they have no PATIENT level (PS3.4 C.6.2).
STUDY_ROOT_MODELS = frozenset(
    {
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelGet,
    }
)


def identifier_level(identifier: Dataset, model: str | None = None) -> Level:
    """The Query/Retrieve Level of an identifier, checked against the information model.

    References
    ----------
    PS3.4 C.4.1.1.3.1 (Query/Retrieve Level), C.6.1 (Patient Root), C.6.2 (Study Root).
    """
    raw = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    if not (raw == "IMAGE" or raw in Level.__members__):
        raise InvalidQuery(f"QueryRetrieveLevel {raw!r} is not PATIENT, STUDY, SERIES or IMAGE")
    level = Level[raw]
    if level == Level.PATIENT and model in STUDY_ROOT_MODELS:
        raise InvalidQuery("the Study Root information model has no PATIENT level")
    return level


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(_as_text(v) for v in value)
    if isinstance(value, PersonName):
        return str(value)
    return str(value)


def identifier_query(identifier: Dataset, model: str | None = None) -> tuple[Query, list[str]]:
    """The query for an identifier, and the keywords the answer must carry (its keys).

    ``model`` is the SOP Class UID of the information model the request was sent on.

    Raises
    ------
    InvalidQuery
        When the level is missing or not one of the model's levels, or a key is malformed.
    """
    level = identifier_level(identifier, model)
    match: dict[str, str] = {}
    for element in identifier:
        keyword = element.keyword
        if not keyword or keyword in _SKIP or element.VR == "SQ":
            continue
        match[keyword] = _as_text(element.value)
    query = Query(level, match=match, include_parents=True, strict=False)
    return query, list(match)


def answer_dataset(found: dict[str, Any], keys: list[str], level: Level, ae_title: str) -> Dataset:
    """A C-FIND response identifier: exactly the requested keys, filled from a match."""
    requested: dict[str, Any] = {}
    for keyword in keys:
        tag = tag_for_keyword(keyword)
        if tag is None:
            continue
        tag_hex = f"{tag:08X}"
        requested[tag_hex] = found.get(tag_hex) or {"vr": dictionary_VR(tag)}
    answer = Dataset.from_json(requested)
    answer.QueryRetrieveLevel = level.name
    answer.RetrieveAETitle = ae_title
    if not all(text.isascii() for text in _texts(requested)):
        answer.SpecificCharacterSet = "ISO_IR 192"
    return answer


def _texts(document: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for value in document.values():
        for item in value.get("Value", []):
            if isinstance(item, dict):
                out.extend(str(v) for v in item.values())
            else:
                out.append(str(item))
    return out


#: VRs whose values are text in DICOM JSON and in the encoded answer (PS3.5 §6.2).
_TEXT_ANSWER_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "IS", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT", "PN"}
)
#: Binary integer VRs and their little endian struct codes (PS3.5 §6.2).
_INTEGER_ANSWER_VRS = {"US": "H", "SS": "h", "UL": "L", "SL": "l"}
#: Explicit VR elements with a 4-byte length (PS3.5 §7.1.2).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


@cache
def _key_tag(keyword: str) -> tuple[int, str] | None:
    tag = tag_for_keyword(keyword)
    return None if tag is None else (tag, f"{tag:08X}")


def answer_bytes(
    found: dict[str, Any], keys: list[str], level: Level, ae_title: str, *, implicit_vr: bool
) -> bytes | None:
    """The C-FIND response identifier of :func:`answer_dataset`, encoded directly in little
    endian (implicit or explicit VR), or None when an attribute is not plain text (the caller
    then encodes :func:`answer_dataset` with pydicom). One answer of :class:`AnswerEncoder`.
    """
    return AnswerEncoder(keys, level, ae_title, implicit_vr=implicit_vr)(found)


class AnswerEncoder:
    """C-FIND response identifiers for one request's keys, encoded directly in little endian
    (implicit or explicit VR): what the keys need (tags, VRs, element headers, the order) is
    worked out once, not per answer.

    Same elements, values and SpecificCharacterSet as :func:`answer_dataset` with pydicom's
    encoding, without building a pydicom data set per answer.

    References
    ----------
    PS3.5 §7.1 (data elements), §6.2 (value padding), §6.1.2.3 (ISO_IR 192), PS3.4 C.4.1.1.3.2.
    """

    def __init__(self, keys: list[str], level: Level, ae_title: str, *, implicit_vr: bool) -> None:
        self.implicit_vr = implicit_vr
        tags: dict[int, tuple[str, str]] = {}
        for keyword in keys:
            resolved = _key_tag(keyword)
            if resolved is not None:
                tag, tag_hex = resolved
                tags[tag] = (tag_hex, dictionary_VR(tag))
        fixed = {0x00080052: ("CS", [level.name]), 0x00080054: ("AE", [ae_title])}
        for tag in fixed:
            tags.pop(tag, None)  # the response's own level and AE title win
        self.asks_charset = 0x00080005 in tags
        self.keys = [(tag, *tags[tag]) for tag in sorted(tags)]
        self.fixed = [(tag, vr, texts) for tag, (vr, texts) in sorted(fixed.items())]
        self.fixed_ascii = all(text.isascii() for _, _, texts in self.fixed for text in texts)
        self._headers: dict[tuple[int, str, int], bytes] = {}

    def __call__(self, found: dict[str, Any]) -> bytes | None:
        """The encoded answer for one match, or None when pydicom must encode it."""
        elements: list[tuple[int, str, list[str] | bytes]] = []
        ascii_only = self.fixed_ascii
        for tag, tag_hex, dictionary_vr in self.keys:
            document = found.get(tag_hex)
            if document:
                if "InlineBinary" in document:
                    return None
                vr = document.get("vr") or dictionary_vr
                values = document.get("Value", [])
            else:
                vr, values = dictionary_vr, []
            encoded: list[str] | bytes | None
            if vr in _INTEGER_ANSWER_VRS:
                encoded = _answer_integers(vr, values)
            elif vr in _TEXT_ANSWER_VRS:
                encoded = _answer_texts(vr, values)
                if encoded is not None and ascii_only:
                    ascii_only = all(text.isascii() for text in encoded)
            else:
                encoded = None
            if encoded is None:
                return None
            elements.append((tag, vr, encoded))
        elements += self.fixed
        if not ascii_only:
            if self.asks_charset:
                elements = [element for element in elements if element[0] != 0x00080005]
            elements.append((0x00080005, "CS", ["ISO_IR 192"]))
        elements.sort(key=_tag_of)
        encoding = "ascii" if ascii_only else "utf-8"
        out = bytearray()
        for tag, vr, texts in elements:
            value = texts if isinstance(texts, bytes) else "\\".join(texts).encode(encoding)
            if len(value) > 0xFFFE:
                return None
            if len(value) % 2:
                value += b"\x00" if vr == "UI" else b" "
            out += self._header(tag, vr, len(value))
            out += value
        return bytes(out)

    def _header(self, tag: int, vr: str, length: int) -> bytes:
        key = (tag, vr, length)
        header = self._headers.get(key)
        if header is None:
            header = self._headers[key] = _element_header(tag, vr, length, self.implicit_vr)
        return header


def _tag_of(element: tuple[int, str, list[str] | bytes]) -> int:
    return element[0]


def _answer_texts(vr: str, values: list[Any]) -> list[str] | None:
    texts: list[str] = []
    for value in values:
        if value is None:
            texts.append("")
        elif vr == "PN":
            if not isinstance(value, dict):
                return None
            groups = [str(value.get(group, "")) for group in _PN_GROUPS]
            while groups and not groups[-1]:
                groups.pop()
            texts.append("=".join(groups))
        elif isinstance(value, bool) or not isinstance(value, str | int):
            return None  # a DS as a JSON float: let pydicom format it
        else:
            texts.append(str(value))
    return texts


def _answer_integers(vr: str, values: list[Any]) -> bytes | None:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    try:
        return struct.pack(f"<{len(values)}{_INTEGER_ANSWER_VRS[vr]}", *values)
    except struct.error:
        return None


def _element_header(tag: int, vr: str, length: int, implicit_vr: bool) -> bytes:
    if implicit_vr:
        return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, length)
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length)
