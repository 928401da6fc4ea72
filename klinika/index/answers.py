"""How the query engine's result rows become answers: DICOM JSON objects (what C-FIND,
FHIR and the pages read) or the same objects written straight to JSON text (what QIDO-RS
sends). Both are built column by column, the common values (one text, a one-group person
name, an integer, none) the short way and any other through :func:`element`, so that a page
of a thousand studies costs little; a test keeps the two ways equal.

References
----------
PS3.18 §F.2 (DICOM JSON model), Table 10.6.3-3 (RetrieveURL in search answers).
"""

from __future__ import annotations

import bisect
import json
import json.encoder
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from klinika.dicom.attributes import UNIQUE_KEY, IndexedAttribute, Level
from klinika.dicom.json import element_json

#: VRs whose JSON value is not the column's text as it is (element_json converts them)
_CONVERTED = frozenset({"PN", "IS", "US", "UL", "SS", "SL", "DS", "FL", "FD"})
_INTEGER_VRS = frozenset({"IS", "US", "UL", "SS", "SL"})
_RETRIEVE_URL = "00081190"
_RETRIEVE_KEY = f'"{_RETRIEVE_URL}":{{"vr":"UR","Value":['
#: a JSON string literal of a text, as ``json.dumps(..., ensure_ascii=False)`` writes it
_quoted: Callable[[str], str] = json.encoder.encode_basestring


def element(vr: str, value: Any, splits: bool) -> dict[str, Any]:
    """:func:`element_json` of an index column's value: multiple values are joined by ``\\``
    (unless the VR is a text one, where a backslash is a character); plain text is taken
    the short way."""
    if isinstance(value, str) and value:
        values = value.split("\\") if splits and "\\" in value else [value]
        return element_json(vr, values) if vr in _CONVERTED else {"vr": vr, "Value": values}
    return element_json(vr, value)


def dumps(document: Any) -> str:
    """Compact JSON text, as QIDO-RS answers are written."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def value_text(vr: str, value: Any, splits: bool) -> str | None:
    """The items of the ``Value`` array of :func:`element` as JSON text, for what index
    columns hold most (text, one-group person names, integers); None for anything else."""
    if isinstance(value, str) and value:
        values = value.split("\\") if splits and "\\" in value else [value]
        if vr not in _CONVERTED:
            return ",".join(map(_quoted, values))
        if vr == "PN" and "=" not in value and all(values):
            return ",".join(['{"Alphabetic":' + _quoted(v) + "}" for v in values])
        return None
    if type(value) is int and vr in _INTEGER_VRS:
        return str(value)
    return None


def field_texts(tag: str, vr: str) -> tuple[str, str, str]:
    """An attribute's JSON key, the opening of its element with a value, and its element
    without one."""
    return f'"{tag}":', f'"{tag}":{{"vr":"{vr}","Value":[', f'"{tag}":{{"vr":"{vr}"}}'


@dataclass(frozen=True)
class Layout:
    """How the rows of a query become answers, worked out once per query.

    A row holds the primary key, then the returned attributes in order, then the counts
    (see :func:`klinika.index.query._plan`): it is read by position, which a page of a
    thousand studies needs.
    ``fields`` are the row's columns in tag order (so that an entry needs no sorting unless
    it gets more): tag, VR, whether a backslash separates values, position in the row.
    """

    fields: list[tuple[str, str, bool, int]]
    width: int
    counts: list[str]
    empty: dict[str, dict[str, Any]]
    #: per field: its JSON key, the opening of its element with a value, and without one
    texts: list[tuple[str, str, str]]
    #: row positions of the unique keys from the study down to the plan's level
    uids: list[int]

    @classmethod
    def of(
        cls,
        returned: list[IndexedAttribute],
        counts_asked: list[str],
        unindexed: list[str],
        level: Level,
    ) -> Layout:
        """The layout of rows holding ``returned`` columns then ``counts_asked`` counts;
        ``unindexed`` keywords come from stored metadata (or stay empty)."""
        fields = sorted(
            (a.tag_hex, a.vr, a.vr not in ("LT", "ST", "UT"), position)
            for position, a in enumerate(returned, start=1)
        )
        counts = [f"{tag_for_keyword(keyword) or 0:08X}" for keyword in counts_asked]
        empty = {}
        for keyword in unindexed:
            code = tag_for_keyword(keyword)
            if code is not None:  # not a keyword of the data dictionary: nothing to return
                empty[f"{code:08X}"] = {"vr": dictionary_VR(code)}
        texts = [field_texts(tag, vr) for tag, vr, _, _ in fields]
        position = {a.keyword: n for n, a in enumerate(returned, start=1)}
        levels = [lv for lv in Level if Level.STUDY <= lv <= level]
        uids = [position[UNIQUE_KEY[lv]] for lv in levels if UNIQUE_KEY[lv] in position]
        return cls(fields, len(fields), counts, empty, texts, uids)

    def extras(self, row: Sequence[Any], added: dict[str, Any] | None) -> dict[str, Any]:
        """The row's attributes beyond its columns: stored values, counts, empty ones."""
        out = dict(added or {})
        for tag, value in zip(self.counts, row[self.width + 1 :], strict=True):
            out[tag] = element_json("IS", int(value))
        for tag, nothing in self.empty.items():
            out.setdefault(tag, dict(nothing))
        return out


def objects(
    layout: Layout, rows: Sequence[Sequence[Any]], stored: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The DICOM JSON objects of some result rows, built column by column (see
    :func:`column_elements`); ``stored`` holds the unindexed values by row primary key."""
    if not rows:
        return []
    columns = list(zip(*rows, strict=True))
    tags = [tag for tag, _, _, _ in layout.fields]
    elements = [column_elements(field, columns[field[3]]) for field in layout.fields]
    matches = [dict(zip(tags, parts, strict=True)) for parts in zip(*elements, strict=True)]
    if stored or layout.counts or layout.empty:
        for number, row in enumerate(rows):
            entry = matches[number]
            entry.update(layout.extras(row, stored.get(row[0])))
            matches[number] = dict(sorted(entry.items()))
    return matches


def column_elements(field: tuple[str, str, bool, int], values: Sequence[Any]) -> list[Any]:
    """One column's :func:`element` objects, row by row, the common values (one text, a
    one-group name, an integer, none) the short way."""
    _, vr, splits, _ = field
    if vr == "PN":
        return [
            {"vr": vr, "Value": [{"Alphabetic": v}]}
            if type(v) is str and v and "=" not in v and "\\" not in v
            else element(vr, v, splits)
            for v in values
        ]
    if vr in _INTEGER_VRS:
        return [
            {"vr": vr, "Value": [v]} if type(v) is int else element(vr, v, splits) for v in values
        ]
    if vr in _CONVERTED:
        return [element(vr, v, splits) for v in values]
    return [
        {"vr": vr, "Value": [v]}
        if type(v) is str and v and "\\" not in v
        else element(vr, v, splits)
        for v in values
    ]


def texts(
    layout: Layout,
    rows: Sequence[Sequence[Any]],
    stored: dict[int, dict[str, Any]],
    retrieve_base: str | None,
) -> list[str]:
    """The DICOM JSON objects of some result rows as JSON text: what :func:`dumps` of
    :func:`objects` gives (plus RetrieveURL with ``retrieve_base``), written column by
    column without a dict per attribute."""
    if not rows:
        return []
    columns = list(zip(*rows, strict=True))
    tags = [tag for tag, _, _, _ in layout.fields]
    texts: list[Sequence[str | None]] = [
        column_texts(field, text, columns[field[3]])
        for field, text in zip(layout.fields, layout.texts, strict=True)
    ]
    urls: list[str | None] = []
    if retrieve_base is not None and layout.uids:
        urls = retrieve_texts(retrieve_base, [columns[p] for p in layout.uids])
        at = bisect.bisect(tags, _RETRIEVE_URL)
        tags.insert(at, _RETRIEVE_URL)
        texts.insert(at, urls)
    parts_of_rows = zip(*texts, strict=True)
    if not (stored or layout.counts or layout.empty or None in urls):
        return ["{" + ",".join(parts) + "}" for parts in parts_of_rows]
    entries = []
    for row, parts in zip(rows, parts_of_rows, strict=True):
        pairs = [(tag, part) for tag, part in zip(tags, parts, strict=True) if part is not None]
        added = stored.get(row[0])
        if added or layout.counts or layout.empty:
            pairs += [(t, f'"{t}":' + dumps(e)) for t, e in layout.extras(row, added).items()]
            pairs.sort()
        entries.append("{" + ",".join(part for _, part in pairs) + "}")
    return entries


def column_texts(
    field: tuple[str, str, bool, int], text: tuple[str, str, str], values: Sequence[Any]
) -> list[str]:
    """One column's elements as JSON text (``"tag":{...}``), row by row: the common values
    (one text, one-group name, an integer) the short way, any other by :func:`value_text`
    or the element object. A comprehension per column, not a loop per row and attribute:
    what keeps a page of a thousand studies cheap."""
    _, vr, splits, _ = field
    key, opening, empty = text

    def other(value: Any) -> str:
        if value is None or value == "":
            return empty
        items = value_text(vr, value, splits)
        return key + dumps(element(vr, value, splits)) if items is None else opening + items + "]}"

    if vr == "PN":
        return [
            opening + '{"Alphabetic":' + _quoted(v) + "}]}"
            if type(v) is str and v and "=" not in v and "\\" not in v
            else other(v)
            for v in values
        ]
    if vr in _INTEGER_VRS:
        return [opening + str(v) + "]}" if type(v) is int else other(v) for v in values]
    if vr in _CONVERTED:
        return [other(v) for v in values]
    return [
        opening + _quoted(v) + "]}" if type(v) is str and v and "\\" not in v else other(v)
        for v in values
    ]


def retrieve_texts(base: str, uids: list[Sequence[Any]]) -> list[str | None]:
    """RetrieveURL (0008,1190) of each row from its UIDs, the study's down to its own
    (PS3.18 Table 10.6.3-3): the WADO-RS resource of the study, series or instance;
    None for a row without them."""
    names = ("studies", "series", "instances")

    def url(row_uids: Sequence[Any]) -> str | None:
        firsts = [_first_value(uid) for uid in row_uids]
        if not all(firsts):
            return None
        path = "".join(f"/{name}/{uid}" for name, uid in zip(names, firsts, strict=False))
        return _RETRIEVE_KEY + _quoted(base + path) + "]}"

    if len(uids) == 1:  # studies: one quoted head (JSON escapes character by character)
        head = _RETRIEVE_KEY + _quoted(base + "/studies/")[:-1]
        return [
            head + _quoted(uid)[1:] + "]}"
            if type(uid) is str and uid and "\\" not in uid
            else url([uid])
            for uid in uids[0]
        ]
    return [url(row_uids) for row_uids in zip(*uids, strict=True)]


def _first_value(value: Any) -> str | None:
    """The first of a UID column's values (they are separated by a backslash)."""
    return (value.split("\\", 1)[0] or None) if isinstance(value, str) else None
