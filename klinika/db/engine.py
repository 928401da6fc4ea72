"""Connecting to the index database: SQLite (WAL) by default, PostgreSQL in production."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


#: How many SQLite virtual machine steps run between two looks at the clock of
#: :meth:`Database.read_within` (a look costs a call back into Python; 10,000 steps are
#: tens of microseconds of work).
BUDGET_CHECK_STEPS = 10_000


class OverBudget(Exception):
    """A read run with :meth:`Database.read_within` outlasted its time budget. Not an error
    anyone sees: the caller runs the read again where it may take its time."""


class _WriterLock:
    """One SQLite writer at a time across this process's threads and other processes,
    handed over as soon as it is released.

    Without it, a writer that finds the database locked sleeps in SQLite's busy handler
    (1, 2, 5, 10, 15, 20, 25… ms between attempts), which adds milliseconds to every
    instance when DIMSE processes, their audit writers and HTTP store at the same time. The
    lock is re-entrant per thread (a nested writer behaves as before: it waits on SQLite).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._depth > 1:
            return
        try:
            if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._depth -= 1
            self._threads.release()
            raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


_WRITER_LOCKS: dict[str, _WriterLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _writer_lock(database: str) -> _WriterLock:
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(database)
        if lock is None:
            lock = _WRITER_LOCKS[database] = _WriterLock(database + ".writer-lock")
        return lock


class _LockingConnection(sqlite3.Connection):
    """A DB-API connection that gives the writer lock back once its transaction ends."""

    writer_lock: _WriterLock | None = None
    holds_writer_lock = False

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()

    def _release(self) -> None:
        if self.holds_writer_lock and self.writer_lock is not None:
            self.holds_writer_lock = False
            self.writer_lock.release()


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    """A SQLite engine in WAL mode. Writers take the lock at BEGIN (``BEGIN IMMEDIATE``),
    so two writers queue on ``busy_timeout`` instead of failing on a lock upgrade. Readers run
    in autocommit: each statement reads a consistent snapshot and no lock is held between."""
    connect_args: dict[str, Any] = {"timeout": 60, "check_same_thread": False}
    database = sa.engine.make_url(url).database
    lock = _writer_lock(database) if immediate and database and database != ":memory:" else None
    if lock is not None:
        connect_args["factory"] = _LockingConnection
    engine = sa.create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    if immediate:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            dbapi_connection = connection.connection.dbapi_connection
            if lock is not None and isinstance(dbapi_connection, _LockingConnection):
                lock.acquire()
                dbapi_connection.writer_lock = lock
                dbapi_connection.holds_writer_lock = True
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                if isinstance(dbapi_connection, _LockingConnection):
                    dbapi_connection._release()
                raise

    return engine


class Database:
    """The engines of one database: ``writer`` for transactions that write, ``reader`` for
    queries. On PostgreSQL both are the same pooled engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            database = sa.engine.make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.writer = _sqlite_engine(url, immediate=True)
            self.reader = _sqlite_engine(url, immediate=False)
        else:
            self.writer = sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self.reader = self.writer

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    @property
    def local(self) -> bool:
        """True when reads are on this machine's disk (SQLite): they may run within a time
        budget (:meth:`read_within`); a server's (PostgreSQL) may wait on the network."""
        return self.dialect == "sqlite"

    @contextmanager
    def read_within(self, seconds: float) -> Iterator[sa.Connection]:
        """A reader connection whose statements SQLite interrupts once ``seconds`` have
        passed since the block began (a progress handler, checked every
        :data:`BUDGET_CHECK_STEPS` virtual machine steps): a caller on an event loop runs a
        read inline and goes to a thread only when it turns out long.

        Raises
        ------
        OverBudget
            A statement was interrupted (the block's work is lost; redo it without a budget).
        ValueError
            The database is not :attr:`local`.
        """
        if not self.local:
            raise ValueError("only local (SQLite) reads run within a time budget")
        deadline = time.perf_counter() + seconds
        interrupted = False

        def over() -> bool:
            nonlocal interrupted
            interrupted = time.perf_counter() > deadline
            return interrupted

        with self.reader.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert isinstance(raw, sqlite3.Connection)
            raw.set_progress_handler(over, BUDGET_CHECK_STEPS)
            try:
                yield connection
            except sa.exc.OperationalError as exc:
                if interrupted:
                    raise OverBudget(f"the read took more than {seconds * 1000:.1f} ms") from exc
                raise
            finally:
                raw.set_progress_handler(None, 0)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (Alembic ``upgrade head``)."""
        from klinika.db.migrate import upgrade

        upgrade(self)

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()
