"""Auth tables: ``users`` and ``sessions`` (one row per issued token). Times are Unix seconds."""

from __future__ import annotations

import sqlalchemy as sa

from klinika.db import metadata

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(128), nullable=False, server_default=""),
    sa.Column("role", sa.String(16), nullable=False),
    # a language code, or "auto": follow the browser's Accept-Language
    sa.Column("language", sa.String(8), nullable=False, server_default="auto"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("password_changed_at", sa.BigInteger, nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_login_at", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # a generated first password: every action but changing it is refused until it is changed
    sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("source", sa.String(256), nullable=True),
    sa.Column("user_agent", sa.String(256), nullable=True),
    # the last request seen with this session (written at most once a minute)
    sa.Column("last_seen_at", sa.BigInteger, nullable=True),
)
sa.Index("ix_sessions_user_id", sessions.c.user_id)

#: Failed logins per (username, source address): a lockout started from one address does not
#: lock the account's owner out from another.
login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("locked_until", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
