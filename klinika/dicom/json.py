"""DICOM JSON (PS3.18 Annex F) of an instance's header, with bulk data replaced by URIs.

The JSON is built once at ingest and stored. Bulk data URIs carry a placeholder base
(:data:`BASE_PLACEHOLDER`) that the DICOMweb edge replaces with the request's own base URL,
so stored metadata does not depend on the host name clients use.

References
----------
PS3.18 §F.2 (DICOM JSON model), §F.2.6 (BulkDataURI).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import BYTES_VR, FLOAT_VR, INT_VR, STR_VR, VR, PersonName

log = logging.getLogger(__name__)
BASE_PLACEHOLDER = "klinika-base:"
BULK_DATA_THRESHOLD = 1024
PIXEL_DATA_TAGS = ("7FE00010", "7FE00008", "7FE00009")
#: VRs whose values pydicom hands over as text, numbers or bytes (pydicom's tables of PS3.5
#: §6.2); the rest (AT, ambiguous VRs such as "US or SS") go through pydicom's conversion.
_TEXT_VRS = frozenset(vr.value for vr in STR_VR - FLOAT_VR - INT_VR - {VR.PN})
_INT_VRS = frozenset(vr.value for vr in INT_VR - {VR.AT})
_FLOAT_VRS = frozenset(vr.value for vr in FLOAT_VR)
_BINARY_VRS = frozenset(vr.value for vr in BYTES_VR)


def with_base(document: bytes, base_url: str) -> bytes:
    """Stored DICOM JSON with its placeholder base replaced by ``base_url`` (no trailing /)."""
    return document.replace(BASE_PLACEHOLDER.encode(), base_url.encode())


def instance_path(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """The WADO-RS path of an instance, relative to the DICOMweb root (PS3.18 §10.4.1)."""
    return f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"


def metadata_json(dataset: Dataset, pixel_data_vr: str | None) -> str:
    """The instance's DICOM JSON object as compact text.

    Binary values over :data:`BULK_DATA_THRESHOLD` bytes, and the pixel data, become
    ``BulkDataURI`` entries ``<base>/studies/…/instances/…/bulk/<n>``, where ``n`` numbers the
    bulk elements in the order :func:`iter_bulk_elements` visits them.
    """
    base = BASE_PLACEHOLDER + instance_path(
        str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID), str(dataset.SOPInstanceUID)
    )
    counter = iter(range(1_000_000))

    def bulk_uri(_element: DataElement) -> str:
        return f"{base}/bulk/{next(counter)}"

    as_dict = json_dict(dataset, bulk_uri)
    if pixel_data_vr is not None:
        as_dict["7FE00010"] = {"vr": pixel_data_vr, "BulkDataURI": f"{base}/bulk/pixeldata"}
    return json.dumps(as_dict, ensure_ascii=False, separators=(",", ":"))


def iter_bulk_elements(dataset: Dataset) -> Iterator[DataElement]:
    """Visit the elements :func:`metadata_json` turned into bulk data, in the same order."""
    found: list[DataElement] = []

    def collect(element: DataElement) -> str:
        found.append(element)
        return ""

    json_dict(dataset, collect)
    yield from found


def json_dict(dataset: Dataset, bulk_handler: Callable[[DataElement], str]) -> dict[str, Any]:
    """The data set's DICOM JSON, leaving out elements whose value cannot be written.

    Each element is converted as pydicom's ``DataElement.to_json_dict`` converts it (same
    output, checked by ``tests/dicom/test_json_builder.py``), but plain values (text,
    numbers, person names, binary, sequences of such) go straight to JSON without pydicom's
    per-element bookkeeping, which was a fifth of the CPU of ingest; anything else is
    handed to pydicom. An element that cannot be converted is left out, and so is a
    sequence holding one (pydicom raises for the whole sequence).

    Not pydicom's ``to_json_dict(suppress_invalid_tags=True)``: that switches pydicom's
    process-wide reading mode to RAISE while it runs, so another thread validating an instance
    at the same moment would refuse what it otherwise accepts.
    """
    as_dict: dict[str, Any] = {}
    for tag, element in list(dataset.items()):
        try:
            as_dict[f"{tag:08X}"] = _element_dict(_converted(dataset, tag, element), bulk_handler)
        except Exception as exc:  # pydicom raises many types for values it cannot convert
            log.warning("element %s left out of the DICOM JSON: %s", tag, exc)
    return as_dict


def _item_dict(item: Dataset, bulk_handler: Callable[[DataElement], str]) -> dict[str, Any]:
    """A sequence item's DICOM JSON; raises if any element cannot be converted."""
    return {
        f"{tag:08X}": _element_dict(_converted(item, tag, element), bulk_handler)
        for tag, element in list(item.items())
    }


def _converted(
    dataset: Dataset, tag: BaseTag, element: DataElement | RawDataElement
) -> DataElement:
    """The element as ``dataset[tag]`` gives it: one already converted (validation converts
    every top-level element) is taken as it is, a raw one is converted (and kept) by pydicom."""
    return element if isinstance(element, DataElement) else dataset[tag]


def _element_dict(element: DataElement, bulk_handler: Callable[[DataElement], str]) -> Any:
    """One element as ``DataElement.to_json_dict`` writes it (pydicom 3.0), plain values
    directly; a value of another shape (a lone multi-value, a deferred buffer, an ambiguous
    VR, AT, decimal DS, dates as objects) is left to pydicom.

    References
    ----------
    PS3.18 §F.2.2 (attribute objects), §F.2.3 (VR encodings), §F.2.7 (InlineBinary).
    """
    vr, value = element.VR, element.value
    if vr == "SQ":
        if isinstance(value, Sequence) and all(isinstance(item, Dataset) for item in value):
            return {"vr": vr, "Value": [_item_dict(item, bulk_handler) for item in value]}
    elif value is None:  # VM 0
        return {"vr": vr}
    elif isinstance(value, MultiValue) and len(value) == 1:
        pass  # pydicom wraps it in a list of one multi-value: its result, not ours
    elif vr in _TEXT_VRS:
        if isinstance(value, str):
            return {"vr": vr, "Value": [value]} if value else {"vr": vr}
        if isinstance(value, MultiValue):
            return {"vr": vr, "Value": list(value)} if value else {"vr": vr}
    elif vr in _INT_VRS or vr in _FLOAT_VRS:
        number = int if vr in _INT_VRS else float
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"vr": vr, "Value": [number(value)]}
        if isinstance(value, MultiValue) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            return {"vr": vr, "Value": [number(v) for v in value]} if value else {"vr": vr}
    elif vr == "PN":
        if isinstance(value, PersonName):
            return {"vr": vr, "Value": [_name_dict(value)]} if value else {"vr": vr}
        if isinstance(value, MultiValue) and all(isinstance(v, PersonName) for v in value):
            return {"vr": vr, "Value": [_name_dict(v) for v in value]} if value else {"vr": vr}
    elif vr in _BINARY_VRS and isinstance(value, bytes):
        if not value:
            return {"vr": vr}
        # pydicom's threshold compares raw bytes against 3/4 of the base64 size
        if len(value) > (BULK_DATA_THRESHOLD // 4) * 3:
            return {"vr": vr, "BulkDataURI": bulk_handler(element)}
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}
    return element.to_json_dict(
        bulk_data_element_handler=bulk_handler, bulk_data_threshold=BULK_DATA_THRESHOLD
    )


def _name_dict(name: PersonName) -> dict[str, str]:
    """A person name's component groups (PS3.18 §F.2.2: Alphabetic, Ideographic, Phonetic)."""
    components = name.components
    groups = {"Alphabetic": components[0]}
    if len(components) > 1:
        groups["Ideographic"] = components[1]
    if len(components) > 2:
        groups["Phonetic"] = components[2]
    return groups


def element_json(vr: str, value: Any) -> dict[str, Any]:
    """One attribute in DICOM JSON form from a plain Python value (None = empty)."""
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        out = []
        for v in values:
            groups = str(v).split("=")
            entry = {
                name: group
                for name, group in zip(
                    ("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False
                )
                if group
            }
            out.append(entry)
        return {"vr": vr, "Value": out}
    if vr in {"IS", "US", "UL", "SS", "SL"}:
        return {"vr": vr, "Value": [int(v) for v in values]}
    if vr in {"DS", "FL", "FD"}:
        return {"vr": vr, "Value": [float(v) for v in values]}
    return {"vr": vr, "Value": [str(v) for v in values]}
