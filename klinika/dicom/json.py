"""DICOM JSON (PS3.18 Annex F) of an instance's header, with bulk data replaced by URIs.

The JSON is built once at ingest and stored. Bulk data URIs carry a placeholder base
(:data:`BASE_PLACEHOLDER`) that the DICOMweb edge replaces with the request's own base URL,
so stored metadata does not depend on the host name clients use.

References
----------
PS3.18 §F.2 (DICOM JSON model), §F.2.6 (BulkDataURI).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

log = logging.getLogger(__name__)
BASE_PLACEHOLDER = "klinika-base:"
BULK_DATA_THRESHOLD = 1024
PIXEL_DATA_TAGS = ("7FE00010", "7FE00008", "7FE00009")


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

    Not pydicom's ``to_json_dict(suppress_invalid_tags=True)``: that switches pydicom's
    process-wide reading mode to RAISE while it runs, so another thread validating an instance
    at the same moment would refuse what it otherwise accepts.
    """
    as_dict: dict[str, Any] = {}
    for tag in dataset.keys():  # noqa: SIM118 (iterating a Dataset yields its elements)
        try:
            as_dict[f"{tag:08X}"] = dataset[tag].to_json_dict(
                bulk_data_element_handler=bulk_handler, bulk_data_threshold=BULK_DATA_THRESHOLD
            )
        except Exception as exc:  # pydicom raises many types for values it cannot convert
            log.warning("element %s left out of the DICOM JSON: %s", tag, exc)
    return as_dict


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
