"""DICOM JSON built at ingest: what it leaves out, and that it changes no global state."""

from __future__ import annotations

import pydicom
from pydicom import config
from pydicom.dataelem import DataElement

from klinika.dicom.header import parse_instance
from klinika.dicom.json import json_dict, metadata_json
from tests.conftest import PYDICOM_DATA


def test_json_conversion_keeps_pydicoms_reading_mode_for_other_threads() -> None:
    """pydicom's own ``suppress_invalid_tags`` switches the process to RAISE while it runs;
    another thread validating an instance then refused valid-enough data (badVR.dcm)."""
    dataset = pydicom.dcmread(PYDICOM_DATA / "CT_small.dcm")
    seen: list[int] = []

    def bulk(element: DataElement) -> str:
        seen.append(config.settings.reading_validation_mode)
        return "uri"

    json_dict(dataset, bulk)
    assert seen and set(seen) == {config.WARN}


def test_an_unconvertible_value_is_left_out_and_the_instance_still_stored() -> None:
    parsed = parse_instance((PYDICOM_DATA / "badVR.dcm").read_bytes())  # IS "1A"
    document = metadata_json(parsed.dataset, None)
    assert '"00280008"' not in document and '"00080018"' in document
