"""Clinical workflow: scheduled procedure steps (the modality worklist) and MPPS instances.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduled_steps",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("step_id", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("patient_name", sa.String(324), nullable=False),
        sa.Column("patient_name_norm", sa.String(324), nullable=False),
        sa.Column("patient_birth_date", sa.String(8), nullable=True),
        sa.Column("patient_sex", sa.String(16), nullable=True),
        sa.Column("accession_number", sa.String(16), nullable=False),
        sa.Column("requested_procedure_id", sa.String(16), nullable=False),
        sa.Column("requested_procedure_description", sa.String(64), nullable=True),
        sa.Column("procedure_code_value", sa.String(16), nullable=True),
        sa.Column("procedure_code_scheme", sa.String(16), nullable=True),
        sa.Column("procedure_code_meaning", sa.String(64), nullable=True),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("station_ae_title", sa.String(16), nullable=True),
        sa.Column("start_date", sa.String(8), nullable=False),
        sa.Column("start_time", sa.String(16), nullable=False),
        sa.Column("performing_physician", sa.String(324), nullable=True),
        sa.Column("performing_physician_norm", sa.String(324), nullable=True),
        sa.Column("referring_physician", sa.String(324), nullable=True),
        sa.Column("referring_physician_norm", sa.String(324), nullable=True),
        sa.Column("step_description", sa.String(64), nullable=True),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("performed_uid", sa.String(64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("step_id", name="uq_scheduled_steps_step_id"),
        sa.UniqueConstraint("study_instance_uid", name="uq_scheduled_steps_study_instance_uid"),
    )
    op.create_index("ix_scheduled_steps_start", "scheduled_steps", ["start_date", "start_time"])
    op.create_index("ix_scheduled_steps_accession_number", "scheduled_steps", ["accession_number"])
    op.create_table(
        "performed_steps",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "step_pk",
            sa.Integer(),
            sa.ForeignKey("scheduled_steps.pk", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("study_instance_uid", sa.String(64), nullable=True),
        sa.Column("station_ae_title", sa.String(16), nullable=True),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("sop_instance_uid", name="uq_performed_steps_sop_instance_uid"),
    )
    op.create_index("ix_performed_steps_step_pk", "performed_steps", ["step_pk"])


def downgrade() -> None:
    op.drop_table("performed_steps")
    op.drop_table("scheduled_steps")
