"""Index tables: one per query/retrieve level, columns generated from the attribute table.

Every attribute in :data:`klinika.dicom.attributes.INDEXED_ATTRIBUTES` becomes a column of its
level's table; person names also get a ``<column>_norm`` column (case-folded) for
case-insensitive matching (PS3.4 C.2.2.2.1).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from klinika.db import metadata
from klinika.dicom.attributes import Level, attributes_of

TABLE_NAMES = {
    Level.PATIENT: "patients",
    Level.STUDY: "studies",
    Level.SERIES: "series",
    Level.IMAGE: "instances",
}
PARENT = {Level.STUDY: Level.PATIENT, Level.SERIES: Level.STUDY, Level.IMAGE: Level.SERIES}
PARENT_KEY = {Level.STUDY: "patient_pk", Level.SERIES: "study_pk", Level.IMAGE: "series_pk"}


def _attribute_columns(level: Level) -> list[sa.Column[Any]]:
    columns: list[sa.Column[Any]] = []
    for attribute in attributes_of(level):
        kind: sa.types.TypeEngine[Any] = sa.Integer() if attribute.is_integer else sa.String()
        columns.append(sa.Column(attribute.column, kind, nullable=True))
        if attribute.vr == "PN":
            columns.append(sa.Column(f"{attribute.column}_norm", sa.String(), nullable=True))
    return columns


patients = sa.Table(
    "patients",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    *_attribute_columns(Level.PATIENT),
    sa.UniqueConstraint("patient_id", "issuer_of_patient_id", name="uq_patients_identity"),
)

studies = sa.Table(
    "studies",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("patient_pk", sa.ForeignKey("patients.pk", ondelete="CASCADE"), nullable=False),
    *_attribute_columns(Level.STUDY),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("study_instance_uid"),
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("study_pk", sa.ForeignKey("studies.pk", ondelete="CASCADE"), nullable=False),
    *_attribute_columns(Level.SERIES),
    sa.Column("metadata_version", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("series_instance_uid"),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("series_pk", sa.ForeignKey("series.pk", ondelete="CASCADE"), nullable=False),
    *_attribute_columns(Level.IMAGE),
    sa.Column("blob_key", sa.String(64), nullable=False),
    sa.Column("blob_size", sa.BigInteger, nullable=False),
    sa.Column("metadata_json", sa.Text, nullable=False),
    sa.Column("pixel_location", sa.Text, nullable=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("sop_instance_uid"),
)

sa.Index("ix_patients_patient_name_norm", patients.c.patient_name_norm)
sa.Index("ix_studies_patient_pk", studies.c.patient_pk)
# the default study order (date, time, newest first) read off one index; date ranges too
sa.Index("ix_studies_study_date_time", studies.c.study_date, studies.c.study_time)
sa.Index("ix_studies_accession_number", studies.c.accession_number)
sa.Index("ix_studies_study_description", studies.c.study_description)  # worklist sort
# a study's series, and ModalitiesInStudy's EXISTS (one lookup per study, not a scan)
sa.Index("ix_series_study_pk_modality", series.c.study_pk, series.c.modality)
sa.Index("ix_series_modality", series.c.modality)
sa.Index("ix_instances_series_pk", instances.c.series_pk, instances.c.instance_number)
sa.Index("ix_instances_blob_key", instances.c.blob_key)

TABLES = {
    Level.PATIENT: patients,
    Level.STUDY: studies,
    Level.SERIES: series,
    Level.IMAGE: instances,
}
