"""Indexes for a large index: the default study order (date, time) off one index, and
ModalitiesInStudy as one (study, modality) lookup per study instead of a scan of every
series of the modality (which grew with the square of the number of studies).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_studies_study_date_time", "studies", ["study_date", "study_time"])
    op.drop_index("ix_studies_study_date", table_name="studies")
    op.create_index("ix_series_study_pk_modality", "series", ["study_pk", "modality"])
    op.drop_index("ix_series_study_pk", table_name="series")


def downgrade() -> None:
    op.create_index("ix_series_study_pk", "series", ["study_pk"])
    op.drop_index("ix_series_study_pk_modality", table_name="series")
    op.create_index("ix_studies_study_date", "studies", ["study_date"])
    op.drop_index("ix_studies_study_date_time", table_name="studies")
