"""``study_labels``: labels on studies, to tag studies and filter the worklist by.

Revision ID: 0008
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_labels",
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("study_instance_uid", "label", name="pk_study_labels"),
    )
    op.create_index("ix_study_labels_label", "study_labels", ["label"])


def downgrade() -> None:
    op.drop_index("ix_study_labels_label", table_name="study_labels")
    op.drop_table("study_labels")
