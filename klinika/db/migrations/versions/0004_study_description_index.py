"""An index on the study description, for the worklist's sort by description.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_studies_study_description", "studies", ["study_description"])


def downgrade() -> None:
    op.drop_index("ix_studies_study_description", table_name="studies")
