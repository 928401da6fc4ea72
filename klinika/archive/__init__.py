"""The archive: the ONE ingest path, retrieval of what we hold, deletes, metadata caches.

Owns :class:`Archive`. May import: storage, index, dicom, db, errors. Every way an instance
arrives (DIMSE C-STORE, STOW-RS, upload, ``klinika import``, reports) calls
:meth:`Archive.store` / :meth:`Archive.store_many`; validation, dedupe, fsync, indexing and
caches happen there, once, and so do the admission rules (:mod:`klinika.archive.admission`:
document types, derived objects' content, one patient per study).
"""

from klinika.archive.records import InstanceRecord, MetadataDocument, StoreOutcome, audit_subject
from klinika.archive.service import Archive

__all__ = ["Archive", "InstanceRecord", "MetadataDocument", "StoreOutcome", "audit_subject"]
