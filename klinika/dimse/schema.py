"""The ``dimse_jobs`` table: Send to… and Query/Retrieve jobs, their progress and result.

``state`` is ``queued``, ``running``, ``done`` (every sub-operation tried; ``failed`` may be
above 0), ``failed`` (the job could not go on: the peer refused, a network error) or
``interrupted`` (the server stopped while it ran). ``target`` names what the job moves
(study, series, node). Times are Unix seconds.
"""

from __future__ import annotations

import sqlalchemy as sa

from klinika.db import metadata

dimse_jobs = sa.Table(
    "dimse_jobs",
    metadata,
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
sa.Index("ix_dimse_jobs_created_at", dimse_jobs.c.created_at)
