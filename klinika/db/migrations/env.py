"""Alembic environment: runs on the connection handed in by :func:`klinika.db.migrate.upgrade`."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through klinika.db.migrate.upgrade")
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
