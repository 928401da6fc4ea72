"""The composition root: builds the long-lived objects once, from the settings, and closes them.

Edges never receive the Runtime itself; they get the collaborators they need
(``create_app`` takes it only to hand out those collaborators).
"""

from __future__ import annotations

from klinika.archive import Archive
from klinika.config import Settings
from klinika.db import Database
from klinika.index import schema as _schema  # noqa: F401  (registers the index tables)
from klinika.storage import FileStore


class Runtime:
    """Database (migrated to head), blob store and archive of one installation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = Database(settings.database_url)
        self.database.upgrade()
        self.blobs = FileStore(settings.blob_dir, fsync=settings.fsync)
        self.blobs.clean_temporary()
        self.archive = Archive(
            self.database,
            self.blobs,
            duplicate_policy=settings.duplicate_policy,
            metadata_cache_size=settings.metadata_cache_series,
        )

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
