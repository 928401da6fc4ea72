"""The composition root: builds the long-lived objects once, from the settings, and closes them.

Edges never receive the Runtime itself; they get the collaborators they need
(``create_app`` takes it only to hand out those collaborators).
"""

from __future__ import annotations

from klinika.archive import Archive
from klinika.audit import AuditTrail
from klinika.auth import (
    AuthPolicy,
    AuthService,
    TokenCodec,
    load_jwt_secret,
    peers_from_settings,
)
from klinika.config import Settings
from klinika.db import Database
from klinika.index import schema as _schema  # noqa: F401  (registers the index tables)
from klinika.observability import Metrics
from klinika.observability.metrics import watch_pool
from klinika.reports import Clinic, ReportService
from klinika.storage import FileStore


class Runtime:
    """Database (migrated to head), blob store, archive, audit trail, auth service, report
    service and the process's metrics of one installation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = Database(settings.database_url)
        self.database.upgrade()
        self.metrics = Metrics()
        watch_pool(self.metrics, self.database.writer, "writer")
        if self.database.reader is not self.database.writer:
            watch_pool(self.metrics, self.database.reader, "reader")
        self.blobs = FileStore(
            settings.blob_dir, fsync=settings.fsync, compress=settings.compress_storage
        )
        self.blobs.clean_temporary()
        self.archive = Archive(
            self.database,
            self.blobs,
            duplicate_policy=settings.duplicate_policy,
            metadata_cache_size=settings.metadata_cache_series,
            listeners=[self.metrics.observe_ingest],
        )
        self.audit = AuditTrail(self.database)
        self.auth = AuthService(
            self.database,
            self.audit,
            TokenCodec(load_jwt_secret(settings)),
            AuthPolicy.from_settings(settings),
            peers=peers_from_settings(settings.modalities, strict=settings.dimse_strict),
        )
        self.reports = ReportService(
            self.database,
            self.archive,
            self.audit,
            Clinic(settings.clinic_name, settings.clinic_address, settings.clinic_logo),
        )

    def close(self) -> None:
        self.audit.close()
        self.database.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
