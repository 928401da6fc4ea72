"""Attribute matching for queries: one rule per kind of value, shared by QIDO-RS and C-FIND.

References
----------
PS3.4 C.2.2.2 (single value, list of UID, universal, wild card, range matching);
PS3.4 C.2.2.2.1 (case-insensitive person names, if the SCP so declares);
PS3.18 §8.3.4 (QIDO-RS matching, ``fuzzymatching``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import sqlalchemy as sa
from pydicom.datadict import dictionary_VR, tag_for_keyword
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from klinika.dicom.fold import fold, folding_table
from klinika.errors import InvalidQuery

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_DATETIME = re.compile(r"^\d{4,14}(\.\d{1,6})?([+-]\d{4})?$")


class Matchable(Protocol):
    """What matching needs to know of an attribute: its keyword and VR."""

    @property
    def keyword(self) -> str: ...

    @property
    def vr(self) -> str: ...

    @property
    def is_integer(self) -> bool: ...


@dataclass(frozen=True)
class MatchColumn:
    """An attribute held by a column of some other table than the index's levels (the
    modality worklist's scheduled steps): matched with the same rules as the index.
    ``norm`` is the case-folded column of a person name."""

    keyword: str
    column: sa.ColumnElement[Any]
    norm: sa.ColumnElement[Any] | None = None

    @cached_property
    def vr(self) -> str:
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword
        return dictionary_VR(tag)

    @cached_property
    def is_integer(self) -> bool:
        return self.vr in {"IS", "US", "UL", "SS", "SL"}


def match_terms(
    columns: Mapping[str, MatchColumn], match: Mapping[str, str], *, fuzzy: bool = False
) -> list[ColumnElement[bool]]:
    """WHERE terms matching ``match`` (keyword -> value) against ``columns``; keys without a
    column are return keys only (PS3.4 C.2.2.1.2: an SCP matches the keys it supports).

    Raises
    ------
    InvalidQuery
        When a value cannot be a match key for its attribute's VR.
    """
    terms = []
    for keyword, value in match.items():
        found = columns.get(keyword)
        if found is None:
            continue
        term = condition(found.column, found, value, norm_column=found.norm, fuzzy=fuzzy)
        if term is not None:
            terms.append(term)
    return terms


def normalize_name(value: str) -> str:
    """Person names compared case-insensitively: NFC, case-folded, trailing carets dropped."""
    text = unicodedata.normalize("NFC", value).casefold()
    return "=".join(group.strip(" ").rstrip("^ ") for group in text.split("="))


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _wildcard(column: sa.ColumnElement[str], value: str) -> ColumnElement[bool]:
    return column.like(_like_pattern(value), escape="\\")


def _split_list(value: str) -> list[str]:
    return [v for v in re.split(r"[\\,]", value) if v]


def _range(
    column: sa.ColumnElement[str], value: str, pattern: re.Pattern[str], kind: str, pad: int
) -> ColumnElement[bool]:
    low, _, high = value.partition("-")
    for part in (low, high):
        if part and not pattern.match(part):
            raise InvalidQuery(f"{value!r} is not a valid {kind} or {kind} range")
    conditions = []
    if low:
        conditions.append(column >= low)
    if high:
        conditions.append(column <= high.ljust(pad, "9") if kind != "date" else column <= high)
    if not conditions:
        raise InvalidQuery(f"{value!r} is an empty {kind} range")
    return sa.and_(*conditions)


def condition(
    column: sa.ColumnElement[str],
    attribute: Matchable,
    value: str,
    *,
    norm_column: sa.ColumnElement[str] | None = None,
    fuzzy: bool = False,
    folded: bool = False,
) -> ColumnElement[bool] | None:
    """The SQL condition for matching ``attribute`` against ``value``; None means universal.
    ``folded`` (the console's name search, with ``fuzzy``) also ignores accents and script.

    Raises
    ------
    InvalidQuery
        When the value cannot be a match key for the attribute's VR.
    """
    value = value.strip() if attribute.vr not in ("PN",) else value.strip(" ")
    if value in ("", "*"):
        return None
    vr = attribute.vr
    if vr == "UI":
        uids = _split_list(value)
        return column == uids[0] if len(uids) == 1 else column.in_(uids)
    if vr == "DA":
        if "-" in value:
            return _range(column, value, _DATE, "date", 8)
        if not _DATE.match(value):
            raise InvalidQuery(f"{attribute.keyword}={value!r} is not a date (YYYYMMDD)")
        return column == value
    if vr == "TM":
        value = value.replace(":", "")
        if "-" in value:
            return _range(column, value, _TIME, "time", 13)
        if not _TIME.match(value):
            raise InvalidQuery(f"{attribute.keyword}={value!r} is not a time (HHMMSS.FFFFFF)")
        return column.like(value + "%")
    if vr == "DT" and "-" in value[1:]:
        return _range(column, value, _DATETIME, "datetime", 21)
    if attribute.is_integer:
        try:
            numbers = [int(v) for v in _split_list(value)]
        except ValueError as exc:
            raise InvalidQuery(f"{attribute.keyword}={value!r} is not an integer") from exc
        return column.in_(numbers)
    if vr == "PN" and norm_column is not None:
        return _person_name(norm_column, value, fuzzy, folded)
    if has_wildcard(value):
        return _wildcard(column, value)
    return column == value


#: The SQL function SQLite runs for :class:`Folded` (registered per connection).
SQLITE_FOLD = "klinika_fold"


class Folded(FunctionElement[str]):
    """``column`` (a ``_norm`` column: NFC, case-folded) as :func:`klinika.dicom.fold.fold`
    spells it. SQLite calls :func:`fold` itself (:func:`prepare_folding` registers it: its
    parser stops at some 100 nested calls); PostgreSQL runs ``replace()`` for the letters
    spelled with several and one ``translate()`` for the others. The letters are constants of
    the folding table, never user input."""

    type = sa.String()
    name = SQLITE_FOLD
    inherit_cache = True


@compiles(Folded, "sqlite")
def _compile_folded_sqlite(element: Folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_FOLD}({compiler.process(element.clauses, **kw)})"


@compiles(Folded)
def _compile_folded(element: Folded, compiler: SQLCompiler, **kw: Any) -> str:
    sql = compiler.process(element.clauses, **kw)
    table = folding_table()
    singles = {char: spelling for char, spelling in table.items() if len(spelling) == 1}
    for char, spelling in table.items():
        if char not in singles:
            sql = f"replace({sql}, '{char}', '{spelling}')"
    return f"translate({sql}, '{''.join(singles)}', '{''.join(singles.values())}')"


def prepare_folding(connection: sa.Connection) -> None:
    """Give a SQLite connection the function :class:`Folded` compiles to (PostgreSQL needs
    nothing)."""
    if connection.dialect.name == "sqlite":
        raw = connection.connection.driver_connection
        if raw is not None:
            raw.create_function(SQLITE_FOLD, 1, _fold_or_none, deterministic=True)


def _fold_or_none(value: str | None) -> str | None:
    return fold(value) if value is not None else None


def folded_column(column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """``column`` folded in SQL (see :class:`Folded`)."""
    return Folded(column)


def _folded_words(norm_column: sa.ColumnElement[str], needle: str) -> ColumnElement[bool]:
    """Each word of ``needle`` starts some word of the name once both are folded: ``muller``
    finds ``Müller``, ``ivanov`` finds ``Иванов`` and ``иванов`` finds ``Ivanov``."""
    words = [w for w in re.split(r"[\s^,=]+", fold(needle)) if w]
    spaced = sa.func.replace(sa.func.replace(folded_column(norm_column), " ", "^"), "=", "^")
    padded = sa.literal("^") + spaced
    return sa.and_(*(padded.like("%^" + _like_pattern(word) + "%", escape="\\") for word in words))


def _person_name(
    norm_column: sa.ColumnElement[str], value: str, fuzzy: bool, folded: bool = False
) -> ColumnElement[bool] | None:
    """Case-insensitive PN matching; with fuzzy matching each word may start any name part."""
    needle = normalize_name(value)
    if needle in ("", "*"):  # "^", "^^" … name nothing: universal matching
        return None
    if fuzzy and folded and not has_wildcard(needle):
        return _folded_words(norm_column, needle)
    if fuzzy and not has_wildcard(needle):
        words = [w for w in re.split(r"[\s^,]+", needle) if w]
        clauses = []
        for word in words:
            pattern = _like_pattern(word)
            clauses.append(
                sa.or_(
                    norm_column.like(pattern + "%", escape="\\"),
                    norm_column.like("%^" + pattern + "%", escape="\\"),
                    norm_column.like("% " + pattern + "%", escape="\\"),
                )
            )
        return sa.and_(*clauses)
    if has_wildcard(needle):
        return _wildcard(norm_column, needle)
    return norm_column == needle
