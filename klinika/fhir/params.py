"""FHIR search parameters, checked and turned into match keys of the ONE query engine.

Each resource type declares the parameters it supports; anything else (an unknown name, a
modifier such as ``name:exact``, a prefix we do not implement, a malformed date) is refused
with :class:`InvalidQuery` (400 with an OperationOutcome), never silently ignored: a client
that filtered on something we skipped would get wrong answers.

References
----------
FHIR R4 search.html: §3.1.1.4 (parameter types: date and its prefixes, token, reference,
string), §3.1.1.5.6 (``_count``), §3.1.1.6 (paging).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from klinika.errors import InvalidQuery, NotFound
from klinika.fhir.ids import patient_key

#: Parameters every search takes; they shape the answer, they match nothing.
CONTROL = frozenset({"_count", "_offset", "_format"})
DEFAULT_COUNT = 50
MAX_COUNT = 1000

DICOM_UID_SYSTEM = "urn:dicom:uid"
DICOM_MODALITY_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
_DATE = re.compile(r"(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?(?P<date>\d{4}(-\d{2}(-\d{2})?)?)")
_DATE_TIME = re.compile(r"(eq|ne|gt|lt|ge|le|sa|eb|ap)?\d{4}-\d{2}-\d{2}T.*")
_SUPPORTED_PREFIXES = frozenset({"eq", "gt", "lt", "ge", "le"})


@dataclass(frozen=True)
class Search:
    """A checked search: the values of each matching parameter (one entry per occurrence of
    the parameter, AND-ed; commas inside one are OR-ed), and the page asked for."""

    values: dict[str, list[str]] = field(default_factory=dict)
    count: int = DEFAULT_COUNT
    offset: int = 0

    def one(self, name: str) -> str | None:
        """The value of a parameter given at most once (AND of two values is refused)."""
        found = self.values.get(name, [])
        if len(found) > 1:
            raise InvalidQuery(f"{name} may be given only once")
        return found[0] if found else None


def parse_search(items: Iterable[tuple[str, str]], supported: Sequence[str], what: str) -> Search:
    """Check the query string of a search of ``what``.

    Raises
    ------
    InvalidQuery
        For unknown parameters, modifiers, and a malformed ``_count`` or ``_offset``.
    """
    values: dict[str, list[str]] = {}
    count, offset = DEFAULT_COUNT, 0
    for name, value in items:
        base, colon, modifier = name.partition(":")
        if base in CONTROL:
            if base == "_count":
                count = min(_whole(name, value), MAX_COUNT)
            elif base == "_offset":
                offset = _whole(name, value)
            continue
        if base not in supported:
            raise InvalidQuery(
                f"{what} has no search parameter {name[:60]!r}; supported: "
                + ", ".join(sorted({*supported, *CONTROL}))
            )
        if colon:
            raise InvalidQuery(f"the modifier :{modifier[:30]} of {base} is not supported")
        if value.strip():  # an empty value is ignored (search.html §3.1.1.3)
            values.setdefault(base, []).append(value.strip())
    return Search(values, count, offset)


def _whole(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidQuery(f"{name} must be a whole number, not {value[:32]!r}") from exc
    if number < 0:
        raise InvalidQuery(f"{name} must not be negative")
    return number


# ------------------------------------------------------------------ dates
def date_range(name: str, values: Sequence[str]) -> str | None:
    """A DICOM DA range (``YYYYMMDD-YYYYMMDD``, either side open) for the AND of FHIR date
    parameters with prefixes ``eq`` (default), ``ge``, ``le``, ``gt``, ``lt``; each value may
    be a year, a month or a day. ``None`` when nothing can match (an empty interval).

    References
    ----------
    FHIR R4 search.html §3.1.1.4.2 (date), PS3.4 C.2.2.2.5 (range matching).

    Raises
    ------
    InvalidQuery
        For a malformed date, a time of day, an OR list, or the prefixes ne/sa/eb/ap.
    """
    low, high = dt.date.min, dt.date.max
    for value in values:
        if "," in value:
            raise InvalidQuery(f"{name}: a list of dates (OR) is not supported")
        match = _DATE.fullmatch(value)
        if match is None:
            if _DATE_TIME.fullmatch(value):
                raise InvalidQuery(f"{name}={value[:40]!r}: only dates are supported, not times")
            raise InvalidQuery(f"{name}={value[:40]!r} is not a date (YYYY, YYYY-MM or YYYY-MM-DD)")
        prefix = match["prefix"] or "eq"
        if prefix not in _SUPPORTED_PREFIXES:
            raise InvalidQuery(f"{name}: the prefix {prefix} is not supported (eq ge le gt lt)")
        start, end = _period(name, match["date"])
        if prefix == "eq":
            low, high = max(low, start), min(high, end)
        elif prefix == "ge":
            low = max(low, start)
        elif prefix == "gt":
            low = max(low, _next_day(end))
        elif prefix == "le":
            high = min(high, end)
        else:  # lt
            high = min(high, _previous_day(start))
    if low > high:
        return None
    text_low = "" if low == dt.date.min else low.strftime("%Y%m%d")
    text_high = "" if high == dt.date.max else high.strftime("%Y%m%d")
    return f"{text_low}-{text_high}" if text_low != text_high else text_low


def _period(name: str, text: str) -> tuple[dt.date, dt.date]:
    """The first and last day a FHIR date of year, month or day precision covers."""
    parts = [int(p) for p in text.split("-")]
    try:
        if len(parts) == 1:
            return dt.date(parts[0], 1, 1), dt.date(parts[0], 12, 31)
        if len(parts) == 2:
            last = calendar.monthrange(parts[0], parts[1])[1]
            return dt.date(parts[0], parts[1], 1), dt.date(parts[0], parts[1], last)
        day = dt.date(parts[0], parts[1], parts[2])
    except ValueError as exc:
        raise InvalidQuery(f"{name}={text!r} is not a calendar date") from exc
    return day, day


def _next_day(day: dt.date) -> dt.date:
    return dt.date.max if day == dt.date.max else day + dt.timedelta(days=1)


def _previous_day(day: dt.date) -> dt.date:
    return dt.date.min if day == dt.date.min else day - dt.timedelta(days=1)


# ------------------------------------------------------------------ tokens and references
def token(value: str) -> tuple[str | None, str]:
    """``system|code`` -> (system, code); ``code`` -> (None, code); ``|code`` -> ("", code)."""
    system, bar, code = value.partition("|")
    return (system, code) if bar else (None, value)


def token_list(name: str, value: str, systems: frozenset[str]) -> list[str]:
    """The codes of a token parameter (comma-separated: OR) whose system, when given, is one
    of ``systems``.

    Raises
    ------
    InvalidQuery
        For another system or an empty code.
    """
    codes = []
    for item in value.split(","):
        system, code = token(item)
        if system and system not in systems:
            raise InvalidQuery(f"{name}: the system {system[:80]!r} is not {sorted(systems)}")
        if not code:
            raise InvalidQuery(f"{name}: an empty code")
        codes.append(code)
    return codes


def patient_reference(name: str, value: str) -> tuple[str, str | None]:
    """The (Patient ID, issuer) of a reference parameter: ``Patient/<id>``, ``<id>`` or an
    absolute URL ending in ``/Patient/<id>``.

    Raises
    ------
    InvalidQuery
        For a reference to another resource type, or a list (OR) of patients.
    """
    if "," in value:
        raise InvalidQuery(f"{name}: a list of patients (OR) is not supported")
    head, slash, resource_id = value.rpartition("/")
    if slash:
        if head.rpartition("/")[2] != "Patient":
            raise InvalidQuery(f"{name} must reference a Patient, not {value[:80]!r}")
    else:
        resource_id = value
    try:
        return patient_key(resource_id)
    except NotFound as exc:
        raise InvalidQuery(f"{name}: {resource_id[:80]!r} is not a Patient id") from exc
