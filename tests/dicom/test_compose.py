"""Part-10 from DICOM JSON and PS3.19 XML (the STOW-RS metadata forms): round trips of real
samples, and the trust boundary — whatever arrives, the only error is InvalidInstance."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from klinika.dicom.compose import BulkPart, native_xml_to_json, part10_from_json
from klinika.dicom.header import parse_instance
from klinika.errors import InvalidInstance
from tests.conftest import PYDICOM_DATA

ROUND_TRIP = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "SC_rgb.dcm"]


def without_meta(ds: pydicom.Dataset) -> dict:
    return {k: v for k, v in ds.to_json_dict(bulk_data_threshold=1 << 30).items()}


@pytest.mark.parametrize("name", [n for n in ROUND_TRIP if (PYDICOM_DATA / n).exists()])
def test_json_round_trip_keeps_every_element(name: str) -> None:
    """Sequences, numbers, names and binary values (InlineBinary) come back as they were."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = pydicom.dcmread(PYDICOM_DATA / name, force=True)
        document = without_meta(original)
        part10 = part10_from_json(json.loads(json.dumps(document)), {})
        parsed = parse_instance(part10)
        back = pydicom.dcmread(io.BytesIO(part10))
        assert without_meta(back) == document
    assert parsed.sop_instance_uid == original.SOPInstanceUID


def test_xml_from_dcmtk_gives_the_same_data_set_as_json(tmp_path: Path) -> None:
    """dcm2xml's PS3.19 document of a CT, its pixel data as a BulkData part, becomes the same
    data set pydicom reads from the file (sequences and person names included)."""
    source = PYDICOM_DATA / "rtstruct.dcm"
    xml = subprocess.run(
        ["dcm2xml", "-nat", "+Xn", "+M", "+Eu", str(source)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    document = native_xml_to_json(xml)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = without_meta(pydicom.dcmread(source, force=True))
        back = pydicom.dcmread(io.BytesIO(part10_from_json(document, {})))
        got = without_meta(back)
    assert got.keys() == expected.keys()
    assert got["30060020"] == expected["30060020"]  # StructureSetROISequence
    assert got["00100010"] == expected["00100010"]


def test_missing_bulk_data_names_the_uri() -> None:
    document = without_meta(pydicom.dcmread(PYDICOM_DATA / "CT_small.dcm"))
    document["7FE00010"] = {"vr": "OW", "BulkDataURI": "http://elsewhere/bulk/1"}
    with pytest.raises(InvalidInstance, match="elsewhere/bulk/1") as caught:
        part10_from_json(document, {"other": [BulkPart("application/octet-stream", b"")]})
    assert caught.value.reason == "missing-attribute"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_as_xml_give_a_data_set_or_invalid_instance(payload: bytes) -> None:
    with contextlib.suppress(InvalidInstance):
        assert isinstance(native_xml_to_json(payload), dict)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
elements = st.fixed_dictionaries(
    {"vr": st.sampled_from(["PN", "SQ", "UI", "DS", "US", "OB", "AT", "XX"])},
    optional={"Value": st.lists(json_values, max_size=3), "InlineBinary": st.text(max_size=8)},
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["00080016", "00080018", "00100010", "7FE00010", "00081115", "0020000D", "zz"]
        ),
        elements,
    )
)
def test_any_json_data_set_gives_part10_or_invalid_instance(document: dict) -> None:
    try:
        part10 = part10_from_json(document, {})
    except InvalidInstance:
        return
    assert part10[128:132] == b"DICM"
