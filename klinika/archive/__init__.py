"""The archive: the ONE ingest path, retrieval of what we hold, deletes, metadata caches.

Owns :class:`Archive`, a facade over one module per job: ``ingest`` (store, replace),
``retrieve`` (records, bytes, frames, queries), ``metadata`` (the series metadata cache),
``removal`` (deletes); ``management`` (study edits and merges). Its SQL is in
:mod:`klinika.index` (``writes``, ``lookups``). May import: storage, index, dicom, db, errors.

Every way an instance arrives (DIMSE C-STORE, STOW-RS, upload, ``klinika import``, reports)
calls :meth:`Archive.store` / :meth:`Archive.store_many` (in ``ingest``); validation,
dedupe, fsync and indexing happen there, once, and so do the admission rules
(:mod:`klinika.archive.admission`: document types, derived objects' content, one patient
per study).
"""

from klinika.archive.records import (
    InstanceRecord,
    MetadataDocument,
    StoreOutcome,
    StoreStatus,
    audit_subject,
)
from klinika.archive.service import Archive

__all__ = [
    "Archive",
    "InstanceRecord",
    "MetadataDocument",
    "StoreOutcome",
    "StoreStatus",
    "audit_subject",
]
