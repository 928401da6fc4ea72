"""Report tables: ``reports`` (one per study) and ``report_versions`` (its versions).

A report's ``revision`` grows with every change (save, sign, amend): a writer states the
revision it read, and a change made meanwhile by someone else turns its write into a conflict
instead of a silent overwrite. Times are Unix seconds.
"""

from __future__ import annotations

import sqlalchemy as sa

from klinika.db import metadata

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("study_instance_uid", sa.String(64), nullable=False, unique=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("pdf_series_uid", sa.String(64), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

report_versions = sa.Table(
    "report_versions",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "report_pk", sa.Integer, sa.ForeignKey("reports.pk", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("template", sa.String(16), nullable=True),
    sa.Column("sections", sa.Text, nullable=False),
    sa.Column("key_images", sa.Text, nullable=False),
    sa.Column("amendment_reason", sa.Text, nullable=True),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("signed_by", sa.String(64), nullable=True),
    sa.Column("signed_by_name", sa.String(128), nullable=True),
    sa.Column("signed_at", sa.BigInteger, nullable=True),
    sa.Column("pdf", sa.LargeBinary, nullable=True),
    sa.Column("pdf_sop_instance_uid", sa.String(64), nullable=True),
    sa.Column("stored_in_study", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("report_pk", "number", name="uq_report_versions_number"),
)
