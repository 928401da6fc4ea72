"""The :class:`Archive`: one object for the callers, made of the archive's jobs.

Each job lives in its own module: :mod:`~klinika.archive.ingest` (the ONE ingest path and
study management's rewrites), :mod:`~klinika.archive.retrieve` (records, bytes, frames,
rendering, queries), :mod:`~klinika.archive.metadata` (the series metadata cache) and
:mod:`~klinika.archive.removal` (deletes). The facade only hands calls on.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

from klinika.archive.ingest import Ingest, StoredListener
from klinika.archive.metadata import MetadataCache
from klinika.archive.records import InstanceRecord, MetadataDocument, StoreOutcome
from klinika.archive.removal import Removal
from klinika.archive.retrieve import Retrieval
from klinika.archive.series_records import SeriesRecords
from klinika.config import DuplicatePolicy
from klinika.db import Database
from klinika.dicom import render
from klinika.dicom.header import DEFAULT_INFLATE_LIMIT, InflateLimit
from klinika.index.query import JsonResult, Query, QueryResult
from klinika.storage import BlobStore

__all__ = ["Archive", "StoredListener"]


class Archive:
    """The archive of one Klinika installation.

    Parameters
    ----------
    database, blobs
        Where the index and the instance bytes live.
    duplicate_policy, listeners, inflate_limit, allow_patient_mismatch
        How instances are admitted: see :class:`~klinika.archive.ingest.Ingest`.
    metadata_cache_size
        How many series metadata documents are kept in memory.
    """

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        *,
        duplicate_policy: DuplicatePolicy = DuplicatePolicy.KEEP,
        metadata_cache_size: int = 256,
        listeners: Iterable[StoredListener] = (),
        inflate_limit: InflateLimit = DEFAULT_INFLATE_LIMIT,
        allow_patient_mismatch: bool = False,
    ) -> None:
        self.database = database
        self.blobs = blobs
        self.ingest = Ingest(
            database,
            blobs,
            duplicate_policy=duplicate_policy,
            listeners=listeners,
            inflate_limit=inflate_limit,
            allow_patient_mismatch=allow_patient_mismatch,
        )
        self.retrieval = Retrieval(database, blobs)
        self.metadata = MetadataCache(database, metadata_cache_size)
        self.removal = Removal(database, blobs, self.retrieval)
        self.series_records = SeriesRecords(database, self.retrieval.instances)

    # ----------------------------------------------------------------- ingest
    def store(self, data: bytes, *, bare_datasets: bool = False) -> StoreOutcome:
        """See :meth:`.Ingest.store`."""
        return self.ingest.store(data, bare_datasets=bare_datasets)

    def store_many(
        self,
        items: Iterable[bytes],
        *,
        study_uid: str | None = None,
        derived_only: bool = False,
        bare_datasets: bool = False,
    ) -> list[StoreOutcome]:
        """See :meth:`.Ingest.store_many`."""
        return self.ingest.store_many(
            items, study_uid=study_uid, derived_only=derived_only, bare_datasets=bare_datasets
        )

    def replace_instances(self, rewrites: Iterable[tuple[InstanceRecord, bytes]]) -> int:
        """See :meth:`.Ingest.replace_instances`."""
        return self.ingest.replace_instances(rewrites)

    # --------------------------------------------------------------- retrieve
    def search(self, query: Query) -> QueryResult:
        """Run a query through the one query engine."""
        return self.retrieval.search(query)

    def search_json(self, query: Query, *, retrieve_base: str | None = None) -> JsonResult:
        """See :meth:`.Retrieval.search_json`."""
        return self.retrieval.search_json(query, retrieve_base=retrieve_base)

    def quick_search_json(
        self, query: Query, seconds: float, *, retrieve_base: str | None = None
    ) -> JsonResult | None:
        """See :meth:`.Retrieval.quick_search_json`."""
        return self.retrieval.quick_search_json(query, seconds, retrieve_base=retrieve_base)

    def search_stream(self, query: Query) -> Generator[dict[str, Any], None, None]:
        """See :meth:`.Retrieval.search_stream`."""
        return self.retrieval.search_stream(query)

    def count(self, query: Query) -> int:
        """How many entries match ``query`` (for paging), from the index alone."""
        return self.retrieval.count(query)

    def stored_bytes(self) -> int:
        """The size of every stored instance, as received (from the index)."""
        return self.retrieval.stored_bytes()

    def instances_matching(self, query: Query) -> list[InstanceRecord]:
        """See :meth:`.Retrieval.instances_matching`."""
        return self.retrieval.instances_matching(query)

    def instances(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_instance_uid: str | None = None,
    ) -> list[InstanceRecord]:
        """See :meth:`.Retrieval.instances`."""
        return self.retrieval.instances(study_uid, series_uid, sop_instance_uid)

    def instance(self, study_uid: str, series_uid: str, sop_instance_uid: str) -> InstanceRecord:
        """See :meth:`.SeriesRecords.instance` (the per-frame path of a viewer)."""
        return self.series_records.instance(study_uid, series_uid, sop_instance_uid)

    def study_series(self, study_uid: str) -> list[str]:
        """Series Instance UIDs of a study, in series order."""
        return self.retrieval.study_series(study_uid)

    def read(self, record: InstanceRecord) -> bytes:
        """The stored Part-10 bytes of an instance, as received."""
        return self.retrieval.read(record)

    def read_frame(self, record: InstanceRecord, frame_index: int) -> bytes:
        """See :meth:`.Retrieval.read_frame`."""
        return self.retrieval.read_frame(record, frame_index)

    def render_frame(
        self, record: InstanceRecord, frame_index: int, options: render.RenderOptions
    ) -> bytes:
        """See :meth:`.Retrieval.render_frame`."""
        return self.retrieval.render_frame(record, frame_index, options)

    def series_metadata(self, study_uid: str, series_uid: str, base_url: str) -> MetadataDocument:
        """See :meth:`.MetadataCache.series_metadata`."""
        return self.metadata.series_metadata(study_uid, series_uid, base_url)

    # ----------------------------------------------------------------- remove
    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
    ) -> int:
        """See :meth:`.Removal.delete`."""
        return self.removal.delete(study_uid, series_uid, sop_instance_uid)

    def patient_of(self, study_uid: str) -> str | None:
        """See :meth:`.Removal.patient_of`."""
        return self.removal.patient_of(study_uid)

    def refresh_counts(self) -> None:
        """Recompute every series' and study's counts and modalities (fsck --repair)."""
        self.removal.refresh_counts()
