"""Recording, verifying and searching the audit trail."""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from klinika.audit.atna import audit_message
from klinika.audit.chain import GENESIS, KEYED_CHAIN_START, canonical_json, event_hash, key_id
from klinika.audit.checkpoints import Anchor, CheckpointLog
from klinika.audit.outcomes import Outcome
from klinika.audit.schema import audit_chain, audit_events
from klinika.audit.syslog import MSGID_ATNA, MSGID_CHECKPOINT, SyslogSender, rfc5424
from klinika.db import Database
from klinika.errors import InvalidQuery

log = logging.getLogger(__name__)


_BATCH = 1000
_PATIENT_CACHE = 4096
#: how long a study's patient is trusted from the cache: study management in another worker
#: may move a study to another patient (this process forgets at once: forget_studies)
_PATIENT_CACHE_SECONDS = 30.0
#: ``patient_of(study_uid)``: the Patient ID of a study the index holds, else None.
PatientLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class Actor:
    """Who did it: a user (``role`` admin/doctor/operator), a DICOM AE (``role`` modality),
    or Klinika itself (``role`` system)."""

    name: str
    role: str

    @classmethod
    def system(cls) -> Actor:
        return cls("klinika", "system")


@dataclass(frozen=True)
class AuditEvent:
    """One row of the trail, as stored."""

    seq: int
    occurred_at: str
    actor: str
    role: str
    action: str
    outcome: str
    study_uid: str | None
    series_uid: str | None
    sop_instance_uid: str | None
    patient_id: str | None
    source: str | None
    details: str
    prev_hash: str
    hash: str

    def as_row(self) -> dict[str, Any]:
        """The fields as stored (``details`` as its JSON text)."""
        return asdict(self)

    def as_dict(self) -> dict[str, Any]:
        """The fields, with ``details`` decoded from its JSON text."""
        out = asdict(self)
        out["details"] = json.loads(self.details) if self.details else {}
        return out


@dataclass(frozen=True)
class AuditFilter:
    """What to search for; empty fields do not filter. ``since``/``until`` are ISO-8601 dates
    or date-times (UTC when no offset is given); a date-only ``until`` includes that day."""

    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    study_uid: str | None = None
    patient_id: str | None = None
    source: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :meth:`AuditTrail.verify`: ``ok`` or the first problem found."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_seq: int = 0
    anchors: int = 0  # checkpoints and backup heads compared with the chain
    keyed_from: int | None = None  # the first event hashed with the audit key


def timestamp(now: dt.datetime | None = None) -> str:
    """UTC, microseconds, ``Z``: fixed width, so text order is time order."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bound(raw: str, name: str, *, end_of_day: bool) -> str:
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            moment = dt.datetime.combine(
                day, dt.time.max if end_of_day else dt.time.min, tzinfo=dt.UTC
            )
        else:
            moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise InvalidQuery(f"{name} must be an ISO-8601 date or date-time, not {raw!r}") from exc
    return timestamp(moment)


def _row(
    actor: Actor,
    action: str,
    outcome: Outcome,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
    patient_id: str | None = None,
    source: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "actor": actor.name,
        "role": str(actor.role),  # a plain str (a Role, say), as hashed and stored
        "action": action,
        "outcome": Outcome(outcome).value,
        "study_uid": study_uid,
        "series_uid": series_uid,
        "sop_instance_uid": sop_instance_uid,
        "patient_id": patient_id,
        "source": source,
        "details": canonical_json(dict(details or {})),
        "_at": timestamp(),  # when it happened, not when the writer got to it
    }


#: How long the background writer waits for more events before committing a lone one.
WRITER_LINGER_SECONDS = 0.1


def _named_key_id(details: str) -> str:
    """The key id a keyed-chain event names ("" when its details are not what we write)."""
    try:
        named = json.loads(details).get("key_id")
    except (ValueError, AttributeError):
        return ""
    return named if isinstance(named, str) else ""


class AuditTrail:
    """The append-only trail of one installation, in the index database.

    Recording takes the writer lock (``BEGIN IMMEDIATE`` on SQLite, a row lock on the chain
    head on PostgreSQL), so concurrent workers append one after another and the chain stays
    linear.

    Parameters
    ----------
    database
        Where the events live.
    key, older_keys
        The audit key (:func:`klinika.audit.key.load_audit_keys`): events are chained with
        HMAC-SHA256 under it, from an ``audit:keyed-chain`` event naming its key id on
        (written by :meth:`start_keyed_chain`). ``older_keys`` verify the segments that
        earlier keys chained. Without a key, plain SHA-256 (tests, old installations).
    checkpoints
        Where signed checkpoints of the head are appended: every ``checkpoint_every`` events,
        every ``checkpoint_seconds`` while events arrive, and at :meth:`close`.
    syslog, source_id
        Where each event is also sent as an IHE ATNA message (RFC 5424), and the
        AuditSourceID it names (the AE title).
    patient_of
        Fills ``patient_id`` for events that name a study but not its patient.
    """

    def __init__(
        self,
        database: Database,
        *,
        key: bytes | None = None,
        older_keys: Iterable[bytes] = (),
        checkpoints: CheckpointLog | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 300.0,
        syslog: SyslogSender | None = None,
        source_id: str = "KLINIKA",
        patient_of: PatientLookup | None = None,
    ) -> None:
        self.database = database
        self._key = key
        self._keys = {key_id(k): k for k in (*older_keys, *([key] if key else []))}
        self._checkpoints = checkpoints
        self._checkpoint_every = max(1, checkpoint_every)
        self._checkpoint_seconds = checkpoint_seconds
        self._syslog = syslog
        self._source_id = source_id
        self._patient_of = patient_of
        self._patients: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._flush_now = threading.Event()
        self._checkpoint_lock = threading.Lock()
        self._unanchored = 0  # events appended here since the last checkpoint
        self._last_anchor: tuple[int, str] | None = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ write
    def record(
        self,
        actor: Actor,
        action: str,
        outcome: Outcome,
        *,
        study_uid: str | None = None,
        series_uid: str | None = None,
        sop_instance_uid: str | None = None,
        patient_id: str | None = None,
        source: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one event now and return it as stored.

        ``source`` is the client address (HTTP) or ``AE@address`` (DIMSE). ``details`` must be
        JSON-serialisable; it is stored as canonical JSON so the hash is reproducible.
        """
        row = _row(
            actor,
            action,
            outcome,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_instance_uid=sop_instance_uid,
            patient_id=patient_id,
            source=source,
            details=details,
        )
        self.flush()  # keep the order of events queued before this one
        return self._append([row])[0]

    def record_soon(self, actor: Actor, action: str, outcome: Outcome, **fields: Any) -> None:
        """Queue an access event (same fields as :meth:`record`); a writer thread appends
        queued events in one transaction.

        For the high-volume read events of the edges: the client does not wait for the
        trail, and many events share one commit. Reading the trail (search, verify, export)
        first waits for the queue, so this process always reads its own events.
        """
        self._start_writer()
        self._queue.put(_row(actor, action, outcome, **fields))

    def start_keyed_chain(self) -> AuditEvent | None:
        """Write the event that starts the chain under this installation's key, unless the
        trail's newest such event names this key already (returns it when written). Events
        before it stay verifiable with their unkeyed hash or earlier key; from it on,
        rewriting the chain needs the key."""
        if self._key is None:
            return None
        row = _row(
            Actor.system(),
            KEYED_CHAIN_START,
            Outcome.SUCCESS,
            details={"algorithm": "HMAC-SHA256", "key_id": key_id(self._key)},
        )
        self.flush()
        written = self._append([row], unless_keyed=True)
        return written[0] if written else None

    def queued(self) -> int:
        """How many events :meth:`record_soon` queued that are not written yet (a metric)."""
        return self._queue.qsize()

    def flush(self) -> None:
        """Wait until every queued event is written."""
        if self._writer is not None:
            self._flush_now.set()
            self._queue.join()

    def close(self) -> None:
        """Write what is queued, checkpoint the head, stop the background threads."""
        with self._writer_lock:
            if self._writer is not None:
                self._flush_now.set()
                self._queue.put(None)
                self._writer.join(timeout=30)
                self._writer = None
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout=30)
            self._ticker = None
        if self._unanchored:
            try:
                self.checkpoint()
            except Exception:  # the database may be gone already; the events are in it
                log.exception("could not write the closing audit checkpoint")
        if self._syslog is not None:
            self._syslog.close()

    def _start_writer(self) -> None:
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._drain, name="audit-writer", daemon=True
                    )
                    self._writer.start()

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            if first is not None and self._queue.empty():
                # Linger a moment so that the events of a burst (one per C-STORE or C-FIND)
                # share one commit: each commit is a log fsync that holds the writer lock the
                # next instance's index transaction waits for. flush() cuts the wait short.
                self._flush_now.wait(WRITER_LINGER_SECONDS)
            self._flush_now.clear()
            batch = [first]
            while len(batch) < 500:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [row for row in batch if row is not None]
            try:
                if rows:
                    self._append(rows)
            except Exception:  # never lose the thread; the events are logged instead
                log.exception("could not write %d audit event(s): %s", len(rows), rows)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return

    def _append(
        self, rows: list[dict[str, Any]], *, unless_keyed: bool = False
    ) -> list[AuditEvent]:
        """Chain and insert rows in one transaction (the writer lock keeps the chain linear).
        With ``unless_keyed``, nothing is written when a keyed-chain event exists already."""
        self._fill_patients(rows)
        with self.database.writer.begin() as connection:
            head = connection.execute(
                sa.select(audit_chain.c.seq, audit_chain.c.hash)
                .where(audit_chain.c.id == 1)
                .with_for_update()
            ).one()
            if unless_keyed and self._current_key_id(connection) == key_id(self._key or b""):
                return []
            seq, prev = head.seq, head.hash
            for row in rows:
                seq += 1
                row["seq"] = seq
                row["occurred_at"] = row.pop("_at", None) or timestamp()
                row["prev_hash"] = prev
                row["hash"] = prev = event_hash(row, self._key)
            connection.execute(sa.insert(audit_events), rows)
            connection.execute(
                sa.update(audit_chain).where(audit_chain.c.id == 1).values(seq=seq, hash=prev)
            )
        events = [AuditEvent(**row) for row in rows]
        self._after_commit(events)
        return events

    def _fill_patients(self, rows: list[dict[str, Any]]) -> None:
        """``patient_id`` for rows that name a study only: from the index, else from the
        trail's own last event about that study (a deleted study is gone from the index)."""
        for row in rows:
            study_uid = row.get("study_uid")
            if row.get("patient_id") or not study_uid:
                continue
            with self._checkpoint_lock:
                cached = self._patients.get(study_uid)
            found = None
            if cached is not None and time.monotonic() - cached[1] < _PATIENT_CACHE_SECONDS:
                found = cached[0]
            if found is None:
                found = self._patient_of(study_uid) if self._patient_of else None
                if found is None:
                    found = self._patient_in_trail(study_uid)
                if found is not None:  # an unknown study may arrive later: not cached
                    with self._checkpoint_lock:
                        self._patients[study_uid] = (found, time.monotonic())
                        while len(self._patients) > _PATIENT_CACHE:
                            self._patients.popitem(last=False)
            row["patient_id"] = found

    def forget_studies(self, study_uids: Iterable[str]) -> None:
        """Drop the cached patients of these studies (study management moved them)."""
        with self._checkpoint_lock:
            for study_uid in study_uids:
                self._patients.pop(study_uid, None)

    def _patient_in_trail(self, study_uid: str) -> str | None:
        columns = audit_events.c
        with self.database.reader.connect() as connection:
            found = connection.execute(
                sa.select(columns.patient_id)
                .where(columns.study_uid == study_uid, columns.patient_id.is_not(None))
                .order_by(columns.seq.desc())
                .limit(1)
            ).scalar()
        return None if found is None else str(found)

    @staticmethod
    def _current_key_id(connection: sa.Connection) -> str | None:
        """The key id the newest keyed-chain event names (None when there is none)."""
        details = connection.execute(
            sa.select(audit_events.c.details)
            .where(audit_events.c.action == KEYED_CHAIN_START)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        ).scalar()
        return None if details is None else _named_key_id(details)

    def _after_commit(self, events: list[AuditEvent]) -> None:
        """Send the events to syslog and checkpoint when enough have been written."""
        if self._syslog is not None:
            for event in events:
                message = audit_message(event.as_row(), source_id=self._source_id)
                self._syslog.send(rfc5424(message, msgid=MSGID_ATNA))
        if self._checkpoints is None or not events:
            return
        with self._checkpoint_lock:
            self._unanchored += len(events)
            due = self._unanchored >= self._checkpoint_every
        if due:
            self.checkpoint((events[-1].seq, events[-1].hash))
        self._start_ticker()

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self, head: tuple[int, str] | None = None) -> Anchor | None:
        """Append a signed checkpoint of the head (read now unless given) to the checkpoint
        file and send it to syslog. Returns it, or None without a checkpoint file or when
        the head is the one checkpointed last."""
        if self._checkpoints is None:
            return None
        if head is None:
            with self.database.reader.connect() as connection:
                row = connection.execute(
                    sa.select(audit_chain.c.seq, audit_chain.c.hash).where(audit_chain.c.id == 1)
                ).one()
            head = (int(row.seq), str(row.hash))
        with self._checkpoint_lock:
            self._unanchored = 0
            if head == self._last_anchor or head[0] == 0:
                return None
            self._last_anchor = head
            line = self._checkpoints.append(head[0], head[1], timestamp())
        if self._syslog is not None:
            self._syslog.send(rfc5424(line.encode("utf-8"), msgid=MSGID_CHECKPOINT))
        return Anchor("checkpoint", head[0], head[1])

    def _start_ticker(self) -> None:
        if self._ticker is not None or self._checkpoint_seconds <= 0:
            return
        with self._checkpoint_lock:
            if self._ticker is None and not self._stopping.is_set():
                self._ticker = threading.Thread(
                    target=self._tick, name="audit-checkpoints", daemon=True
                )
                self._ticker.start()

    def _tick(self) -> None:
        while not self._stopping.wait(self._checkpoint_seconds):
            if self._unanchored:
                try:
                    self.checkpoint()
                except Exception:
                    log.exception("could not write an audit checkpoint")

    # ----------------------------------------------------------------- verify
    def verify(self, anchors: Iterable[Anchor] = ()) -> VerifyResult:
        """Recompute the chain from the first event up to the head read at the start: every
        hash (keyed from the keyed-chain event on), every link, no gap in the sequence, the
        head matching the last event, and every anchor (this installation's checkpoints and
        the ``anchors`` given, e.g. backup manifests' heads) matching the chain.

        Anchors are read before the head, so events appended meanwhile by other processes
        are beyond the head and never seen: no false alarm while others write.
        """
        self.flush()
        problems: list[str] = []
        known = list(anchors)
        if self._checkpoints is not None:
            signed, problems = self._checkpoints.read()
            known.extend(signed)
        by_seq: dict[int, list[Anchor]] = {}
        for anchor in known:
            by_seq.setdefault(anchor.seq, []).append(anchor)
        expected_prev, expected_seq, checked = GENESIS, 1, 0
        keyed_from: int | None = None
        with self.database.reader.connect() as connection:
            head = connection.execute(
                sa.select(audit_chain.c.seq, audit_chain.c.hash).where(audit_chain.c.id == 1)
            ).one_or_none()
            if head is None:
                return VerifyResult(False, 0, None, "the chain head row is missing")

            def broken(seq: int | None, problem: str) -> VerifyResult:
                return VerifyResult(False, checked, seq, problem, head.seq, len(known), keyed_from)

            if problems:
                return broken(None, problems[0])
            key: bytes | None = None
            for row in self._scan(connection, AuditFilter(), upto=head.seq):
                problem = None
                if row["action"] == KEYED_CHAIN_START and (self._keys or keyed_from):
                    named = _named_key_id(row["details"])
                    key = self._keys.get(named)
                    keyed_from = keyed_from or row["seq"]
                    if key is None:
                        return broken(
                            row["seq"],
                            f"events from {row['seq']} on are chained with an audit key this "
                            f"installation does not hold (key id {named}): add that key as a "
                            "further line of the audit key file",
                        )
                if row["seq"] != expected_seq:
                    problem = f"event {expected_seq} is missing (found {row['seq']} next)"
                elif row["prev_hash"] != expected_prev:
                    problem = f"event {row['seq']} does not link to the event before it"
                elif event_hash(row, key) != row["hash"]:
                    problem = f"event {row['seq']} was altered (its hash does not match)"
                else:
                    for anchor in by_seq.get(row["seq"], ()):
                        if anchor.hash != row["hash"]:
                            problem = (
                                f"event {row['seq']} differs from what {anchor.source} "
                                "recorded (the trail was rewritten)"
                            )
                if problem:
                    return broken(row["seq"], problem)
                expected_prev, expected_seq, checked = row["hash"], row["seq"] + 1, checked + 1
        if head.seq != expected_seq - 1 or head.hash != expected_prev:
            return broken(
                expected_seq,
                f"the chain head says {head.seq} events but {expected_seq - 1} remain "
                "(events were deleted from the end, or the head was altered)",
            )
        beyond = [a for a in known if a.seq > head.seq]
        if beyond:
            first = max(beyond, key=lambda a: a.seq)
            return broken(
                head.seq + 1,
                f"{first.source} recorded event {first.seq}, but the trail ends at event "
                f"{head.seq} (events were cut from the end)",
            )
        if self._key is not None and keyed_from is None and checked:
            return broken(
                None,
                "no event starts the keyed chain although this installation has an audit "
                "key: the trail was re-chained without the key",
            )
        return VerifyResult(True, checked, None, None, head.seq, len(known), keyed_from)

    # ----------------------------------------------------------------- search
    def search(
        self, where: AuditFilter, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[AuditEvent], int]:
        """Events matching ``where``, newest first, with the total count of matches."""
        self.flush()
        conditions = self._conditions(where)
        query = (
            sa.select(audit_events)
            .where(*conditions)
            .order_by(audit_events.c.seq.desc())
            .limit(limit)
            .offset(offset)
        )
        count = sa.select(sa.func.count()).select_from(audit_events).where(*conditions)
        with self.database.reader.connect() as connection:
            rows = connection.execute(query).mappings().all()
            total = connection.execute(count).scalar_one()
        return [AuditEvent(**row) for row in rows], int(total)

    def iter_events(self, where: AuditFilter) -> Iterator[AuditEvent]:
        """Events matching ``where``, oldest first, read in batches (for export)."""
        self.flush()
        with self.database.reader.connect() as connection:
            for row in self._scan(connection, where):
                yield AuditEvent(**row)

    def _scan(
        self, connection: sa.Connection, where: AuditFilter, *, upto: int | None = None
    ) -> Iterator[dict[str, Any]]:
        conditions = self._conditions(where)
        if upto is not None:
            conditions.append(audit_events.c.seq <= upto)
        after = 0
        while True:
            rows = (
                connection.execute(
                    sa.select(audit_events)
                    .where(audit_events.c.seq > after, *conditions)
                    .order_by(audit_events.c.seq)
                    .limit(_BATCH)
                )
                .mappings()
                .all()
            )
            for row in rows:
                yield dict(row)
            if len(rows) < _BATCH:
                return
            after = rows[-1]["seq"]

    @staticmethod
    def _conditions(where: AuditFilter) -> list[sa.ColumnElement[bool]]:
        columns = audit_events.c
        conditions: list[sa.ColumnElement[bool]] = []
        for name in ("actor", "action", "outcome", "study_uid", "patient_id", "source"):
            value = getattr(where, name)
            if value:
                conditions.append(columns[name] == value)
        if where.since:
            conditions.append(columns.occurred_at >= _bound(where.since, "since", end_of_day=False))
        if where.until:
            conditions.append(columns.occurred_at <= _bound(where.until, "until", end_of_day=True))
        return conditions
