"""Deletes: a study, series or instance out of the index, then its blobs; blobs nothing
refers to any more; counts recomputed (``fsck --repair``)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from klinika.archive.retrieve import Retrieval
from klinika.db import Database
from klinika.index import lookups, writes
from klinika.storage import BlobStore

_REMEMBERED_PATIENTS = 1024  # patients of deleted studies kept for their delete events


def delete_unreferenced(database: Database, blobs: BlobStore, keys: Iterable[str]) -> None:
    """Delete the blobs among ``keys`` that no index row refers to (after a commit)."""
    keys = set(keys)
    if not keys:
        return
    with database.reader.connect() as connection:
        used = lookups.referenced_blob_keys(connection, keys)
    for key in keys - used:
        blobs.delete(key)


class Removal:
    """Deletes from the archive, and the patients of studies deleted a moment ago."""

    def __init__(self, database: Database, blobs: BlobStore, retrieval: Retrieval) -> None:
        self.database = database
        self.blobs = blobs
        self.retrieval = retrieval
        self._lock = threading.Lock()
        self._deleted_patients: OrderedDict[str, str] = OrderedDict()

    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
    ) -> int:
        """Remove a study, series or instance from the index, then its blobs.

        Returns the number of instances removed. Raises :class:`NotFound` when nothing matched.
        """
        records = self.retrieval.instances(study_uid, series_uid, sop_instance_uid)
        patient_id = self.patient_of(study_uid)
        if patient_id is not None:
            with self._lock:
                self._deleted_patients[study_uid] = patient_id
                while len(self._deleted_patients) > _REMEMBERED_PATIENTS:
                    self._deleted_patients.popitem(last=False)
        with self.database.writer.begin() as connection:
            writes.delete_instances(connection, study_uid, [r.sop_instance_uid for r in records])
        delete_unreferenced(self.database, self.blobs, {r.blob_key for r in records})
        return len(records)

    def patient_of(self, study_uid: str) -> str | None:
        """The Patient ID of a stored study, or of one this process deleted a moment ago (its
        delete event is written after the deletion); None when the study is unknown."""
        with self.database.reader.connect() as connection:
            stored = lookups.study_patient(connection, study_uid)
        if stored is not None:
            return stored.patient_id
        with self._lock:
            return self._deleted_patients.get(study_uid)

    def refresh_counts(self) -> None:
        """Recompute every series' and study's counts and modalities (fsck --repair)."""
        with self.database.writer.begin() as connection:
            writes.refresh_counts(connection)
