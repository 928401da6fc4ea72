"""``sessions.last_seen_at`` (the sessions page shows each session's last activity) and new
users' language ``auto`` (follow the browser) by default.

Revision ID: 0006_session_activity
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_session_activity"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_seen_at", sa.BigInteger, nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "language", existing_type=sa.String(8), existing_nullable=False, server_default="auto"
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "language", existing_type=sa.String(8), existing_nullable=False, server_default="en"
        )
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("last_seen_at")
