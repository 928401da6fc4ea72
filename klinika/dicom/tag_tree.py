"""An instance's attributes as rows for a tag browser: every element of its stored DICOM JSON,
sequences with their items nested, private elements named from their private creator, bulk
data as a link.

References
----------
PS3.5 §7.1 (data elements), §7.5 (sequences), §7.8 (private data elements);
PS3.18 §F.2 (DICOM JSON model).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from pydicom.datadict import (
    dictionary_description,
    keyword_for_tag,
    private_dictionary_description,
)
from pydicom.uid import UID

from klinika.dicom.json import BASE_PLACEHOLDER

#: Longer values are cut (with "…") so one long text does not flood the page.
MAX_VALUE_CHARS = 400
#: Values shown for one multi-valued element at most.
MAX_VALUES = 64


@dataclass(frozen=True)
class TagRow:
    """One line of the browser: an element, or the start of a sequence item."""

    depth: int
    tag: str  # "(0008,0016)", "" for an item
    keyword: str
    name: str
    vr: str
    value: str
    private: bool = False
    item: int | None = None  # 1-based item number for item rows
    bulk_uri: str | None = None
    size: int | None = None  # bytes, when known


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _private_creator(elements: dict[str, Any], tag: int) -> str | None:
    """The creator reserving ``tag``'s block: element (gggg,00xx) for (gggg,xxyy)."""
    group, element = tag >> 16, tag & 0xFFFF
    if element < 0x1000:
        return None
    creator = elements.get(f"{group:04X}{element >> 8:04X}", {}).get("Value") or []
    return str(creator[0]) if creator else None


def _name(elements: dict[str, Any], tag: int) -> tuple[str, str, bool]:
    """Keyword, name and whether the element is private."""
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2 == 0:
        try:
            return keyword_for_tag(tag), dictionary_description(tag), False
        except KeyError:
            return "", "", False
    if 0x0010 <= element <= 0x00FF:
        return "", "Private Creator", True
    creator = _private_creator(elements, tag)
    if creator:
        try:
            return "", f"[{creator}] {private_dictionary_description(tag, creator)}", True
        except KeyError:
            return "", f"[{creator}]", True
    return "", "", True


def _value_text(vr: str, values: list[Any]) -> str:
    shown = []
    for value in values[:MAX_VALUES]:
        if isinstance(value, dict):  # PN: the component groups joined as in PS3.5 §6.2
            groups = [value.get(k, "") for k in ("Alphabetic", "Ideographic", "Phonetic")]
            text = "=".join(groups).rstrip("=")
        elif vr == "UI" and isinstance(value, str) and UID(value).is_valid:
            name = UID(value).name
            text = value if name == value else f"{value} ({name})"
        else:
            text = str(value)
        shown.append(text)
    text = "\\".join(shown) + ("\\…" if len(values) > MAX_VALUES else "")
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def tag_rows(
    elements: dict[str, Any],
    *,
    base_url: str,
    pixel_data_size: int | None = None,
    depth: int = 0,
) -> Iterator[TagRow]:
    """Rows for a DICOM JSON data set, in tag order, items of sequences nested under them.

    ``base_url`` replaces the stored bulk data URIs' placeholder (the DICOMweb root the page
    links to); ``pixel_data_size`` is the pixel data's length, known from the frame map.
    """
    for key in sorted(elements):
        attribute = elements[key]
        tag = int(key, 16)
        vr = str(attribute.get("vr", ""))
        keyword, name, private = _name(elements, tag)
        row = TagRow(depth, _tag_text(tag), keyword, name, vr, "", private)
        if vr == "SQ":
            items = attribute.get("Value") or []
            yield replace(row, value=f"{len(items)}")
            for number, item in enumerate(items, start=1):
                yield TagRow(depth + 1, "", "", "", "", "", private, item=number)
                yield from tag_rows(item, base_url=base_url, pixel_data_size=None, depth=depth + 2)
        elif "BulkDataURI" in attribute:
            uri = str(attribute["BulkDataURI"]).replace(BASE_PLACEHOLDER, base_url)
            size = pixel_data_size if key == "7FE00010" and depth == 0 else None
            yield replace(row, bulk_uri=uri, size=size)
        elif "InlineBinary" in attribute:
            try:
                size = len(base64.b64decode(attribute["InlineBinary"], validate=True))
            except (binascii.Error, ValueError):
                size = None
            yield replace(row, size=size)
        else:
            values = attribute.get("Value") or []
            yield replace(row, value=_value_text(vr, values))
