"""The :class:`Archive`: store (the one ingest path), read, delete, metadata documents."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import io
import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydicom import dcmread
from sqlalchemy.dialects import postgresql, sqlite

from klinika.archive.admission import (
    Refusal,
    StudyPatient,
    check_derived,
    check_document,
    check_patient,
)
from klinika.archive.lookup import SeriesRecords, series_version
from klinika.archive.records import (
    InstanceRecord,
    MetadataDocument,
    StoreOutcome,
    index_values,
    utc_now,
)
from klinika.db import Database
from klinika.dicom import render
from klinika.dicom.attributes import Level
from klinika.dicom.frames import PixelLocation, frame_from_part10, number_of_frames
from klinika.dicom.header import (
    DEFAULT_INFLATE_LIMIT,
    InflateLimit,
    ParsedInstance,
    parse_instance,
)
from klinika.dicom.json import metadata_json, with_base
from klinika.errors import (
    Conflict,
    InvalidInstance,
    NotFound,
    StorageFull,
    StorageUnavailable,
)
from klinika.index import labels, schema
from klinika.index.matching import normalize_name
from klinika.index.query import Query, QueryResult, count, search, search_stream
from klinika.storage import BlobRef, BlobStore

_REPLACE_BATCH = 32  # rewritten files parsed and written at a time
_SLOW_FRAME_SYNTAXES = ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")
StoredListener = Callable[[Sequence[StoreOutcome]], None]


@dataclass
class _Pending:
    """An instance between validation and commit."""

    parsed: ParsedInstance
    blob: BlobRef
    outcome: StoreOutcome
    values: dict[str, Any]


@dataclass
class _Ticket:
    """One caller's instances waiting for a group commit."""

    pending: list[_Pending]
    done: bool = False
    error: BaseException | None = None


class Archive:
    """The archive of one Klinika installation.

    Parameters
    ----------
    database, blobs
        Where the index and the instance bytes live.
    duplicate_policy
        What to do with an instance whose SOP Instance UID is already stored: ``keep`` the
        stored one and report a duplicate (the default, like most PACS), ``overwrite`` it, or
        ``reject`` the new one.
    listeners
        Called after each committed batch with the outcomes (for audit, caches, forwarding).
    inflate_limit
        How far a deflated data set may inflate before it is refused (``too-large``).
    allow_patient_mismatch
        Let an instance join a study that holds another patient (for migrations); refused
        with ``patient-mismatch`` by default (see :mod:`klinika.archive.admission`).
    """

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        *,
        duplicate_policy: str = "keep",
        metadata_cache_size: int = 256,
        listeners: Iterable[StoredListener] = (),
        inflate_limit: InflateLimit = DEFAULT_INFLATE_LIMIT,
        allow_patient_mismatch: bool = False,
    ) -> None:
        self.database = database
        self.allow_patient_mismatch = allow_patient_mismatch
        self.blobs = blobs
        self.duplicate_policy = duplicate_policy
        self.listeners = list(listeners)
        self.inflate_limit = inflate_limit
        self._cache: OrderedDict[tuple[str, str, str], MetadataDocument] = OrderedDict()
        self._cache_size = metadata_cache_size
        self._cache_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._deleted_patients: OrderedDict[str, str] = OrderedDict()
        self._records = SeriesRecords(database, self.instances)

    # ----------------------------------------------------------------- ingest
    def store(self, data: bytes, *, bare_datasets: bool = False) -> StoreOutcome:
        """Validate, write durably and index one Part-10 instance; see :meth:`store_many`."""
        return self.store_many([data], bare_datasets=bare_datasets)[0]

    def store_many(
        self,
        items: Iterable[bytes],
        *,
        study_uid: str | None = None,
        derived_only: bool = False,
        bare_datasets: bool = False,
    ) -> list[StoreOutcome]:
        """Store several instances with one index transaction.

        Each item is validated on its own: a bad one is rejected with a reason and leaves no
        trace, the others go on. An outcome other than ``rejected`` is returned only after the
        blob is fsynced and the index transaction committed. With ``study_uid``, instances of
        another study are rejected (``study-mismatch``), as STOW-RS to a study URL requires.
        With ``derived_only`` (a caller who may only annotate), anything but an SR, KO, PR or
        SEG whose content matches its class is rejected (``not-authorized``). Encapsulated
        Documents of another MIME type than their IOD's (``unsupported-document``) and
        instances naming another patient than their study's (``patient-mismatch``) are
        rejected for everyone (:mod:`klinika.archive.admission`). With ``bare_datasets``
        (files people bring: upload, import), a data set without preamble and File Meta
        Information is read as DCMTK reads it (``parse_instance(bare_dataset=True)``).
        """
        outcomes: list[StoreOutcome] = []
        accepted: list[tuple[ParsedInstance, StoreOutcome]] = []
        for data in items:
            try:
                parsed = parse_instance(data, self.inflate_limit, bare_dataset=bare_datasets)
            except InvalidInstance as exc:
                outcomes.append(StoreOutcome("rejected", reason=exc.reason, message=str(exc)))
                continue
            outcome = StoreOutcome(
                "stored",
                sop_instance_uid=parsed.sop_instance_uid,
                sop_class_uid=parsed.sop_class_uid,
                study_uid=parsed.study_uid,
                series_uid=parsed.series_uid,
                warnings=parsed.warnings,
                patient_id=str(parsed.dataset.get("PatientID", "") or "") or None,
            )
            outcomes.append(outcome)
            if study_uid is not None and parsed.study_uid != study_uid:
                outcome.status, outcome.reason = "rejected", "study-mismatch"
                outcome.message = (
                    f"the instance belongs to study {parsed.study_uid}, not {study_uid}"
                )
                continue
            refusal = check_document(parsed) or (check_derived(parsed) if derived_only else None)
            if refusal is not None:
                _refuse(outcome, refusal)
                continue
            accepted.append((parsed, outcome))
        if self.duplicate_policy != "overwrite" and len(accepted) > 1:
            # A batch (STOW-RS, import) skips writing the blobs of instances already stored;
            # a single instance (C-STORE) learns it in its index transaction instead, which
            # saves a query on the common path.
            known = self._existing({parsed.sop_instance_uid for parsed, _ in accepted})
            for _, outcome in accepted:
                if outcome.sop_instance_uid in known:
                    self._mark_duplicate(outcome)
            accepted = [(p, o) for p, o in accepted if o.sop_instance_uid not in known]
        # The blobs of a batch are written and fsynced on the store's writer threads (I/O
        # releases the GIL); a single instance (one C-STORE) is written inline, which spares
        # two thread hand-overs. The index is written only once every blob is durable.
        written = self.blobs.put_many([parsed.part10 for parsed, _ in accepted])
        pending: list[_Pending] = []
        for (parsed, outcome), blob in zip(accepted, written, strict=True):
            if isinstance(blob, StorageFull | StorageUnavailable):
                outcome.status, outcome.reason, outcome.message = (
                    "rejected",
                    "storage-full" if isinstance(blob, StorageFull) else "storage-unavailable",
                    str(blob),
                )
            else:
                outcome.size = blob.size
                pending.append(_Pending(parsed, blob, outcome, _instance_values(parsed, blob)))
        if pending:
            self._index_grouped(pending)
        committed = [o for o in outcomes if o.status in ("stored", "replaced")]
        if committed:
            for listener in self.listeners:
                listener(committed)
        return outcomes

    def _mark_duplicate(self, outcome: StoreOutcome) -> None:
        if self.duplicate_policy == "reject":
            outcome.status, outcome.reason = "rejected", "duplicate"
            outcome.message = f"SOP Instance {outcome.sop_instance_uid} is already stored"
        else:
            outcome.status = "duplicate"

    def _existing(self, sop_instance_uids: set[str]) -> set[str]:
        """Which of these SOP Instance UIDs are already stored."""
        if not sop_instance_uids:
            return set()
        column = schema.instances.c.sop_instance_uid
        with self.database.reader.connect() as connection:
            return set(
                connection.execute(sa.select(column).where(column.in_(sop_instance_uids))).scalars()
            )

    def _index_grouped(self, pending: list[_Pending]) -> None:
        """Index with group commit: callers that arrive while another caller's transaction
        is running queue up, and the next one to get the writer indexes all of them in one
        transaction (one commit, one log fsync for several associations). Every caller
        returns only after a transaction holding its instances committed; if a combined
        transaction fails, each caller's instances are indexed on their own so that one
        caller's error is not another's.
        """
        ticket = _Ticket(pending)
        with self._queue_lock:
            self._queue.append(ticket)
        with self._commit_lock:
            if not ticket.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    if len(batch) == 1:
                        self._index(pending)
                    else:
                        self._index_batch(batch)
                except BaseException as exc:
                    ticket.error = exc
                finally:
                    for waiting in batch:
                        waiting.done = True
        if ticket.error is not None:
            raise ticket.error

    def _index_batch(self, batch: list[_Ticket]) -> None:
        try:
            self._index([item for ticket in batch for item in ticket.pending])
        except Exception:
            for ticket in batch:
                try:
                    self._index(ticket.pending)
                except Exception as exc:
                    ticket.error = exc

    def _index(self, pending: list[_Pending]) -> None:
        """Index a batch in one transaction, then drop blobs nothing refers to any more."""
        unreferenced: set[str] = set()
        with self.database.writer.begin() as connection:
            touched_series: set[int] = set()
            touched_studies: set[int] = set()
            parents: dict[tuple[str, str], tuple[int, int]] = {}
            study_patients: dict[str, StudyPatient | None] = {}
            for item in pending:
                if not self._same_patient(connection, item, study_patients):
                    unreferenced.add(item.blob.key)
                    continue
                key = (item.parsed.study_uid, item.parsed.series_uid)
                if key not in parents:  # a batch is mostly one series: look its parents up once
                    found = connection.execute(_statements().parents, _parent_keys(key)).first()
                    parents[key] = (
                        (int(found[0]), int(found[1]))
                        if found is not None
                        else self._upsert_parents(connection, item.parsed)
                    )
                series_pk, study_pk = parents[key]
                replaced_key = self._upsert_instance(connection, item, series_pk)
                if item.outcome.status == "duplicate" or item.outcome.status == "rejected":
                    unreferenced.add(item.blob.key)
                    continue
                if replaced_key and replaced_key != item.blob.key:
                    unreferenced.add(replaced_key)
                touched_series.add(series_pk)
                touched_studies.add(study_pk)
            for series_pk in touched_series:
                _refresh_series(connection, series_pk)
            for study_pk in touched_studies:
                _refresh_study(connection, study_pk)
        self._delete_unreferenced(unreferenced)

    def _same_patient(
        self,
        connection: sa.Connection,
        item: _Pending,
        known: dict[str, StudyPatient | None],
    ) -> bool:
        """Whether the instance names its study's patient (inside the index transaction, so a
        study created a moment ago by another writer counts); rejects it otherwise."""
        dataset, study_uid = item.parsed.dataset, item.parsed.study_uid
        if study_uid not in known:
            known[study_uid] = _study_patient(connection, study_uid)
        stored = known[study_uid]
        if stored is None:  # a new study: the next instances of the batch must match this one
            known[study_uid] = StudyPatient(
                str(dataset.get("PatientID", "") or ""),
                str(dataset.get("IssuerOfPatientID", "") or "") or None,
                _name(dataset.get("PatientName")),
            )
            return True
        if self.allow_patient_mismatch:
            return True
        refusal = check_patient(dataset, study_uid, stored, normalize=_name)
        if refusal is None:
            return True
        _refuse(item.outcome, refusal)
        return False

    def patient_of(self, study_uid: str) -> str | None:
        """The Patient ID of a stored study, or of one this process deleted a moment ago (its
        delete event is written after the deletion); None when the study is unknown."""
        with self.database.reader.connect() as connection:
            stored = _study_patient(connection, study_uid)
        if stored is not None:
            return stored.patient_id
        with self._cache_lock:
            return self._deleted_patients.get(study_uid)

    def _upsert_parents(
        self, connection: sa.Connection, parsed: ParsedInstance, *, update: bool = False
    ) -> tuple[int, int]:
        """The instance's patient, study and series rows (created when missing). With
        ``update`` (a rewrite by study management), existing rows take the header's values
        and parent: the study may move to another patient, the series to another study."""
        dataset = parsed.dataset
        patient = index_values(dataset, Level.PATIENT)
        patient_pk = _insert_or_get(
            connection,
            schema.patients,
            patient,
            ("patient_id", "issuer_of_patient_id"),
            update=update,
        )
        study = index_values(dataset, Level.STUDY) | {
            "patient_pk": patient_pk,
            "updated_at": utc_now(),
        }
        study_pk = _insert_or_get(
            connection,
            schema.studies,
            study,
            ("study_instance_uid",),
            update=update,
            new_only={"number_of_study_related_series": 0, "number_of_study_related_instances": 0},
        )
        series = index_values(dataset, Level.SERIES) | {"study_pk": study_pk}
        series_pk = _insert_or_get(
            connection,
            schema.series,
            series,
            ("series_instance_uid",),
            update=update,
            new_only={"number_of_series_related_instances": 0},
        )
        return series_pk, study_pk

    def _upsert_instance(
        self, connection: sa.Connection, item: _Pending, series_pk: int
    ) -> str | None:
        """Insert the instance row; on a duplicate apply the policy. Returns a replaced key."""
        parsed = item.parsed
        values = item.values | {"series_pk": series_pk, "received_at": utc_now()}
        instances = schema.instances
        inserted = connection.execute(
            _statements().insert_instance[connection.dialect.name], values
        ).first()
        if inserted is not None:
            return None
        existing = connection.execute(
            sa.select(instances.c.pk, instances.c.blob_key, instances.c.series_pk).where(
                instances.c.sop_instance_uid == parsed.sop_instance_uid
            )
        ).one()
        if self.duplicate_policy != "overwrite":
            self._mark_duplicate(item.outcome)
            return None
        connection.execute(sa.update(instances).where(instances.c.pk == existing.pk).values(values))
        item.outcome.status = "replaced"
        if existing.series_pk != series_pk:
            _refresh_series(connection, existing.series_pk)
        return str(existing.blob_key)

    def _delete_unreferenced(self, keys: set[str]) -> None:
        if not keys:
            return
        with self.database.reader.connect() as connection:
            used = set(
                connection.execute(
                    sa.select(schema.instances.c.blob_key).where(
                        schema.instances.c.blob_key.in_(keys)
                    )
                ).scalars()
            )
        for key in keys - used:
            self.blobs.delete(key)

    # ---------------------------------------------------------------- replace
    def replace_instances(self, rewrites: Iterable[tuple[InstanceRecord, bytes]]) -> int:
        """Put rewritten instances in place of stored ones (study management): the same SOP
        Instance UIDs with new attributes, possibly under another study, series parent or
        patient. Returns the number of instances replaced.

        The ingest machinery does it: each new Part-10 file is validated by
        :func:`~klinika.dicom.header.parse_instance`, written by :meth:`BlobStore.put_many`,
        and every instance row, its parents (patient, study, series: created or updated from
        the new header), counts and metadata versions change in ONE index transaction. The
        old blobs are deleted only after it committed (a crash in between leaves orphan
        blobs, which fsck reports, never a row without its blob). Series, studies and
        patients left empty are removed in the same transaction.

        Raises
        ------
        InvalidInstance
            A rewritten file does not parse, or names another SOP Instance UID.
        Conflict
            A series or study concerned changed while the files were rewritten (an instance
            arrived or was replaced): nothing changed, try again.
        StorageFull, StorageUnavailable
            The blob store refused a new file: nothing changed.
        """
        records: list[InstanceRecord] = []
        pending: list[_Pending] = []
        new_keys: set[str] = set()
        try:
            for batch in _batches(rewrites, _REPLACE_BATCH):
                parsed_batch = [self._parse_rewrite(record, data) for record, data in batch]
                written = self.blobs.put_many([parsed.part10 for parsed in parsed_batch])
                new_keys |= {b.key for b in written if isinstance(b, BlobRef)}
                for blob in written:
                    if isinstance(blob, StorageFull | StorageUnavailable):
                        raise blob
                for (record, _), parsed, blob in zip(batch, parsed_batch, written, strict=True):
                    assert isinstance(blob, BlobRef)
                    records.append(record)
                    pending.append(  # the bytes are on disk: keep only what the index needs
                        _Pending(
                            dataclasses.replace(parsed, part10=b""),
                            blob,
                            StoreOutcome("replaced", sop_instance_uid=parsed.sop_instance_uid),
                            _instance_values(parsed, blob),
                        )
                    )
            if pending:
                with self._commit_lock, self.database.writer.begin() as connection:
                    self._replace_rows(connection, records, pending)
        except BaseException:
            self._delete_unreferenced(new_keys - {r.blob_key for r in records})
            raise
        self._delete_unreferenced({r.blob_key for r in records} - new_keys)
        return len(pending)

    def _parse_rewrite(self, record: InstanceRecord, data: bytes) -> ParsedInstance:
        parsed = parse_instance(data, self.inflate_limit)
        if parsed.sop_instance_uid != record.sop_instance_uid:
            raise InvalidInstance(
                f"the rewrite of {record.sop_instance_uid} names {parsed.sop_instance_uid}",
                "invalid-uid",
            )
        return parsed

    def _replace_rows(
        self, connection: sa.Connection, records: list[InstanceRecord], pending: list[_Pending]
    ) -> None:
        """The index side of :meth:`replace_instances`, inside its transaction."""
        instances, series = schema.instances, schema.series
        rows = connection.execute(
            sa.select(
                instances.c.sop_instance_uid, instances.c.blob_key, instances.c.series_pk
            ).where(instances.c.sop_instance_uid.in_([r.sop_instance_uid for r in records]))
        ).all()
        stored = {row[0]: (row[1], int(row[2])) for row in rows}
        old_series: dict[int, int] = {}
        for record in records:
            found = stored.get(record.sop_instance_uid)
            if found is None or found[0] != record.blob_key:
                raise Conflict(
                    f"instance {record.sop_instance_uid} changed meanwhile; nothing was changed"
                )
            old_series[found[1]] = old_series.get(found[1], 0) + 1
        # PostgreSQL: wait for ingest transactions already writing into these series (their
        # instances then count below), and hold off new ones until this one committed
        connection.execute(
            sa.select(series.c.pk).where(series.c.pk.in_(old_series)).with_for_update()
        ).all()
        held: dict[int, int] = dict(
            connection.execute(
                sa.select(instances.c.series_pk, sa.func.count())
                .where(instances.c.series_pk.in_(old_series))
                .group_by(instances.c.series_pk)
            ).all()
        )
        if any(held.get(pk, 0) != n for pk, n in old_series.items()):
            raise Conflict("a series concerned received instances meanwhile; nothing was changed")
        old_studies = set(
            connection.execute(
                sa.select(series.c.study_pk).where(series.c.pk.in_(old_series))
            ).scalars()
        )
        parents: dict[tuple[str, str], tuple[int, int]] = {}
        for item in pending:
            key = (item.parsed.study_uid, item.parsed.series_uid)
            if key not in parents:
                parents[key] = self._upsert_parents(connection, item.parsed, update=True)
            series_pk, _ = parents[key]
            connection.execute(
                sa.update(instances)
                .where(instances.c.sop_instance_uid == item.parsed.sop_instance_uid)
                .values(item.values | {"series_pk": series_pk})
            )
        for series_pk in set(old_series) | {pk for pk, _ in parents.values()}:
            _refresh_series(connection, series_pk)
        _remove_empty(connection, set(old_series))
        for study_pk in old_studies | {pk for _, pk in parents.values()}:
            _refresh_study(connection, study_pk)
        _remove_empty(connection, set(), old_studies)

    # ----------------------------------------------------------------- queries
    def search(self, query: Query) -> QueryResult:
        """Run a query through the one query engine."""
        with self.database.reader.connect() as connection:
            return search(connection, query)

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

    def stored_bytes(self) -> int:
        """The size of every stored instance, as received (from the index)."""
        with self.database.reader.connect() as connection:
            total = connection.execute(sa.select(sa.func.sum(schema.instances.c.blob_size)))
            return int(total.scalar_one() or 0)

    def count(self, query: Query) -> int:
        """How many entries match ``query`` (for paging), from the index alone."""
        with self.database.reader.connect() as connection:
            return count(connection, query)

    def instances_matching(self, query: Query) -> list[InstanceRecord]:
        """Every instance under the entities a query matches (C-MOVE / C-GET sets).

        References
        ----------
        PS3.4 C.4.2.2.1 / C.4.3.2.1 (the retrieve identifier names what is sent).
        """
        records: list[InstanceRecord] = []
        seen: set[tuple[str, str | None, str | None]] = set()
        if query.level == Level.PATIENT:  # a patient's instances are those of its studies
            query = dataclasses.replace(query, level=Level.STUDY)
        for match in self.search(query).matches:
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
        instances, series, studies = schema.instances, schema.series, schema.studies
        statement = (
            sa.select(
                studies.c.study_instance_uid,
                series.c.series_instance_uid,
                instances.c.sop_instance_uid,
                instances.c.sop_class_uid,
                instances.c.available_transfer_syntax_uid,
                instances.c.blob_key,
                instances.c.blob_size,
                instances.c.number_of_frames,
                instances.c.pixel_location,
                instances.c.metadata_json,
            )
            .select_from(
                instances.join(series, instances.c.series_pk == series.c.pk).join(
                    studies, series.c.study_pk == studies.c.pk
                )
            )
            .where(studies.c.study_instance_uid == study_uid)
            .order_by(
                series.c.series_number, series.c.pk, instances.c.instance_number, instances.c.pk
            )
        )
        if series_uid is not None:
            statement = statement.where(series.c.series_instance_uid == series_uid)
        if sop_instance_uid is not None:
            statement = statement.where(instances.c.sop_instance_uid == sop_instance_uid)
        with self.database.reader.connect() as connection:
            rows = connection.execute(statement).all()
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

    def instance(self, study_uid: str, series_uid: str, sop_instance_uid: str) -> InstanceRecord:
        """One instance's record, from the series' records held in memory while the series
        does not change (:mod:`klinika.archive.lookup`): the per-frame path of a viewer.

        Raises
        ------
        NotFound
            When the instance is not in that series of that study.
        """
        return self._records.instance(study_uid, series_uid, sop_instance_uid)

    def series_metadata(self, study_uid: str, series_uid: str, base_url: str) -> MetadataDocument:
        """The series' DICOM JSON array, assembled from stored per-instance JSON and cached
        until the series changes (its ``metadata_version``).

        ``base_url`` replaces the placeholder base of bulk data URIs.
        """
        with self.database.reader.connect() as connection:
            series_pk, version = series_version(connection, study_uid, series_uid)
            etag = f'"s{series_pk}-v{version}"'
            key = (study_uid, series_uid, base_url)
            with self._cache_lock:
                cached = self._cache.get(key)
                if cached is not None and cached.etag == etag:
                    self._cache.move_to_end(key)
                    return cached
            texts = connection.execute(
                sa.select(schema.instances.c.metadata_json)
                .where(schema.instances.c.series_pk == series_pk)
                .order_by(schema.instances.c.instance_number, schema.instances.c.pk)
            ).scalars()
            body = with_base(("[" + ",".join(texts) + "]").encode("utf-8"), base_url)
        document = MetadataDocument(body, gzip.compress(body, compresslevel=5, mtime=0), etag)
        with self._cache_lock:
            self._cache[key] = document
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return document

    def study_series(self, study_uid: str) -> list[str]:
        """Series Instance UIDs of a study, in series order."""
        series, studies = schema.series, schema.studies
        with self.database.reader.connect() as connection:
            uids = list(
                connection.execute(
                    sa.select(series.c.series_instance_uid)
                    .join(studies, series.c.study_pk == studies.c.pk)
                    .where(studies.c.study_instance_uid == study_uid)
                    .order_by(series.c.series_number, series.c.pk)
                ).scalars()
            )
        if not uids:
            raise NotFound(f"study {study_uid} is not in the archive")
        return uids

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

    def refresh_counts(self) -> None:
        """Recompute every series' and study's counts and modalities (fsck --repair)."""
        with self.database.writer.begin() as connection:
            for pk in connection.execute(sa.select(schema.series.c.pk)).scalars().all():
                _refresh_series(connection, pk)
            for pk in connection.execute(sa.select(schema.studies.c.pk)).scalars().all():
                _refresh_study(connection, pk)

    # ----------------------------------------------------------------- delete
    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
    ) -> int:
        """Remove a study, series or instance from the index, then its blobs.

        Returns the number of instances removed. Raises :class:`NotFound` when nothing matched.
        """
        records = self.instances(study_uid, series_uid, sop_instance_uid)
        patient_id = self.patient_of(study_uid)
        if patient_id is not None:
            with self._cache_lock:
                self._deleted_patients[study_uid] = patient_id
                while len(self._deleted_patients) > 1024:
                    self._deleted_patients.popitem(last=False)
        sop_uids = [r.sop_instance_uid for r in records]
        instances, series = schema.instances, schema.series
        with self.database.writer.begin() as connection:
            series_pks = set(
                connection.execute(
                    sa.select(instances.c.series_pk).where(
                        instances.c.sop_instance_uid.in_(sop_uids)
                    )
                ).scalars()
            )
            study_pks = set(
                connection.execute(
                    sa.select(series.c.study_pk).where(series.c.pk.in_(series_pks))
                ).scalars()
            )
            connection.execute(
                sa.delete(instances).where(instances.c.sop_instance_uid.in_(sop_uids))
            )
            for pk in series_pks:
                _refresh_series(connection, pk)
            _remove_empty(connection, series_pks)
            for pk in study_pks:
                _refresh_study(connection, pk)
            _remove_empty(connection, set(), study_pks)
            labels.forget_if_gone(connection, study_uid)
        self._delete_unreferenced({r.blob_key for r in records})
        return len(records)


def _batches(
    items: Iterable[tuple[InstanceRecord, bytes]], size: int
) -> Iterator[list[tuple[InstanceRecord, bytes]]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _refuse(outcome: StoreOutcome, refusal: Refusal) -> None:
    outcome.status, outcome.reason, outcome.message = "rejected", refusal.reason, refusal.message


def _name(value: object) -> str | None:
    """A Patient's Name compared as the query engine matches names (case and trailing empty
    components do not count); the alphabetic group only, the one every system writes."""
    text = str(value).split("=")[0].strip() if value is not None else ""
    return normalize_name(text) if text else None


def _study_patient(connection: sa.Connection, study_uid: str) -> StudyPatient | None:
    """The patient a stored study holds: identity (ID, issuer) from the patient row, the name
    from one of the study's instances (the patient row keeps the name of the patient's first
    study; a later study may spell it otherwise, e.g. after a marriage)."""
    patients, studies = schema.patients, schema.studies
    row = connection.execute(
        sa.select(patients.c.patient_id, patients.c.issuer_of_patient_id, studies.c.pk)
        .join(studies, studies.c.patient_pk == patients.c.pk)
        .where(studies.c.study_instance_uid == study_uid)
    ).first()
    if row is None:
        return None
    metadata = connection.execute(
        sa.select(schema.instances.c.metadata_json)
        .join(schema.series, schema.instances.c.series_pk == schema.series.c.pk)
        .where(schema.series.c.study_pk == row[2])
        .limit(1)
    ).scalar()
    name = None
    if metadata:
        values = json.loads(metadata).get("00100010", {}).get("Value") or [{}]
        name = _name(values[0].get("Alphabetic") if isinstance(values[0], dict) else None)
    return StudyPatient(row[0] or "", row[1] or None, name)


def _first(match: dict[str, Any], tag: str) -> str | None:
    values = match.get(tag, {}).get("Value")
    return str(values[0]) if values else None


def _instance_values(parsed: ParsedInstance, blob: BlobRef) -> dict[str, Any]:
    """The instance row, built before the write transaction (DICOM JSON takes a while)."""
    location = parsed.pixel_location
    pixel_vr = None if location is None else ("OB" if location.encapsulated else "OW")
    return index_values(parsed.dataset, Level.IMAGE) | {
        "available_transfer_syntax_uid": parsed.transfer_syntax,
        "number_of_frames": number_of_frames(parsed.dataset)
        if "NumberOfFrames" in parsed.dataset
        else None,
        "blob_key": blob.key,
        "blob_size": blob.size,
        "metadata_json": metadata_json(parsed.dataset, pixel_vr),
        "pixel_location": json.dumps(location.to_json()) if location else None,
    }


def _dialect_insert(connection: sa.Connection) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the connection's dialect."""
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _insert_or_get(
    connection: sa.Connection,
    table: sa.Table,
    values: dict[str, Any],
    keys: tuple[str, ...],
    *,
    update: bool = False,
    new_only: dict[str, Any] | None = None,
) -> int:
    """Insert a row unless one with the same ``keys`` exists (``new_only`` are values of a
    new row only); return its primary key. With ``update``, an existing row takes ``values``.

    ``INSERT … ON CONFLICT DO NOTHING`` keeps concurrent writers on PostgreSQL from failing;
    on SQLite the writer already holds the database lock.
    """
    where = [table.c[k] == values[k] for k in keys]
    found = connection.execute(sa.select(table.c.pk).where(*where)).scalar()
    if found is not None:
        if update:
            connection.execute(sa.update(table).where(table.c.pk == found).values(values))
        return int(found)
    connection.execute(
        _dialect_insert(connection)(table)
        .values(values | (new_only or {}))
        .on_conflict_do_nothing(index_elements=keys)
    )
    return int(connection.execute(sa.select(table.c.pk).where(*where)).scalar_one())


def _remove_empty(
    connection: sa.Connection, series_pks: set[int], study_pks: set[int] | None = None
) -> None:
    """Delete the series among ``series_pks`` and the studies among ``study_pks`` that hold
    nothing any more, then every patient without a study."""
    instances, series, studies = schema.instances, schema.series, schema.studies
    if series_pks:
        connection.execute(
            sa.delete(series).where(
                series.c.pk.in_(series_pks),
                ~sa.exists().where(instances.c.series_pk == series.c.pk),
            )
        )
    if study_pks:
        connection.execute(
            sa.delete(studies).where(
                studies.c.pk.in_(study_pks),
                ~sa.exists().where(series.c.study_pk == studies.c.pk),
            )
        )
    connection.execute(
        sa.delete(schema.patients).where(
            ~sa.exists().where(studies.c.patient_pk == schema.patients.c.pk)
        )
    )


@dataclass(frozen=True)
class _Statements:
    """The statements of the ingest hot path, built once: SQLAlchemy then reuses their cache
    keys and compiled forms instead of rebuilding both for every instance."""

    parents: sa.Select[Any]
    insert_instance: dict[str, Any]
    refresh_series: sa.Update
    study_series: sa.Select[Any]
    refresh_study: sa.Update


@functools.cache
def _statements() -> _Statements:
    instances, series, studies = schema.instances, schema.series, schema.studies
    count = sa.select(sa.func.count()).where(instances.c.series_pk == series.c.pk).scalar_subquery()
    return _Statements(
        parents=sa.select(series.c.pk, series.c.study_pk)
        .join(studies, series.c.study_pk == studies.c.pk)
        .where(
            series.c.series_instance_uid == sa.bindparam("series_uid"),
            studies.c.study_instance_uid == sa.bindparam("study_uid"),
        ),
        insert_instance={
            name: dialect_insert(instances)
            .on_conflict_do_nothing(index_elements=["sop_instance_uid"])
            .returning(instances.c.pk)
            for name, dialect_insert in (
                ("sqlite", sqlite.insert),
                ("postgresql", postgresql.insert),
            )
        },
        refresh_series=sa.update(series)
        .where(series.c.pk == sa.bindparam("target_pk"))
        .values(
            number_of_series_related_instances=count,
            metadata_version=series.c.metadata_version + 1,
        ),
        study_series=sa.select(
            series.c.modality, series.c.number_of_series_related_instances
        ).where(series.c.study_pk == sa.bindparam("target_pk")),
        refresh_study=sa.update(studies).where(studies.c.pk == sa.bindparam("target_pk")),
    )


def _parent_keys(key: tuple[str, str]) -> dict[str, str]:
    return {"study_uid": key[0], "series_uid": key[1]}


def _refresh_series(connection: sa.Connection, series_pk: int) -> None:
    connection.execute(_statements().refresh_series, {"target_pk": series_pk})


def _refresh_study(connection: sa.Connection, study_pk: int) -> None:
    statements = _statements()
    rows = connection.execute(statements.study_series, {"target_pk": study_pk}).all()
    modalities = sorted({r.modality for r in rows if r.modality})
    connection.execute(
        statements.refresh_study,
        {
            "target_pk": study_pk,
            "modalities_in_study": "\\".join(modalities) or None,
            "number_of_study_related_series": len(rows),
            "number_of_study_related_instances": sum(r[1] or 0 for r in rows),
            "updated_at": utc_now(),
        },
    )
