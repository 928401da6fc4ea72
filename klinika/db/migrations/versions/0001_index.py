"""Index tables: patients, studies, series, instances.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("patient_id", sa.String(), nullable=True),
        sa.Column("issuer_of_patient_id", sa.String(), nullable=True),
        sa.Column("patient_name", sa.String(), nullable=True),
        sa.Column("patient_name_norm", sa.String(), nullable=True),
        sa.Column("patient_birth_date", sa.String(), nullable=True),
        sa.Column("patient_sex", sa.String(), nullable=True),
        sa.UniqueConstraint("patient_id", "issuer_of_patient_id", name="uq_patients_identity"),
    )
    op.create_index("ix_patients_patient_name_norm", "patients", ["patient_name_norm"])
    op.create_table(
        "studies",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column(
            "patient_pk",
            sa.Integer(),
            sa.ForeignKey("patients.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("study_instance_uid", sa.String(), nullable=True),
        sa.Column("study_date", sa.String(), nullable=True),
        sa.Column("study_time", sa.String(), nullable=True),
        sa.Column("accession_number", sa.String(), nullable=True),
        sa.Column("study_id", sa.String(), nullable=True),
        sa.Column("study_description", sa.String(), nullable=True),
        sa.Column("referring_physician_name", sa.String(), nullable=True),
        sa.Column("referring_physician_name_norm", sa.String(), nullable=True),
        sa.Column("timezone_offset_from_utc", sa.String(), nullable=True),
        sa.Column("patient_age", sa.String(), nullable=True),
        sa.Column("institution_name", sa.String(), nullable=True),
        sa.Column("modalities_in_study", sa.String(), nullable=True),
        sa.Column("number_of_study_related_series", sa.Integer(), nullable=True),
        sa.Column("number_of_study_related_instances", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("study_instance_uid", name="uq_studies_study_instance_uid"),
    )
    op.create_index("ix_studies_patient_pk", "studies", ["patient_pk"])
    op.create_index("ix_studies_accession_number", "studies", ["accession_number"])
    op.create_index("ix_studies_study_date", "studies", ["study_date"])
    op.create_table(
        "series",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column(
            "study_pk",
            sa.Integer(),
            sa.ForeignKey("studies.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("series_instance_uid", sa.String(), nullable=True),
        sa.Column("modality", sa.String(), nullable=True),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("series_description", sa.String(), nullable=True),
        sa.Column("series_date", sa.String(), nullable=True),
        sa.Column("series_time", sa.String(), nullable=True),
        sa.Column("body_part_examined", sa.String(), nullable=True),
        sa.Column("laterality", sa.String(), nullable=True),
        sa.Column("protocol_name", sa.String(), nullable=True),
        sa.Column("manufacturer", sa.String(), nullable=True),
        sa.Column("performed_procedure_step_start_date", sa.String(), nullable=True),
        sa.Column("performed_procedure_step_start_time", sa.String(), nullable=True),
        sa.Column("number_of_series_related_instances", sa.Integer(), nullable=True),
        sa.Column("metadata_version", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("series_instance_uid", name="uq_series_series_instance_uid"),
    )
    op.create_index("ix_series_study_pk", "series", ["study_pk"])
    op.create_index("ix_series_modality", "series", ["modality"])
    op.create_table(
        "instances",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column(
            "series_pk",
            sa.Integer(),
            sa.ForeignKey("series.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sop_instance_uid", sa.String(), nullable=True),
        sa.Column("sop_class_uid", sa.String(), nullable=True),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("columns", sa.Integer(), nullable=True),
        sa.Column("bits_allocated", sa.Integer(), nullable=True),
        sa.Column("number_of_frames", sa.Integer(), nullable=True),
        sa.Column("content_date", sa.String(), nullable=True),
        sa.Column("content_time", sa.String(), nullable=True),
        sa.Column("acquisition_number", sa.Integer(), nullable=True),
        sa.Column("image_type", sa.String(), nullable=True),
        sa.Column("available_transfer_syntax_uid", sa.String(), nullable=True),
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("blob_size", sa.BigInteger(), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("pixel_location", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("sop_instance_uid", name="uq_instances_sop_instance_uid"),
    )
    op.create_index("ix_instances_series_pk", "instances", ["series_pk", "instance_number"])
    op.create_index("ix_instances_blob_key", "instances", ["blob_key"])


def downgrade() -> None:
    op.drop_table("instances")
    op.drop_table("series")
    op.drop_table("studies")
    op.drop_table("patients")
