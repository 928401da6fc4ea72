"""Writes to the index tables: the rows ingest, study management and deletes change.

Every function here runs inside the caller's write transaction (``database.writer.begin()``)
and decides nothing: which instance is admitted, which duplicate wins and which blob goes
are the archive's rules (:mod:`klinika.archive`).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import sqlalchemy as sa
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from sqlalchemy.dialects import postgresql, sqlite

from klinika.dicom.attributes import BY_KEYWORD, Level, attributes_of
from klinika.errors import Conflict
from klinika.index import labels, schema
from klinika.index.matching import normalize_name

#: A header's top-level elements by tag (``ParsedInstance.elements``).
Elements: TypeAlias = Mapping[int, DataElement]


def index_values(elements: Elements, level: Level) -> dict[str, Any]:
    """Columns of the level's table, read from the header's top-level elements (derived
    attributes excluded)."""
    values: dict[str, Any] = {}
    for tag, column, vr in _read_columns(level):
        element = elements.get(tag)
        value = None if element is None else _value(element.value, vr)
        values[column] = value
        if vr == "PN":
            values[f"{column}_norm"] = normalize_name(value) if value else None
    if level == Level.PATIENT:
        values["patient_id"] = values["patient_id"] or ""
        values["issuer_of_patient_id"] = values["issuer_of_patient_id"] or ""
    return values


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def upsert_parents(
    connection: sa.Connection, elements: Elements, *, update: bool = False
) -> tuple[int, int]:
    """The instance's patient, study and series rows (created when missing), as
    ``(series_pk, study_pk)``. With ``update`` (a rewrite by study management), existing rows
    take the header's values and parent: the study may move to another patient, the series
    to another study."""
    patient = index_values(elements, Level.PATIENT)
    patient_pk = _insert_or_get(
        connection,
        schema.patients,
        patient,
        ("patient_id", "issuer_of_patient_id"),
        update=update,
    )
    study = index_values(elements, Level.STUDY) | {
        "patient_pk": patient_pk,
        "updated_at": utc_now(),
    }
    study_pk = _insert_or_get(
        connection,
        schema.studies,
        study,
        ("study_instance_uid",),
        update=update,
        new_only={"number_of_study_related_series": 0, "number_of_study_related_instances": 0},
    )
    series = index_values(elements, Level.SERIES) | {"study_pk": study_pk}
    series_pk = _insert_or_get(
        connection,
        schema.series,
        series,
        ("series_instance_uid",),
        update=update,
        new_only={"number_of_series_related_instances": 0},
    )
    return series_pk, study_pk


def insert_instance(connection: sa.Connection, values: dict[str, Any]) -> bool:
    """Insert an instance row; False (and nothing written) when its SOP Instance UID is
    already stored."""
    inserted = connection.execute(
        _statements().insert_instance[connection.dialect.name], values
    ).first()
    return inserted is not None


def overwrite_instance(connection: sa.Connection, values: dict[str, Any]) -> str:
    """Give the stored instance of the same SOP Instance UID these ``values`` (a duplicate
    under the ``overwrite`` policy); returns the blob key it had. The series it leaves, if
    another, is refreshed."""
    instances = schema.instances
    existing = connection.execute(
        sa.select(instances.c.pk, instances.c.blob_key, instances.c.series_pk).where(
            instances.c.sop_instance_uid == values["sop_instance_uid"]
        )
    ).one()
    connection.execute(sa.update(instances).where(instances.c.pk == existing.pk).values(values))
    if existing.series_pk != values["series_pk"]:
        refresh_series(connection, existing.series_pk)
    return str(existing.blob_key)


def replace_instances(
    connection: sa.Connection,
    expected: dict[str, str],
    rewrites: Sequence[tuple[Elements, dict[str, Any]]],
) -> None:
    """Switch stored instances to rewritten ones (study management) in the caller's
    transaction: ``expected`` maps each SOP Instance UID to the blob key it must still have,
    ``rewrites`` are the new headers' elements with their instance rows. Parents are created or
    updated from the new headers, counts and metadata versions refreshed, emptied parents
    removed.

    Raises
    ------
    Conflict
        An instance changed, or a series concerned received instances, since ``expected``
        was read: nothing was changed.
    """
    instances, series = schema.instances, schema.series
    rows = connection.execute(
        sa.select(instances.c.sop_instance_uid, instances.c.blob_key, instances.c.series_pk).where(
            instances.c.sop_instance_uid.in_(list(expected))
        )
    ).all()
    stored = {row[0]: (row[1], int(row[2])) for row in rows}
    old_series: dict[int, int] = {}
    for sop_instance_uid, blob_key in expected.items():
        found = stored.get(sop_instance_uid)
        if found is None or found[0] != blob_key:
            raise Conflict(f"instance {sop_instance_uid} changed meanwhile; nothing was changed")
        old_series[found[1]] = old_series.get(found[1], 0) + 1
    # PostgreSQL: wait for ingest transactions already writing into these series (their
    # instances then count below), and hold off new ones until this one committed
    connection.execute(
        sa.select(series.c.pk).where(series.c.pk.in_(old_series)).with_for_update()
    ).all()
    held: dict[int, int] = dict(
        connection.execute(
            sa.select(instances.c.series_pk, sa.func.count())
            .where(instances.c.series_pk.in_(old_series))
            .group_by(instances.c.series_pk)
        ).all()
    )
    if any(held.get(pk, 0) != n for pk, n in old_series.items()):
        raise Conflict("a series concerned received instances meanwhile; nothing was changed")
    old_studies = set(
        connection.execute(
            sa.select(series.c.study_pk).where(series.c.pk.in_(old_series))
        ).scalars()
    )
    parents: dict[tuple[str, str], tuple[int, int]] = {}
    study_tag, series_tag = BY_KEYWORD["StudyInstanceUID"].tag, BY_KEYWORD["SeriesInstanceUID"].tag
    for elements, values in rewrites:
        key = (str(elements[study_tag].value), str(elements[series_tag].value))
        if key not in parents:
            parents[key] = upsert_parents(connection, elements, update=True)
        series_pk, _ = parents[key]
        connection.execute(
            sa.update(instances)
            .where(instances.c.sop_instance_uid == values["sop_instance_uid"])
            .values(values | {"series_pk": series_pk})
        )
    for series_pk in set(old_series) | {pk for pk, _ in parents.values()}:
        refresh_series(connection, series_pk)
    remove_empty(connection, set(old_series))
    for study_pk in old_studies | {pk for _, pk in parents.values()}:
        refresh_study(connection, study_pk)
    remove_empty(connection, set(), old_studies)


def delete_instances(connection: sa.Connection, study_uid: str, sop_uids: list[str]) -> None:
    """Delete these instance rows of a study, refresh what held them, remove the series,
    studies and patients left empty and the labels of a study that is gone."""
    instances, series = schema.instances, schema.series
    series_pks = set(
        connection.execute(
            sa.select(instances.c.series_pk).where(instances.c.sop_instance_uid.in_(sop_uids))
        ).scalars()
    )
    study_pks = set(
        connection.execute(
            sa.select(series.c.study_pk).where(series.c.pk.in_(series_pks))
        ).scalars()
    )
    connection.execute(sa.delete(instances).where(instances.c.sop_instance_uid.in_(sop_uids)))
    for pk in series_pks:
        refresh_series(connection, pk)
    remove_empty(connection, series_pks)
    for pk in study_pks:
        refresh_study(connection, pk)
    remove_empty(connection, set(), study_pks)
    labels.forget_if_gone(connection, study_uid)


def refresh_counts(connection: sa.Connection) -> None:
    """Recompute every series' and study's counts and modalities."""
    for pk in connection.execute(sa.select(schema.series.c.pk)).scalars().all():
        refresh_series(connection, pk)
    for pk in connection.execute(sa.select(schema.studies.c.pk)).scalars().all():
        refresh_study(connection, pk)


def refresh_series(connection: sa.Connection, series_pk: int) -> None:
    """A series' instance count, and a new metadata version (caches follow it)."""
    connection.execute(_statements().refresh_series, {"target_pk": series_pk})


def refresh_study(connection: sa.Connection, study_pk: int) -> None:
    """A study's series and instance counts and its ModalitiesInStudy."""
    statements = _statements()
    rows = connection.execute(statements.study_series, {"target_pk": study_pk}).all()
    modalities = sorted({r.modality for r in rows if r.modality})
    connection.execute(
        statements.refresh_study,
        {
            "target_pk": study_pk,
            "modalities_in_study": "\\".join(modalities) or None,
            "number_of_study_related_series": len(rows),
            "number_of_study_related_instances": sum(r[1] or 0 for r in rows),
            "updated_at": utc_now(),
        },
    )


def remove_empty(
    connection: sa.Connection, series_pks: set[int], study_pks: set[int] | None = None
) -> None:
    """Delete the series among ``series_pks`` and the studies among ``study_pks`` that hold
    nothing any more, then every patient without a study."""
    instances, series, studies = schema.instances, schema.series, schema.studies
    if series_pks:
        connection.execute(
            sa.delete(series).where(
                series.c.pk.in_(series_pks),
                ~sa.exists().where(instances.c.series_pk == series.c.pk),
            )
        )
    if study_pks:
        connection.execute(
            sa.delete(studies).where(
                studies.c.pk.in_(study_pks),
                ~sa.exists().where(series.c.study_pk == studies.c.pk),
            )
        )
    connection.execute(
        sa.delete(schema.patients).where(
            ~sa.exists().where(studies.c.patient_pk == schema.patients.c.pk)
        )
    )


@functools.cache
def _read_columns(level: Level) -> tuple[tuple[int, str, str], ...]:
    """(tag, column, VR) of the level's attributes read from the header."""
    return tuple((a.tag, a.column, a.vr) for a in attributes_of(level) if not a.derived)


def _value(value: Any, vr: str) -> Any:
    """An element's value as its column holds it."""
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    if vr in {"IS", "US", "UL", "SS", "SL"}:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return str(value)


def _dialect_insert(connection: sa.Connection) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the connection's dialect."""
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _insert_or_get(
    connection: sa.Connection,
    table: sa.Table,
    values: dict[str, Any],
    keys: tuple[str, ...],
    *,
    update: bool = False,
    new_only: dict[str, Any] | None = None,
) -> int:
    """Insert a row unless one with the same ``keys`` exists (``new_only`` are values of a
    new row only); return its primary key. With ``update``, an existing row takes ``values``.

    ``INSERT … ON CONFLICT DO NOTHING`` keeps concurrent writers on PostgreSQL from failing;
    on SQLite the writer already holds the database lock.
    """
    where = [table.c[k] == values[k] for k in keys]
    found = connection.execute(sa.select(table.c.pk).where(*where)).scalar()
    if found is not None:
        if update:
            connection.execute(sa.update(table).where(table.c.pk == found).values(values))
        return int(found)
    connection.execute(
        _dialect_insert(connection)(table)
        .values(values | (new_only or {}))
        .on_conflict_do_nothing(index_elements=keys)
    )
    return int(connection.execute(sa.select(table.c.pk).where(*where)).scalar_one())


@dataclass(frozen=True)
class _Statements:
    """The statements of the ingest hot path, built once: SQLAlchemy then reuses their cache
    keys and compiled forms instead of rebuilding both for every instance."""

    insert_instance: dict[str, Any]
    refresh_series: sa.Update
    study_series: sa.Select[Any]
    refresh_study: sa.Update


@functools.cache
def _statements() -> _Statements:
    instances, series, studies = schema.instances, schema.series, schema.studies
    count = sa.select(sa.func.count()).where(instances.c.series_pk == series.c.pk).scalar_subquery()
    return _Statements(
        insert_instance={
            name: dialect_insert(instances)
            .on_conflict_do_nothing(index_elements=["sop_instance_uid"])
            .returning(instances.c.pk)
            for name, dialect_insert in (
                ("sqlite", sqlite.insert),
                ("postgresql", postgresql.insert),
            )
        },
        refresh_series=sa.update(series)
        .where(series.c.pk == sa.bindparam("target_pk"))
        .values(
            number_of_series_related_instances=count,
            metadata_version=series.c.metadata_version + 1,
        ),
        study_series=sa.select(
            series.c.modality, series.c.number_of_series_related_instances
        ).where(series.c.study_pk == sa.bindparam("target_pk")),
        refresh_study=sa.update(studies).where(studies.c.pk == sa.bindparam("target_pk")),
    )
