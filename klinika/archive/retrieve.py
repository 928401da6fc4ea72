"""Reading what the archive holds: instance records, their bytes and frames, rendering
inputs, and queries through the one query engine."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections.abc import Generator
from typing import Any

from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from klinika.archive.records import InstanceRecord
from klinika.db import Database, OverBudget
from klinika.dicom import render
from klinika.dicom.attributes import Level
from klinika.dicom.frames import PixelLocation, frame_from_part10
from klinika.errors import NotFound
from klinika.index import lookups
from klinika.index.query import (
    JsonResult,
    Query,
    QueryResult,
    count,
    search,
    search_json,
    search_stream,
)
from klinika.storage import BlobStore

_SLOW_FRAME_SYNTAXES = (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian)
#: The largest ``limit`` a quick search answers (OHIF's study list asks for 101): its answer's
#: JSON is built in Python after the SQL, outside the budget, so its size is bounded here.
QUICK_SEARCH_LIMIT = 101


class Retrieval:
    """Reads from the index and the blob store; never writes."""

    def __init__(self, database: Database, blobs: BlobStore) -> None:
        self.database = database
        self.blobs = blobs

    # ----------------------------------------------------------------- queries
    def search(self, query: Query) -> QueryResult:
        """Run a query through the one query engine."""
        with self.database.reader.connect() as connection:
            return search(connection, query)

    def search_json(self, query: Query, *, retrieve_base: str | None = None) -> JsonResult:
        """Run a query through the one query engine, its answers as DICOM JSON bytes."""
        with self.database.reader.connect() as connection:
            return search_json(connection, query, retrieve_base=retrieve_base)

    def quick_search_json(
        self, query: Query, seconds: float, *, retrieve_base: str | None = None
    ) -> JsonResult | None:
        """:meth:`search_json` for a caller that must not wait long (an event loop): the
        answer when the index is local, the query's ``limit`` at most
        :data:`QUICK_SEARCH_LIMIT` and its statements done within ``seconds``; else None (ask
        :meth:`search_json` where waiting is fine)."""
        if not self.database.local or query.limit is None or query.limit > QUICK_SEARCH_LIMIT:
            return None
        try:
            with self.database.read_within(seconds) as connection:
                return search_json(connection, query, retrieve_base=retrieve_base)
        except OverBudget:
            return None

    def search_stream(self, query: Query) -> Generator[dict[str, Any], None, None]:
        """The matches of ``query`` one by one from the one query engine (C-FIND): nothing
        beyond what the consumer takes is built; closing the iterator ends the query.

        Raises
        ------
        InvalidQuery
            Before the first match, for a query the engine refuses.
        """
        with self.database.reader.connect() as connection:
            yield from search_stream(connection, query)

    def count(self, query: Query) -> int:
        """How many entries match ``query`` (for paging), from the index alone."""
        with self.database.reader.connect() as connection:
            return count(connection, query)

    def stored_bytes(self) -> int:
        """The size of every stored instance, as received (from the index)."""
        with self.database.reader.connect() as connection:
            return lookups.stored_bytes(connection)

    # --------------------------------------------------------------- instances
    def instances_matching(self, query: Query) -> list[InstanceRecord]:
        """Every instance under the entities a query matches (C-MOVE / C-GET sets).

        References
        ----------
        PS3.4 C.4.2.2.1 / C.4.3.2.1 (the retrieve identifier names what is sent).

        The matches are streamed from the query engine (only the records are collected: a
        C-MOVE counts its sub-operations before it sends).
        """
        records: list[InstanceRecord] = []
        seen: set[tuple[str, str | None, str | None]] = set()
        if query.level == Level.PATIENT:  # a patient's instances are those of its studies
            query = dataclasses.replace(query, level=Level.STUDY)
        for match in self.search_stream(query):
            study = _first(match, "0020000D")
            if study is None:
                continue
            series = _first(match, "0020000E") if query.level >= Level.SERIES else None
            sop = _first(match, "00080018") if query.level == Level.IMAGE else None
            if (study, series, sop) not in seen:
                seen.add((study, series, sop))
                records.extend(self.instances(study, series, sop))
        return records

    def instances(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_instance_uid: str | None = None,
    ) -> list[InstanceRecord]:
        """The instances of a study, series or one instance, in series and instance order.

        Raises
        ------
        NotFound
            When nothing matches.
        """
        with self.database.reader.connect() as connection:
            rows = lookups.instance_rows(connection, study_uid, series_uid, sop_instance_uid)
        if not rows:
            what = sop_instance_uid or series_uid or study_uid
            raise NotFound(f"{what} is not in the archive")
        return [
            InstanceRecord(
                study_uid=row[0],
                series_uid=row[1],
                sop_instance_uid=row[2],
                sop_class_uid=row[3],
                transfer_syntax=row[4],
                blob_key=row[5],
                blob_size=row[6],
                number_of_frames=row[7] or 1,
                pixel_location=PixelLocation.from_json(json.loads(row[8])) if row[8] else None,
                metadata_json=row[9],
            )
            for row in rows
        ]

    def study_series(self, study_uid: str) -> list[str]:
        """Series Instance UIDs of a study, in series order."""
        with self.database.reader.connect() as connection:
            uids = lookups.series_uids(connection, study_uid)
        if not uids:
            raise NotFound(f"study {study_uid} is not in the archive")
        return uids

    # ------------------------------------------------------------ bytes, frames
    def read(self, record: InstanceRecord) -> bytes:
        """The stored Part-10 bytes of an instance, as received."""
        return self.blobs.read(record.blob_key)

    def render_frame(
        self, record: InstanceRecord, frame_index: int, options: render.RenderOptions
    ) -> bytes:
        """One frame (0-based) as an 8-bit image (JPEG/PNG/GIF), with the stored window unless
        ``options`` names one. The frame alone is read (index header and a byte range) when
        ingest mapped it, else the whole file.

        Raises
        ------
        render.RenderError
            No such frame, no pixel data, or pixel data that cannot be decoded here.
        """
        location = record.pixel_location
        if location is not None and location.frames is not None:
            frame = self.read_frame(record, frame_index)
            with contextlib.suppress(render.RenderError):
                single = render.dataset_for_frame(
                    record.metadata_json, frame, record.transfer_syntax
                )
                return render.render_frame(single, 0, options)
        return render.render_frame(dcmread(io.BytesIO(self.read(record))), frame_index, options)

    def read_frame(self, record: InstanceRecord, frame_index: int) -> bytes:
        """One frame's bytes as stored (0-based index), by byte range when ingest mapped it.

        Raises
        ------
        NotFound
            When the instance has no such frame or no pixel data.
        """
        location = record.pixel_location
        if location is None and record.transfer_syntax not in _SLOW_FRAME_SYNTAXES:
            raise NotFound(f"instance {record.sop_instance_uid} has no pixel data")
        if not 0 <= frame_index < record.number_of_frames:
            raise NotFound(
                f"instance {record.sop_instance_uid} has {record.number_of_frames} frame(s); "
                f"frame {frame_index + 1} does not exist"
            )
        if location is not None and location.frames is not None:
            return self.blobs.read_ranges(record.blob_key, location.frames[frame_index])
        return frame_from_part10(self.read(record), frame_index)


def _first(match: dict[str, Any], tag: str) -> str | None:
    values = match.get(tag, {}).get("Value")
    return str(values[0]) if values else None
