"""The tag browser's rows from DICOM JSON: order, names, nesting, private creators, bulk data,
inline binary and long values."""

from __future__ import annotations

import base64

from klinika.dicom.json import BASE_PLACEHOLDER
from klinika.dicom.tag_tree import MAX_VALUE_CHARS, tag_rows


def test_rows_follow_tag_order_nest_items_and_name_private_and_bulk_elements() -> None:
    elements = {
        "7FE00010": {"vr": "OW", "BulkDataURI": BASE_PLACEHOLDER + "/studies/1/bulk/pixeldata"},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Иванов^Иван", "Ideographic": "И"}]},
        "00091001": {"vr": "LO", "Value": ["GE_GENESIS_FF"]},
        "00090010": {"vr": "LO", "Value": ["GEMS_IDEN_01"]},
        "00191001": {"vr": "LO", "Value": ["orphan"]},
        "00082218": {"vr": "SQ", "Value": [{"00080104": {"vr": "LO", "Value": ["Chest"]}}, {}]},
        "00290010": {"vr": "OB", "InlineBinary": base64.b64encode(b"12345").decode()},
        "00081030": {"vr": "LO", "Value": ["x" * 1000]},
        "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
    }
    rows = list(tag_rows(elements, base_url="https://pacs/dicom-web", pixel_data_size=8192))
    tags = [row.tag for row in rows if row.tag and row.depth == 0]
    assert tags == sorted(tags)
    by_tag = {row.tag: row for row in rows if row.tag and row.depth == 0}
    assert by_tag["(0010,0010)"].value == "Иванов^Иван=И"
    assert by_tag["(0010,0010)"].name == "Patient's Name"
    assert by_tag["(0008,0016)"].value == "1.2.840.10008.5.1.4.1.1.2 (CT Image Storage)"
    assert by_tag["(0009,0010)"].name == "Private Creator" and by_tag["(0009,0010)"].private
    assert by_tag["(0009,1001)"].name == "[GEMS_IDEN_01] Full fidelity"
    assert by_tag["(0019,1001)"].private and by_tag["(0019,1001)"].name == ""
    pixels = by_tag["(7FE0,0010)"]
    assert pixels.bulk_uri == "https://pacs/dicom-web/studies/1/bulk/pixeldata"
    assert pixels.size == 8192
    assert by_tag["(0029,0010)"].size == 5
    assert len(by_tag["(0008,1030)"].value) == MAX_VALUE_CHARS
    assert by_tag["(0008,1030)"].value.endswith("…")
    sequence = [row for row in rows if row.depth > 0]
    assert [(row.depth, row.item, row.tag) for row in sequence] == [
        (1, 1, ""),
        (2, None, "(0008,0104)"),
        (1, 2, ""),
    ]
    assert by_tag["(0008,2218)"].value == "2"
