"""Lookups by key in the index tables: the rows of a study, series or instance, a study's
patient, a series' metadata version, which blobs are referenced.

Searching by attributes is the query engine's (:mod:`klinika.index.query`); these are the
direct reads the archive needs around ingest, retrieval and deletes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from klinika.index import schema
from klinika.index.matching import comparable_name


@dataclass(frozen=True)
class StudyPatient:
    """The patient a stored study belongs to, as the index holds it."""

    patient_id: str
    issuer: str | None
    name: str | None


def study_patient(connection: sa.Connection, study_uid: str) -> StudyPatient | None:
    """The patient a stored study holds: identity (ID, issuer) from the patient row, the name
    from one of the study's instances (the patient row keeps the name of the patient's first
    study; a later study may spell it otherwise, e.g. after a marriage)."""
    statement = _study_patient_statement(connection.dialect.name)
    row = connection.execute(statement, {"study_uid": study_uid}).first()
    if row is None:
        return None
    return StudyPatient(row[0] or "", row[1] or None, comparable_name(row[2]))


def series_parents(
    connection: sa.Connection, study_uid: str, series_uid: str
) -> tuple[int, int] | None:
    """``(series_pk, study_pk)`` of a stored series of that study, or None."""
    found = connection.execute(
        _series_statement(), {"study_uid": study_uid, "series_uid": series_uid}
    ).first()
    return (int(found[0]), int(found[1])) if found is not None else None


def stored_sop_instance_uids(connection: sa.Connection, sop_instance_uids: set[str]) -> set[str]:
    """Which of these SOP Instance UIDs are already stored."""
    if not sop_instance_uids:
        return set()
    column = schema.instances.c.sop_instance_uid
    return set(connection.execute(sa.select(column).where(column.in_(sop_instance_uids))).scalars())


def referenced_blob_keys(connection: sa.Connection, keys: Iterable[str]) -> set[str]:
    """Which of these blob keys an instance row refers to."""
    column = schema.instances.c.blob_key
    return set(connection.execute(sa.select(column).where(column.in_(list(keys)))).scalars())


def instance_rows(
    connection: sa.Connection,
    study_uid: str,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> Sequence[sa.Row[*tuple[Any, ...]]]:
    """The instance rows of a study, series or one instance, in series and instance order:
    study, series and SOP Instance UIDs, SOP class, transfer syntax, blob key and size,
    number of frames, pixel location (JSON) and DICOM JSON."""
    instances, series, studies = schema.instances, schema.series, schema.studies
    statement = (
        sa.select(
            studies.c.study_instance_uid,
            series.c.series_instance_uid,
            instances.c.sop_instance_uid,
            instances.c.sop_class_uid,
            instances.c.available_transfer_syntax_uid,
            instances.c.blob_key,
            instances.c.blob_size,
            instances.c.number_of_frames,
            instances.c.pixel_location,
            instances.c.metadata_json,
        )
        .select_from(
            instances.join(series, instances.c.series_pk == series.c.pk).join(
                studies, series.c.study_pk == studies.c.pk
            )
        )
        .where(studies.c.study_instance_uid == study_uid)
        .order_by(series.c.series_number, series.c.pk, instances.c.instance_number, instances.c.pk)
    )
    if series_uid is not None:
        statement = statement.where(series.c.series_instance_uid == series_uid)
    if sop_instance_uid is not None:
        statement = statement.where(instances.c.sop_instance_uid == sop_instance_uid)
    return connection.execute(statement).all()


def series_version(
    connection: sa.Connection, study_uid: str, series_uid: str
) -> tuple[int, int] | None:
    """``(series_pk, metadata_version)`` of a series of that study, or None (on every frame
    request: the statement is built once)."""
    row = connection.execute(
        _series_statement(), {"study_uid": study_uid, "series_uid": series_uid}
    ).first()
    return (int(row[0]), int(row[2])) if row is not None else None


def series_metadata_json(connection: sa.Connection, series_pk: int) -> Iterator[str]:
    """The stored DICOM JSON of a series' instances, in instance order."""
    instances = schema.instances
    return iter(
        connection.execute(
            sa.select(instances.c.metadata_json)
            .where(instances.c.series_pk == series_pk)
            .order_by(instances.c.instance_number, instances.c.pk)
        ).scalars()
    )


def series_uids(connection: sa.Connection, study_uid: str) -> list[str]:
    """Series Instance UIDs of a study, in series order (empty when there is no such study)."""
    series, studies = schema.series, schema.studies
    return list(
        connection.execute(
            sa.select(series.c.series_instance_uid)
            .join(studies, series.c.study_pk == studies.c.pk)
            .where(studies.c.study_instance_uid == study_uid)
            .order_by(series.c.series_number, series.c.pk)
        ).scalars()
    )


def stored_bytes(connection: sa.Connection) -> int:
    """The size of every stored instance, as received."""
    total = connection.execute(sa.select(sa.func.sum(schema.instances.c.blob_size)))
    return int(total.scalar_one() or 0)


def patient_keys(
    connection: sa.Connection, patient_id: str, issuer: str | None
) -> list[tuple[str, str]]:
    """``(patient_id, issuer)`` of the patient rows with this ID (and this issuer, if given)."""
    patients = schema.patients
    statement = sa.select(patients.c.patient_id, patients.c.issuer_of_patient_id).where(
        patients.c.patient_id == patient_id
    )
    if issuer is not None:
        statement = statement.where(patients.c.issuer_of_patient_id == issuer)
    return [(row[0], row[1] or "") for row in connection.execute(statement)]


def patient_studies(connection: sa.Connection, patient_id: str, issuer: str) -> list[str]:
    """The Study Instance UIDs of a patient, sorted."""
    patients, studies = schema.patients, schema.studies
    return list(
        connection.execute(
            sa.select(studies.c.study_instance_uid)
            .join(patients, studies.c.patient_pk == patients.c.pk)
            .where(
                patients.c.patient_id == patient_id,
                patients.c.issuer_of_patient_id == issuer,
            )
            .order_by(studies.c.study_instance_uid)
        ).scalars()
    )


@functools.cache
def _series_statement() -> sa.Select[Any]:
    """A series of a study: ``(pk, study_pk, metadata_version)``. Built once (the ingest and
    per-frame hot paths): SQLAlchemy reuses its cache key and compiled form."""
    series, studies = schema.series, schema.studies
    return (
        sa.select(series.c.pk, series.c.study_pk, series.c.metadata_version)
        .join(studies, series.c.study_pk == studies.c.pk)
        .where(
            series.c.series_instance_uid == sa.bindparam("series_uid"),
            studies.c.study_instance_uid == sa.bindparam("study_uid"),
        )
    )


@functools.cache
def _study_patient_statement(dialect: str) -> sa.Select[Any]:
    """Built once per database kind (the ingest hot path): the study's patient row and the
    alphabetic PatientName of one of its instances, read from its DICOM JSON by the
    database (the document is not sent to Python and parsed there), in one statement."""
    instances, series, studies, patients = (
        schema.instances,
        schema.series,
        schema.studies,
        schema.patients,
    )
    document = (  # text in both; PostgreSQL's JSON operators need the cast, SQLite's not
        sa.cast(instances.c.metadata_json, sa.JSON)
        if dialect == "postgresql"
        else sa.type_coerce(instances.c.metadata_json, sa.JSON)
    )
    name = document[("00100010", "Value", 0, "Alphabetic")].as_string()
    one_instance = (
        sa.select(name)
        .join(series, instances.c.series_pk == series.c.pk)
        .where(series.c.study_pk == studies.c.pk)
        .limit(1)
        .scalar_subquery()
    )
    return (
        sa.select(patients.c.patient_id, patients.c.issuer_of_patient_id, one_instance)
        .join(studies, studies.c.patient_pk == patients.c.pk)
        .where(studies.c.study_instance_uid == sa.bindparam("study_uid"))
    )
