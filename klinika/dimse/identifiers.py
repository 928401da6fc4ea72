"""C-FIND / C-MOVE / C-GET identifiers to queries of the one query engine, and answers back.

References
----------
PS3.4 C.4.1.1.3 (identifier), C.2.2.1 (keys), PS3.18 §F.2 (DICOM JSON, the engine's output).
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from klinika.dicom.attributes import Level
from klinika.errors import InvalidQuery
from klinika.index.query import Query

_SKIP = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "InstanceAvailability"}


#: Study Root information models (FIND, MOVE, GET): they have no PATIENT level (PS3.4 C.6.2).
STUDY_ROOT_MODELS = frozenset(
    {
        "1.2.840.10008.5.1.4.1.2.2.1",
        "1.2.840.10008.5.1.4.1.2.2.2",
        "1.2.840.10008.5.1.4.1.2.2.3",
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
