"""Audit tables: ``audit_events`` (the chain) and ``audit_chain`` (its head, one row)."""

from __future__ import annotations

import sqlalchemy as sa

from klinika.db import metadata

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("occurred_at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("study_uid", sa.String(64), nullable=True),
    sa.Column("series_uid", sa.String(64), nullable=True),
    sa.Column("sop_instance_uid", sa.String(64), nullable=True),
    sa.Column("patient_id", sa.String(64), nullable=True),
    sa.Column("source", sa.String(256), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
sa.Index("ix_audit_events_occurred_at", audit_events.c.occurred_at)
sa.Index("ix_audit_events_actor", audit_events.c.actor)
sa.Index("ix_audit_events_study_uid", audit_events.c.study_uid)
sa.Index("ix_audit_events_patient_id", audit_events.c.patient_id)

audit_chain = sa.Table(
    "audit_chain",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
