"""Radiology reports: one per study, with versions (draft, final; amendments are new versions).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("pdf_series_uid", sa.String(64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("study_instance_uid", name="uq_reports_study_instance_uid"),
    )
    op.create_table(
        "report_versions",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column(
            "report_pk",
            sa.Integer(),
            sa.ForeignKey("reports.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("template", sa.String(16), nullable=True),
        sa.Column("sections", sa.Text(), nullable=False),
        sa.Column("key_images", sa.Text(), nullable=False),
        sa.Column("amendment_reason", sa.Text(), nullable=True),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("signed_by", sa.String(64), nullable=True),
        sa.Column("signed_by_name", sa.String(128), nullable=True),
        sa.Column("signed_at", sa.BigInteger(), nullable=True),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("pdf_sop_instance_uid", sa.String(64), nullable=True),
        sa.Column("stored_in_study", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("report_pk", "number", name="uq_report_versions_number"),
    )


def downgrade() -> None:
    op.drop_table("report_versions")
    op.drop_table("reports")
