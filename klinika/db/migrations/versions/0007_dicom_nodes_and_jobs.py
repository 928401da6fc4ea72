"""``dicom_nodes`` (DICOM nodes added in the console) and ``dimse_jobs`` (Send to… and
Query/Retrieve jobs with their progress and result).

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dicom_nodes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("tls", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("services", sa.String(64), nullable=False),
        sa.Column("retrieve", sa.String(8), nullable=False, server_default="move"),
        sa.Column("description", sa.String(255), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("title", name=op.f("uq_dicom_nodes_title")),
    )
    op.create_table(
        "dimse_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("node", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("target", sa.JSON, nullable=False),
        sa.Column("total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("warnings", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
    )
    op.create_index(op.f("ix_dimse_jobs_created_at"), "dimse_jobs", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dimse_jobs_created_at"), table_name="dimse_jobs")
    op.drop_table("dimse_jobs")
    op.drop_table("dicom_nodes")
