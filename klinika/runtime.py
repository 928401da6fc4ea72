"""The composition root: builds the long-lived objects once, from the settings, and closes them.

Edges never receive the Runtime itself; they get the collaborators they need
(``create_app`` takes it only to hand out those collaborators).
"""

from __future__ import annotations

import gc
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from klinika.archive import Archive
from klinika.archive.management import StudyManagement
from klinika.audit import AuditTrail, CheckpointLog, SyslogSender, load_audit_keys
from klinika.auth import (
    AuthPolicy,
    AuthService,
    TokenCodec,
    load_jwt_secret,
)
from klinika.auth.nodes import NodeRegistry
from klinika.config import Settings
from klinika.db import Database
from klinika.dicom.header import InflateLimit
from klinika.dimse import schema as _jobs_schema  # noqa: F401  (registers the jobs table)
from klinika.dimse.jobs import Jobs
from klinika.index import schema as _schema  # noqa: F401  (registers the index tables)
from klinika.observability import Metrics
from klinika.observability.metrics import watch_pool
from klinika.reports import Clinic, ReportService
from klinika.storage import open_blob_store
from klinika.workflow import Schedule


def freeze_startup_heap() -> None:
    """Put what start-up built (modules, routes, the data dictionary, caches) beyond the
    cyclic garbage collector, just before a process starts serving (or a long batch such as
    ``klinika import``): a full collection otherwise walks all of it, tens of milliseconds
    added to whichever request or DIMSE message happens to trigger one (:func:`gc.freeze`,
    meant for this)."""
    gc.collect()
    gc.freeze()


def secure_data_dir(data_dir: Path) -> None:
    """Make the data folder private to the account that runs Klinika: the folder 0700, its
    files 0600 (``index.sqlite`` and its WAL, blobs, secrets). The process umask becomes 077
    so every file created later (SQLite's ``-wal``/``-shm``, blob folders, backups) is
    private too; files from an older installation are narrowed here once."""
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secrets_dir = data_dir / "secrets"
    for path in (
        data_dir,
        *data_dir.glob("index.sqlite*"),
        *([secrets_dir] if secrets_dir.is_dir() else []),
        *data_dir.glob("secrets/*"),
    ):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            private = 0o700 if path.is_dir() else 0o600
            if mode & 0o077:
                path.chmod(mode & private)
        except PermissionError:  # not ours (a mounted volume): leave it, the folder protects
            pass


class Runtime:
    """Database (migrated to head), blob store, archive, audit trail, auth service, report
    service, study management, the workflow schedule and the process's metrics of one
    installation.

    ``clock`` (seconds since the epoch) is what the auth service (sessions, login lockout) and
    the report service read the time from; tests give a clock they can move. ``prepare``
    migrates the index and removes leftovers of interrupted blob writes: the one process that
    starts an installation does it, not each of its workers (a worker cleaning temporary files
    would delete another worker's write in progress).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        prepare: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        secure_data_dir(settings.data_dir)
        self.database = Database(settings.database_url)
        if prepare:
            self.database.upgrade()
        self.metrics = Metrics()
        watch_pool(self.metrics, self.database.writer, "writer")
        if self.database.reader is not self.database.writer:
            watch_pool(self.metrics, self.database.reader, "reader")
        self.blobs = open_blob_store(settings)
        if prepare:
            self.blobs.clean_temporary()
        self.archive = Archive(
            self.database,
            self.blobs,
            duplicate_policy=settings.duplicate_policy,
            metadata_cache_size=settings.metadata_cache_series,
            inflate_limit=InflateLimit(settings.max_inflated_bytes, settings.max_inflate_ratio),
            allow_patient_mismatch=settings.allow_patient_mismatch,
            listeners=[self.metrics.observe_ingest],
        )
        audit_key, *older_keys = load_audit_keys(settings.audit_key_path)
        self.audit = AuditTrail(
            self.database,
            key=audit_key,
            older_keys=older_keys,
            checkpoints=CheckpointLog(settings.audit_checkpoint_path, audit_key, older_keys),
            checkpoint_every=settings.audit_checkpoint_events,
            checkpoint_seconds=settings.audit_checkpoint_seconds,
            syslog=SyslogSender(settings.audit_syslog) if settings.audit_syslog else None,
            source_id=settings.ae_title,
            patient_of=self.archive.patient_of,
        )
        self.audit.start_keyed_chain()
        # the one list of DICOM nodes: configured ones merged with the console's
        self.nodes = NodeRegistry(
            self.database, self.audit, settings.modalities, strict=settings.dimse_strict
        )
        self.auth = AuthService(
            self.database,
            self.audit,
            TokenCodec(load_jwt_secret(settings)),
            AuthPolicy.from_settings(settings),
            nodes=self.nodes,
            clock=clock,
        )
        self.jobs = Jobs(self.database, self.archive, self.audit, self.nodes, settings)
        self.reports = ReportService(
            self.database,
            self.archive,
            self.audit,
            Clinic(settings.clinic_name, settings.clinic_address, settings.clinic_logo),
            clock=clock,
        )
        self.management = StudyManagement(
            self.archive, self.audit, merge_guards=[self.reports.merge_refusal]
        )
        self.schedule = Schedule(self.database, self.audit, clock=clock)

    def close(self) -> None:
        self.audit.close()
        self.blobs.close()
        self.database.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
