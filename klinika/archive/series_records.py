"""The instance records of recently read series, in memory, for the per-frame path.

A viewer asks for every frame of a series, one request each; the index row of each instance
(pixel offsets, transfer syntax, its DICOM JSON) was the costliest part of such a request. The
records of a series are loaded once, with one query, and kept until the series changes: every
read checks the series' ``metadata_version`` (bumped by every store, replacement, move and
delete in the series, in any process), one indexed row, so no worker serves a stale record.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from klinika.archive.records import InstanceRecord
from klinika.db import Database
from klinika.errors import NotFound
from klinika.index import lookups


class SeriesRecords:
    """Least recently used series' records, at most ``max_records`` instances in all."""

    def __init__(
        self,
        database: Database,
        load: Callable[[str, str], list[InstanceRecord]],
        max_records: int = 20_000,
    ) -> None:
        self.database = database
        self._load = load
        self._max = max_records
        self._held = 0
        self._lock = threading.Lock()
        self._series: OrderedDict[
            tuple[str, str], tuple[tuple[int, int], dict[str, InstanceRecord]]
        ] = OrderedDict()

    def instance(self, study_uid: str, series_uid: str, sop_instance_uid: str) -> InstanceRecord:
        """The record of one instance, as :meth:`Archive.instances` gives it.

        Raises
        ------
        NotFound
            When the series or the instance is not in the archive.
        """
        with self.database.reader.connect() as connection:
            version = lookups.series_version(connection, study_uid, series_uid)
        if version is None:
            raise NotFound(f"series {series_uid} is not in study {study_uid}")
        key = (study_uid, series_uid)
        with self._lock:
            cached = self._series.get(key)
            if cached is not None and cached[0] == version:
                self._series.move_to_end(key)
                records = cached[1]
            else:
                records = None
        if records is None:
            # a change after the version was read is caught by the next read's check
            records = {r.sop_instance_uid: r for r in self._load(study_uid, series_uid)}
            self._keep(key, version, records)
        record = records.get(sop_instance_uid)
        if record is None:
            raise NotFound(f"{sop_instance_uid} is not in the archive")
        return record

    def _keep(
        self, key: tuple[str, str], version: tuple[int, int], records: dict[str, InstanceRecord]
    ) -> None:
        if len(records) > self._max:
            return
        with self._lock:
            previous = self._series.pop(key, None)
            if previous is not None:
                self._held -= len(previous[1])
            self._series[key] = (version, records)
            self._held += len(records)
            while self._held > self._max:
                _, (_, dropped) = self._series.popitem(last=False)
                self._held -= len(dropped)
