"""The ONE ingest path: validate, write durably, index (with group commit); and the rewrite
of stored instances by study management through the same machinery."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from klinika.archive.admission import (
    Refusal,
    check_derived,
    check_document,
    check_patient,
)
from klinika.archive.records import InstanceRecord, StoreOutcome, StoreStatus
from klinika.archive.removal import delete_unreferenced
from klinika.config import DuplicatePolicy
from klinika.db import Database
from klinika.dicom.attributes import Level
from klinika.dicom.frames import number_of_frames
from klinika.dicom.header import (
    DEFAULT_INFLATE_LIMIT,
    InflateLimit,
    ParsedInstance,
    parse_instance,
)
from klinika.dicom.json import metadata_json
from klinika.errors import InvalidInstance, RejectReason, StorageFull, StorageUnavailable
from klinika.index import lookups, writes
from klinika.index.lookups import StudyPatient
from klinika.index.matching import comparable_name
from klinika.index.writes import index_values, utc_now
from klinika.storage import BlobRef, BlobStore

_REPLACE_BATCH = 32  # rewritten files parsed and written at a time
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


class Ingest:
    """Every instance, whatever door it came through, is stored here.

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
        duplicate_policy: DuplicatePolicy = DuplicatePolicy.KEEP,
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
        self._commit_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Ticket] = []

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
                outcomes.append(
                    StoreOutcome(StoreStatus.REJECTED, reason=exc.reason, message=str(exc))
                )
                continue
            outcome = StoreOutcome(
                StoreStatus.STORED,
                sop_instance_uid=parsed.sop_instance_uid,
                sop_class_uid=parsed.sop_class_uid,
                study_uid=parsed.study_uid,
                series_uid=parsed.series_uid,
                warnings=parsed.warnings,
                patient_id=str(parsed.dataset.get("PatientID", "") or "") or None,
            )
            outcomes.append(outcome)
            if study_uid is not None and parsed.study_uid != study_uid:
                outcome.status, outcome.reason = StoreStatus.REJECTED, RejectReason.STUDY_MISMATCH
                outcome.message = (
                    f"the instance belongs to study {parsed.study_uid}, not {study_uid}"
                )
                continue
            refusal = check_document(parsed) or (check_derived(parsed) if derived_only else None)
            if refusal is not None:
                _refuse(outcome, refusal)
                continue
            accepted.append((parsed, outcome))
        if self.duplicate_policy != DuplicatePolicy.OVERWRITE and len(accepted) > 1:
            # A batch (STOW-RS, import) skips writing the blobs of instances already stored;
            # a single instance (C-STORE) learns it in its index transaction instead, which
            # saves a query on the common path.
            with self.database.reader.connect() as connection:
                known = lookups.stored_sop_instance_uids(
                    connection, {parsed.sop_instance_uid for parsed, _ in accepted}
                )
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
                    StoreStatus.REJECTED,
                    RejectReason.STORAGE_FULL
                    if isinstance(blob, StorageFull)
                    else RejectReason.STORAGE_UNAVAILABLE,
                    str(blob),
                )
            else:
                outcome.size = blob.size
                pending.append(_Pending(parsed, blob, outcome, _instance_values(parsed, blob)))
        if pending:
            self._index_grouped(pending)
        committed = [o for o in outcomes if o.status in (StoreStatus.STORED, StoreStatus.REPLACED)]
        if committed:
            for listener in self.listeners:
                listener(committed)
        return outcomes

    def _mark_duplicate(self, outcome: StoreOutcome) -> None:
        if self.duplicate_policy == DuplicatePolicy.REJECT:
            outcome.status, outcome.reason = StoreStatus.REJECTED, RejectReason.DUPLICATE
            outcome.message = f"SOP Instance {outcome.sop_instance_uid} is already stored"
        else:
            outcome.status = StoreStatus.DUPLICATE

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
                    parents[key] = lookups.series_parents(
                        connection, *key
                    ) or writes.upsert_parents(connection, item.parsed.elements)
                series_pk, study_pk = parents[key]
                replaced_key = self._upsert_instance(connection, item, series_pk)
                if (
                    item.outcome.status == StoreStatus.DUPLICATE
                    or item.outcome.status == StoreStatus.REJECTED
                ):
                    unreferenced.add(item.blob.key)
                    continue
                if replaced_key and replaced_key != item.blob.key:
                    unreferenced.add(replaced_key)
                touched_series.add(series_pk)
                touched_studies.add(study_pk)
            for series_pk in touched_series:
                writes.refresh_series(connection, series_pk)
            for study_pk in touched_studies:
                writes.refresh_study(connection, study_pk)
        delete_unreferenced(self.database, self.blobs, unreferenced)

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
            known[study_uid] = lookups.study_patient(connection, study_uid)
        stored = known[study_uid]
        if stored is None:  # a new study: the next instances of the batch must match this one
            known[study_uid] = StudyPatient(
                str(dataset.get("PatientID", "") or ""),
                str(dataset.get("IssuerOfPatientID", "") or "") or None,
                comparable_name(dataset.get("PatientName")),
            )
            return True
        if self.allow_patient_mismatch:
            return True
        refusal = check_patient(dataset, study_uid, stored, normalize=comparable_name)
        if refusal is None:
            return True
        _refuse(item.outcome, refusal)
        return False

    def _upsert_instance(
        self, connection: sa.Connection, item: _Pending, series_pk: int
    ) -> str | None:
        """Insert the instance row; on a duplicate apply the policy. Returns a replaced key."""
        values = item.values | {"series_pk": series_pk, "received_at": utc_now()}
        if writes.insert_instance(connection, values):
            return None
        if self.duplicate_policy != DuplicatePolicy.OVERWRITE:
            self._mark_duplicate(item.outcome)
            return None
        item.outcome.status = StoreStatus.REPLACED
        return writes.overwrite_instance(connection, values)

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
                            StoreOutcome(
                                StoreStatus.REPLACED, sop_instance_uid=parsed.sop_instance_uid
                            ),
                            _instance_values(parsed, blob),
                        )
                    )
            if pending:
                with self._commit_lock, self.database.writer.begin() as connection:
                    writes.replace_instances(
                        connection,
                        {r.sop_instance_uid: r.blob_key for r in records},
                        [(item.parsed.elements, item.values) for item in pending],
                    )
        except BaseException:
            delete_unreferenced(self.database, self.blobs, new_keys - {r.blob_key for r in records})
            raise
        delete_unreferenced(self.database, self.blobs, {r.blob_key for r in records} - new_keys)
        return len(pending)

    def _parse_rewrite(self, record: InstanceRecord, data: bytes) -> ParsedInstance:
        parsed = parse_instance(data, self.inflate_limit)
        if parsed.sop_instance_uid != record.sop_instance_uid:
            raise InvalidInstance(
                f"the rewrite of {record.sop_instance_uid} names {parsed.sop_instance_uid}",
                RejectReason.INVALID_UID,
            )
        return parsed


def _batches(
    items: Iterable[tuple[InstanceRecord, bytes]], size: int
) -> Iterator[list[tuple[InstanceRecord, bytes]]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _refuse(outcome: StoreOutcome, refusal: Refusal) -> None:
    outcome.status, outcome.reason, outcome.message = (
        StoreStatus.REJECTED,
        refusal.reason,
        refusal.message,
    )


def _instance_values(parsed: ParsedInstance, blob: BlobRef) -> dict[str, Any]:
    """The instance row, built before the write transaction (DICOM JSON takes a while)."""
    location = parsed.pixel_location
    pixel_vr = None if location is None else ("OB" if location.encapsulated else "OW")
    return index_values(parsed.elements, Level.IMAGE) | {
        "available_transfer_syntax_uid": parsed.transfer_syntax,
        "number_of_frames": number_of_frames(parsed.dataset)
        if "NumberOfFrames" in parsed.dataset
        else None,
        "blob_key": blob.key,
        "blob_size": blob.size,
        "metadata_json": metadata_json(parsed.dataset, pixel_vr),
        "pixel_location": json.dumps(location.to_json()) if location else None,
    }
