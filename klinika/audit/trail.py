"""Recording, verifying and searching the audit trail."""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import sqlalchemy as sa

from klinika.audit.chain import GENESIS, canonical_json, event_hash
from klinika.audit.schema import audit_chain, audit_events
from klinika.db import Database
from klinika.errors import InvalidQuery

log = logging.getLogger(__name__)

Outcome = Literal["success", "failure", "denied"]
_BATCH = 1000


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
    outcome: str,
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
        "role": actor.role,
        "action": action,
        "outcome": outcome,
        "study_uid": study_uid,
        "series_uid": series_uid,
        "sop_instance_uid": sop_instance_uid,
        "patient_id": patient_id,
        "source": source,
        "details": canonical_json(dict(details or {})),
        "_at": timestamp(),  # when it happened, not when the writer got to it
    }


class AuditTrail:
    """The append-only trail of one installation, in the index database.

    Recording takes the writer lock (``BEGIN IMMEDIATE`` on SQLite, a row lock on the chain
    head on PostgreSQL), so concurrent workers append one after another and the chain stays
    linear.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()

    # ------------------------------------------------------------------ write
    def record(
        self,
        actor: Actor,
        action: str,
        outcome: Outcome | str,
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

    def record_soon(self, actor: Actor, action: str, outcome: Outcome | str, **fields: Any) -> None:
        """Queue an access event (same fields as :meth:`record`); a writer thread appends
        queued events in one transaction.

        For the high-volume read events of the edges: the client does not wait for the
        trail, and many events share one commit. Reading the trail (search, verify, export)
        first waits for the queue, so this process always reads its own events.
        """
        self._start_writer()
        self._queue.put(_row(actor, action, outcome, **fields))

    def queued(self) -> int:
        """How many events :meth:`record_soon` queued that are not written yet (a metric)."""
        return self._queue.qsize()

    def flush(self) -> None:
        """Wait until every queued event is written."""
        if self._writer is not None:
            self._queue.join()

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        with self._writer_lock:
            if self._writer is not None:
                self._queue.put(None)
                self._writer.join(timeout=30)
                self._writer = None

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

    def _append(self, rows: list[dict[str, Any]]) -> list[AuditEvent]:
        """Chain and insert rows in one transaction (the writer lock keeps the chain linear)."""
        with self.database.writer.begin() as connection:
            head = connection.execute(
                sa.select(audit_chain.c.seq, audit_chain.c.hash)
                .where(audit_chain.c.id == 1)
                .with_for_update()
            ).one()
            seq, prev = head.seq, head.hash
            for row in rows:
                seq += 1
                row["seq"] = seq
                row["occurred_at"] = row.pop("_at", None) or timestamp()
                row["prev_hash"] = prev
                row["hash"] = prev = event_hash(row)
            connection.execute(sa.insert(audit_events), rows)
            connection.execute(
                sa.update(audit_chain).where(audit_chain.c.id == 1).values(seq=seq, hash=prev)
            )
        return [AuditEvent(**row) for row in rows]

    # ----------------------------------------------------------------- verify
    def verify(self) -> VerifyResult:
        """Recompute the chain from the first event: every hash, every link, no gap in the
        sequence, and the head matching the last event."""
        self.flush()
        expected_prev, expected_seq, checked = GENESIS, 1, 0
        with self.database.reader.connect() as connection:
            head = connection.execute(
                sa.select(audit_chain.c.seq, audit_chain.c.hash).where(audit_chain.c.id == 1)
            ).one_or_none()
            if head is None:
                return VerifyResult(False, 0, None, "the chain head row is missing")
            for row in self._scan(connection, AuditFilter()):
                problem = None
                if row["seq"] != expected_seq:
                    problem = f"event {expected_seq} is missing (found {row['seq']} next)"
                elif row["prev_hash"] != expected_prev:
                    problem = f"event {row['seq']} does not link to the event before it"
                elif event_hash(row) != row["hash"]:
                    problem = f"event {row['seq']} was altered (its hash does not match)"
                if problem:
                    return VerifyResult(False, checked, row["seq"], problem, head.seq)
                expected_prev, expected_seq, checked = row["hash"], row["seq"] + 1, checked + 1
        if head.seq != expected_seq - 1 or head.hash != expected_prev:
            return VerifyResult(
                False,
                checked,
                expected_seq,
                f"the chain head says {head.seq} events but {expected_seq - 1} remain "
                "(events were deleted from the end, or the head was altered)",
                head.seq,
            )
        return VerifyResult(True, checked, head_seq=head.seq)

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

    def _scan(self, connection: sa.Connection, where: AuditFilter) -> Iterator[dict[str, Any]]:
        conditions = self._conditions(where)
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
