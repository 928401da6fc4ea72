"""A consistent copy of the index database, and putting one back.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies the file page by page
under one read transaction; in WAL mode writers go on meanwhile. PostgreSQL: ``pg_dump`` with a
snapshot exported from our own ``REPEATABLE READ`` transaction, so the blob list we read and
the dump see exactly the same rows.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from klinika.backup.manifest import BackupError, copy_durably, fsync_dir
from klinika.db import Database
from klinika.db.copy import copy_database

COUNTED = ("patients", "studies", "series", "instances", "users", "audit_events")
DUMP_FILES = {"sqlite": "index.sqlite", "postgresql": "index.pgdump"}


@dataclass(frozen=True)
class IndexSnapshot:
    """The dump file, and what that snapshot references and counts."""

    file: Path
    dialect: str
    blobs: list[tuple[str, int]]
    counts: dict[str, int]
    audit_head: tuple[int, str] | None


def dialect_of(database_url: str) -> str:
    return sa.engine.make_url(database_url).get_backend_name()


def dump_index(database_url: str, folder: Path) -> IndexSnapshot:
    """Write a consistent copy of the index into ``folder``.

    Raises
    ------
    BackupError
        For an unsupported database, or when ``pg_dump`` is missing or fails.
    """
    dialect = dialect_of(database_url)
    if dialect == "sqlite":
        return _dump_sqlite(database_url, folder / DUMP_FILES["sqlite"])
    if dialect == "postgresql":
        return _dump_postgresql(database_url, folder / DUMP_FILES["postgresql"])
    raise BackupError(f"backups of a {dialect} index are not supported (SQLite, PostgreSQL)")


def _dump_sqlite(database_url: str, target: Path) -> IndexSnapshot:
    live_path = sa.engine.make_url(database_url).database
    if not live_path or not Path(live_path).exists():
        raise BackupError(f"there is no index database at {live_path}")
    with sqlite3.connect(live_path, timeout=60) as live, sqlite3.connect(target) as copy:
        live.backup(copy)
    with target.open("rb+") as handle:
        os.fsync(handle.fileno())
    engine = sa.create_engine(f"sqlite:///{target}", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return _describe(connection, target, "sqlite")
    finally:
        engine.dispose()


def _dump_postgresql(database_url: str, target: Path) -> IndexSnapshot:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump is not on PATH (install the PostgreSQL client tools)")
    libpq, env = _libpq(database_url)
    engine = sa.create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
            snapshot_id = connection.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            described = _describe(connection, target, "postgresql")
            # the snapshot lives as long as this transaction: pg_dump runs inside it
            result = subprocess.run(
                [
                    pg_dump,
                    "--format=custom",
                    "--no-owner",
                    f"--snapshot={snapshot_id}",
                    f"--file={target}",
                    f"--dbname={libpq}",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
    finally:
        engine.dispose()
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    return described


def _describe(connection: sa.Connection, dump: Path, dialect: str) -> IndexSnapshot:
    """Blob keys, counts and the audit chain's head, read from the snapshot itself."""
    tables = set(sa.inspect(connection).get_table_names())
    counts = {
        name: int(connection.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one())
        for name in COUNTED
        if name in tables  # names from our own constant, never from input
    }
    blobs = [
        (str(key), int(size))
        for key, size in connection.execute(
            sa.text("SELECT DISTINCT blob_key, blob_size FROM instances ORDER BY blob_key")
        )
    ]
    head = None
    if "audit_chain" in tables:
        row = connection.execute(sa.text("SELECT seq, hash FROM audit_chain")).first()
        head = (int(row[0]), str(row[1])) if row else None
    return IndexSnapshot(dump, dialect, blobs, counts, head)


def _libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URL without the password (that goes in ``PGPASSWORD``, so it never
    shows in the process list)."""
    url = sa.engine.make_url(database_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def index_is_empty(database_url: str) -> bool:
    """True when the database holds no index, user or audit rows (a fresh installation)."""
    if dialect_of(database_url) == "sqlite":
        path = sa.engine.make_url(database_url).database
        if not path or not Path(path).exists():
            return True
    engine = sa.create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            return not any(
                connection.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
                for name in COUNTED
                if name in tables
            )
    finally:
        engine.dispose()


def load_index(dump: Path, dialect: str, database_url: str) -> None:
    """Put a dumped index in place of the database at ``database_url`` (checked empty, or
    allowed by ``--force``, by the caller).

    A SQLite dump restores into SQLite (a file copy) or into PostgreSQL (a table copy,
    :func:`klinika.db.copy.copy_database`); a PostgreSQL dump needs ``pg_restore``.
    """
    target = dialect_of(database_url)
    if dialect == "sqlite" and target == "sqlite":
        path = Path(str(sa.engine.make_url(database_url).database))
        for suffix in ("-wal", "-shm"):  # a stale WAL would be replayed over the copy
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        copy_durably(dump, path)
        fsync_dir(path.parent)
    elif dialect == "sqlite" and target == "postgresql":
        with (
            tempfile.TemporaryDirectory() as scratch
        ):  # opening a file changes it: not the backup's
            copy = Path(scratch) / dump.name
            shutil.copyfile(dump, copy)
            source, destination = Database(f"sqlite:///{copy}"), Database(database_url)
            try:
                copy_database(source, destination)
            except ValueError as exc:
                raise BackupError(f"cannot restore into {target}: {exc}") from exc
            finally:
                source.dispose()
                destination.dispose()
    elif dialect == "postgresql" and target == "postgresql":
        _pg_restore(dump, database_url)
    else:
        raise BackupError(f"a {dialect} backup cannot be restored into a {target} index")


def _pg_restore(dump: Path, database_url: str) -> None:
    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        raise BackupError("pg_restore is not on PATH (install the PostgreSQL client tools)")
    libpq, env = _libpq(database_url)
    result = subprocess.run(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            f"--dbname={libpq}",
            str(dump),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.strip()}")
