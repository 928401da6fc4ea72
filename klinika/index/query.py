"""The ONE query engine: QIDO-RS and C-FIND both describe a :class:`Query` and call :func:`search`.

A query names a level, match keys (keyword -> value as text, ``""`` meaning "return it"),
extra attributes to include, and paging. Answers are DICOM JSON objects (PS3.18 §F.2), built
from index columns, or for attributes the index does not hold, from the stored metadata of a
representative instance. No blob is ever opened.

References
----------
PS3.4 C.4.1 (C-FIND), PS3.18 §10.6 (QIDO-RS search transaction).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from klinika.dicom.attributes import (
    BY_KEYWORD,
    INDEXED_ATTRIBUTES,
    UNIQUE_KEY,
    IndexedAttribute,
    Level,
)
from klinika.errors import InvalidQuery
from klinika.index import answers, schema
from klinika.index.matching import condition, prepare_folding

Include = frozenset[str] | Literal["all"]
_ORDER: dict[Level, Callable[[], list[sa.ColumnElement[Any]]]] = {
    Level.PATIENT: lambda: [schema.patients.c.patient_name_norm, schema.patients.c.pk],
    Level.STUDY: lambda: [
        schema.studies.c.study_date.desc(),
        schema.studies.c.study_time.desc(),
        schema.studies.c.pk.desc(),
    ],
    Level.SERIES: lambda: [schema.series.c.series_number, schema.series.c.pk],
    Level.IMAGE: lambda: [schema.instances.c.instance_number, schema.instances.c.pk],
}


STREAM_CHUNK = 64  # rows :func:`search_stream` takes from the cursor at a time


def _patient_studies() -> sa.ColumnElement[Any]:
    studies = schema.studies.alias("counted_studies")  # the outer query may join studies
    return (
        sa.select(sa.func.count())
        .select_from(studies)
        .where(studies.c.patient_pk == schema.patients.c.pk)
        .correlate(schema.patients)
        .scalar_subquery()
    )


def _patient_series() -> sa.ColumnElement[Any]:
    studies = schema.studies.alias("counted_studies")
    series = schema.series.alias("counted_series")
    return (
        sa.select(sa.func.count())
        .select_from(series.join(studies, series.c.study_pk == studies.c.pk))
        .where(studies.c.patient_pk == schema.patients.c.pk)
        .correlate(schema.patients)
        .scalar_subquery()
    )


def _patient_instances() -> sa.ColumnElement[Any]:
    studies = schema.studies.alias("counted_studies")
    total = sa.func.sum(studies.c.number_of_study_related_instances)
    return (
        sa.select(sa.func.coalesce(total, 0))
        .select_from(studies)
        .where(studies.c.patient_pk == schema.patients.c.pk)
        .correlate(schema.patients)
        .scalar_subquery()
    )


#: Patient-level counts (PS3.4 C.3.1, Table C.6-1), counted when asked for: from the
#: studies table (whose per-study counts ingest keeps current), never stored per patient.
PATIENT_COUNTS: dict[str, Callable[[], sa.ColumnElement[Any]]] = {
    "NumberOfPatientRelatedStudies": _patient_studies,
    "NumberOfPatientRelatedSeries": _patient_series,
    "NumberOfPatientRelatedInstances": _patient_instances,
}


@dataclass(frozen=True)
class Query:
    """What to find. ``match`` keys are keywords or 8-digit hex tags."""

    level: Level
    match: dict[str, str] = field(default_factory=dict)
    include: Include = frozenset()
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False
    #: with ``fuzzy``: names also match without accents and across scripts (the console's
    #: search; QIDO-RS and C-FIND never set it)
    folded: bool = False
    include_parents: bool = False
    strict: bool = True
    #: (keyword, descending) pairs of indexed attributes; empty: the level's default order
    order: tuple[tuple[str, bool], ...] = ()


@dataclass
class QueryResult:
    """DICOM JSON objects in order, and whether more matched beyond ``limit``."""

    matches: list[dict[str, Any]]
    more: bool


@dataclass(frozen=True)
class JsonResult:
    """The matches as one DICOM JSON array (UTF-8 text), and whether more matched."""

    body: bytes
    more: bool


def resolve_keyword(key: str) -> str:
    """A keyword from a keyword or a hex tag (``00100010``); refuses unknown names."""
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        keyword = keyword_for_tag(int(key, 16))
        if keyword:
            return keyword
    elif tag_for_keyword(key) is not None:
        return key
    raise InvalidQuery(f"{key!r} is not a DICOM attribute keyword or tag")


def _levels_down_to(level: Level) -> list[Level]:
    return [lv for lv in Level if lv <= level]


def _from_clause(level: Level) -> sa.FromClause:
    joined: sa.FromClause = schema.TABLES[Level.PATIENT]
    for lv in _levels_down_to(level)[1:]:
        table = schema.TABLES[lv]
        parent = schema.TABLES[schema.PARENT[lv]]
        joined = joined.join(table, table.c[schema.PARENT_KEY[lv]] == parent.c.pk)
    return joined


def _column(attribute: IndexedAttribute) -> sa.ColumnElement[Any]:
    return schema.TABLES[attribute.level].c[attribute.column]


def _match_conditions(
    query: Query, keywords: dict[str, str], *, semijoin: bool = False
) -> list[sa.ColumnElement[bool]]:
    """WHERE terms of ``query``. ``semijoin`` picks the ``IN (subquery)`` form of
    ModalitiesInStudy (same matches; cheaper to count, dearer for one ordered page)."""
    conditions = []
    for keyword, value in keywords.items():
        attribute = BY_KEYWORD.get(keyword)
        if attribute is None or attribute.level > query.level:
            if value not in ("", "*") and query.strict:
                raise InvalidQuery(f"matching on {keyword} is not supported at this level")
            continue
        if keyword == "ModalitiesInStudy":
            found = _modalities_condition(value, semijoin=semijoin)
        else:
            norm = None
            if attribute.vr == "PN":
                norm = schema.TABLES[attribute.level].c[f"{attribute.column}_norm"]
            found = condition(
                _column(attribute),
                attribute,
                value,
                norm_column=norm,
                fuzzy=query.fuzzy,
                folded=query.folded,
            )
        if found is not None:
            conditions.append(found)
    return conditions


def _modalities_condition(value: str, *, semijoin: bool = False) -> sa.ColumnElement[bool] | None:
    """ModalitiesInStudy matches when any series of the study has one of the modalities.

    The correlated ``EXISTS`` lets an ordered, limited page stop early; the ``IN`` form builds
    the set of matching studies once, which is what a count over the whole index wants.
    """
    wanted = [v for v in value.replace(",", "\\").split("\\") if v and v != "*"]
    if not wanted:
        return None
    series = schema.series
    if semijoin:
        return schema.studies.c.pk.in_(
            sa.select(series.c.study_pk).where(series.c.modality.in_(wanted))
        )
    return sa.exists().where(
        series.c.study_pk == schema.studies.c.pk, series.c.modality.in_(wanted)
    )


def _returned_attributes(query: Query, keywords: dict[str, str]) -> list[IndexedAttribute]:
    """Default attributes of the level (and of the levels above for relational queries), the
    unique keys of the levels above, the match keys and ``includefield``."""
    levels = _levels_down_to(query.level) if query.include_parents else [query.level]
    if query.level == Level.STUDY:
        levels = [Level.PATIENT, Level.STUDY]
    chosen = [
        a
        for a in INDEXED_ATTRIBUTES
        if a.level in levels and (a.default_return or query.include == "all")
    ]
    extra = set(keywords) | (set() if query.include == "all" else set(query.include))
    extra |= {UNIQUE_KEY[lv] for lv in _levels_down_to(query.level) if lv != Level.PATIENT}
    for keyword in sorted(extra):
        attribute = BY_KEYWORD.get(keyword)
        if attribute and attribute.level <= query.level and attribute not in chosen:
            chosen.append(attribute)
    return chosen


@dataclass(frozen=True)
class _Plan:
    """A query resolved to its statement and to how its rows become DICOM JSON."""

    query: Query
    statement: sa.Select[Any]
    returned: list[IndexedAttribute]
    unindexed: list[str]
    counts: list[str] = field(default_factory=list)


#: Distinct queries whose plans are kept (a plan is a few KB of SQLAlchemy objects).
PLAN_CACHE_SIZE = 512


@dataclass(frozen=True, eq=False)
class _Keyed:
    """A query with a hashable key made of everything its plan depends on."""

    query: Query
    key: tuple[Any, ...]

    @classmethod
    def of(cls, query: Query) -> _Keyed:
        include = query.include if query.include == "all" else tuple(sorted(query.include))
        fields = (query.limit, query.offset, query.fuzzy, query.folded, query.include_parents)
        key = (query.level, tuple(sorted(query.match.items())), include, *fields)
        return cls(query, (*key, query.strict, query.order))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Keyed) and self.key == other.key


def _plan(query: Query, *, one_more: bool) -> _Plan:
    """The plan of ``query``, built once per distinct query: building the statement and
    SQLAlchemy's cache key for it cost more than running it on a warm index (0.33 against
    0.03 ms for a study query), and clients repeat their queries (a viewer's study list,
    a workstation's C-FIND). Plans depend on nothing but the query and the schema."""
    return _cached_plan(_Keyed.of(query), one_more)


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def _cached_plan(keyed: _Keyed, one_more: bool) -> _Plan:
    return _build_plan(keyed.query, one_more=one_more)


def _build_plan(query: Query, *, one_more: bool) -> _Plan:
    """The statement of ``query`` (with ``one_more`` row past ``limit``, to tell whether
    more matched) and the attributes its answers carry."""
    keywords = {resolve_keyword(k): v for k, v in query.match.items()}
    include: Include = query.include
    if include != "all":
        include = frozenset(resolve_keyword(k) for k in include)
        query = Query(**{**query.__dict__, "include": include})
    returned = _returned_attributes(query, keywords)
    table = schema.TABLES[query.level]
    columns = [_column(a).label(a.column) for a in returned]
    asked = set(keywords) | (set(include) if include != "all" else set())
    counts = [
        k
        for k in PATIENT_COUNTS
        if k in asked or (include == "all" and query.level == Level.PATIENT)
    ]
    for keyword in counts:
        if keywords.get(keyword, "") not in ("", "*") and query.strict:
            raise InvalidQuery(f"matching on {keyword} is not supported")
        keywords.pop(keyword, None)
    columns += [PATIENT_COUNTS[k]().label(f"_count_{k}") for k in counts]
    statement = (
        sa.select(table.c.pk.label("_pk"), *columns)
        .select_from(_from_clause(query.level))
        .where(*_match_conditions(query, keywords))
        .order_by(*_ordering(query))
    )
    if query.offset:
        statement = statement.offset(query.offset)
    if query.limit is not None:
        statement = statement.limit(query.limit + 1 if one_more else query.limit)
    indexed = {a.keyword for a in returned}
    # Attributes the index lacks come from a representative instance; those it holds at a
    # lower level (Modality in a study query) have no single value here and are left out.
    unindexed = sorted(
        k
        for k in (set(keywords) | (set(include) if include != "all" else set()))
        if k not in indexed and k not in BY_KEYWORD and k not in PATIENT_COUNTS
    )
    return _Plan(query, statement, returned, unindexed, counts)


def _layout(plan: _Plan) -> answers.Layout:
    return answers.Layout.of(plan.returned, plan.counts, plan.unindexed, plan.query.level)


def _stored(
    connection: sa.Connection, plan: _Plan, rows: Sequence[sa.Row[Any]]
) -> dict[int, dict[str, Any]]:
    """Stored values of the attributes the index lacks, by row primary key."""
    pks = [row[0] for row in rows]
    return _representative_values(connection, plan.query.level, pks, plan.unindexed)


def _rows(connection: sa.Connection, query: Query) -> tuple[_Plan, Sequence[sa.Row[Any]], bool]:
    """The plan of ``query``, its rows up to ``limit``, and whether more matched."""
    if query.folded:
        prepare_folding(connection)
    plan = _plan(query, one_more=True)
    rows = connection.execute(plan.statement).all()
    more = query.limit is not None and len(rows) > query.limit
    return plan, rows[: query.limit] if query.limit is not None else rows, more


def search(connection: sa.Connection, query: Query) -> QueryResult:
    """Run ``query`` against the index.

    Raises
    ------
    InvalidQuery
        For unknown attributes, malformed values, or (when ``strict``) unsupported match keys.
    """
    plan, rows, more = _rows(connection, query)
    stored = _stored(connection, plan, rows)
    return QueryResult(answers.objects(_layout(plan), rows, stored), more)


def search_json(
    connection: sa.Connection, query: Query, *, retrieve_base: str | None = None
) -> JsonResult:
    """:func:`search` with its answers as one DICOM JSON array in UTF-8 (what QIDO-RS
    sends), written from the rows without building the objects first. With
    ``retrieve_base`` (the DICOMweb root URL) each answer carries its RetrieveURL.

    Raises
    ------
    InvalidQuery
        As :func:`search`.

    References
    ----------
    PS3.18 §F.2 (DICOM JSON), Table 10.6.3-3 (RetrieveURL in search answers).
    """
    plan, rows, more = _rows(connection, query)
    stored = _stored(connection, plan, rows)
    texts = answers.texts(_layout(plan), rows, stored, retrieve_base)
    return JsonResult(("[" + ",".join(texts) + "]").encode("utf-8"), more)


def search_stream(
    connection: sa.Connection, query: Query, *, chunk: int = STREAM_CHUNK
) -> Iterator[dict[str, Any]]:
    """The matches of ``query`` one by one, as the database returns them, ``chunk`` rows at
    a time: a consumer that stops early (a cancelled C-FIND) never makes the rest, and a
    large match count is never held in memory. Same matching and answers as :func:`search`
    (``limit`` caps the count; there is no "more" flag).

    Raises
    ------
    InvalidQuery
        As :func:`search`, before the first match.
    """
    if query.folded:
        prepare_folding(connection)
    plan = _plan(query, one_more=False)
    layout = _layout(plan)
    result = connection.execution_options(yield_per=chunk).execute(plan.statement)
    try:
        for rows in result.partitions(chunk):
            yield from answers.objects(layout, rows, _stored(connection, plan, rows))
    finally:
        result.close()


def count(connection: sa.Connection, query: Query) -> int:
    """How many entries match ``query`` (its paging and order aside).

    ``count(*)`` is exact: the FROM clause joins each entry only to its parents, one row each.
    """
    if query.folded:
        prepare_folding(connection)
    keywords = {resolve_keyword(k): v for k, v in query.match.items()}
    statement = (
        sa.select(sa.func.count())
        .select_from(_from_clause(query.level))
        .where(*_match_conditions(query, keywords, semijoin=True))
    )
    return int(connection.execute(statement).scalar_one())


def _ordering(query: Query) -> list[sa.ColumnElement[Any]]:
    """ORDER BY of ``query.order`` (indexed attributes of this level or above), then the
    primary key so that pages never overlap; or the level's default order. Person names sort
    by their case-folded form, as they match (``müller`` next to ``Müller``)."""
    if not query.order:
        return _ORDER[query.level]()
    allowed = set(_levels_down_to(query.level))
    terms: list[sa.ColumnElement[Any]] = []
    for key, descending in query.order:
        attribute = BY_KEYWORD.get(resolve_keyword(key))
        if attribute is None or attribute.level not in allowed:
            raise InvalidQuery(f"cannot sort {query.level.name.lower()} results by {key}")
        column = _column(attribute)
        if attribute.vr == "PN":
            column = schema.TABLES[attribute.level].c[f"{attribute.column}_norm"]
        terms.append(column.desc() if descending else column.asc())
    pk = schema.TABLES[query.level].c.pk
    return [*terms, pk.desc() if query.order[0][1] else pk.asc()]


def _representative_values(
    connection: sa.Connection, level: Level, pks: list[int], keywords: list[str]
) -> dict[int, dict[str, Any]]:
    """Values of attributes the index lacks, from the first stored instance under each row."""
    if not pks or not keywords or level == Level.PATIENT:
        return {}
    instances, series = schema.instances, schema.series
    if level == Level.IMAGE:
        owner = instances.c.pk
        source: sa.FromClause = instances
    elif level == Level.SERIES:
        owner = instances.c.series_pk
        source = instances
    else:
        owner = series.c.study_pk
        source = instances.join(series, instances.c.series_pk == series.c.pk)
    first = (
        sa.select(owner.label("owner"), sa.func.min(instances.c.pk).label("instance_pk"))
        .select_from(source)
        .where(owner.in_(pks))
        .group_by(owner)
        .subquery()
    )
    rows = connection.execute(
        sa.select(first.c.owner, instances.c.metadata_json).join(
            instances, instances.c.pk == first.c.instance_pk
        )
    ).all()
    tags = [f"{tag_for_keyword(k):08X}" for k in keywords]
    out: dict[int, dict[str, Any]] = {}
    for owner_pk, text in rows:
        data = json.loads(text)
        out[owner_pk] = {tag: data[tag] for tag in tags if tag in data}
    return out
