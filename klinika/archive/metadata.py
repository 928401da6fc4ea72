"""Series metadata documents (WADO-RS ``/metadata``): the stored per-instance DICOM JSON of
a series as one array, cached in memory until ingest bumps the series' metadata version."""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict

from klinika.archive.records import MetadataDocument
from klinika.db import Database
from klinika.dicom.json import with_base
from klinika.errors import NotFound
from klinika.index import lookups


class MetadataCache:
    """The last ``size`` series documents asked for (per base URL), least recent dropped."""

    def __init__(self, database: Database, size: int = 256) -> None:
        self.database = database
        self._size = size
        self._lock = threading.Lock()
        self._documents: OrderedDict[tuple[str, str, str], MetadataDocument] = OrderedDict()

    def series_metadata(self, study_uid: str, series_uid: str, base_url: str) -> MetadataDocument:
        """The series' DICOM JSON array, assembled from stored per-instance JSON and cached
        until the series changes (its ``metadata_version``), so several workers stay
        coherent.

        ``base_url`` replaces the placeholder base of bulk data URIs.
        """
        with self.database.reader.connect() as connection:
            found = lookups.series_version(connection, study_uid, series_uid)
            if found is None:
                raise NotFound(f"series {series_uid} is not in study {study_uid}")
            series_pk, version = found
            etag = f'"s{series_pk}-v{version}"'
            key = (study_uid, series_uid, base_url)
            with self._lock:
                cached = self._documents.get(key)
                if cached is not None and cached.etag == etag:
                    self._documents.move_to_end(key)
                    return cached
            texts = lookups.series_metadata_json(connection, series_pk)
            body = with_base(("[" + ",".join(texts) + "]").encode("utf-8"), base_url)
        document = MetadataDocument(body, gzip.compress(body, compresslevel=5, mtime=0), etag)
        with self._lock:
            self._documents[key] = document
            while len(self._documents) > self._size:
                self._documents.popitem(last=False)
        return document
