"""The SCP handlers: one per DIMSE service, each a thin translation around one domain call."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import (
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    events,
)
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE

from klinika.archive import Archive, InstanceRecord
from klinika.audit import Actor, AuditTrail, Outcome
from klinika.auth import SERVICE_ACTIONS, AuthService, Role
from klinika.config import RemoteAE, Settings
from klinika.dicom.attributes import Level
from klinika.dicom.part10 import file_meta_prefix
from klinika.dimse import status
from klinika.dimse.direct import install
from klinika.dimse.identifiers import AnswerEncoder, answer_dataset, identifier_query
from klinika.dimse.peers import calling_peer
from klinika.dimse.retrieve import Accepted, adopt, prepare, proposed_contexts
from klinika.dimse.tls import is_certified
from klinika.errors import InvalidQuery, KlinikaError, RejectReason

log = logging.getLogger(__name__)


class RetrieveRefused(KlinikaError):
    """A C-MOVE was refused before any sub-operation (not authorized, bad identifier).

    pynetdicom only lets a C-MOVE handler fail before its sub-operation count by raising:
    it answers 0xC513 (a 0xCxxx "unable to process" status) and logs this message.
    """


#: A C-FIND answer stream pauses this long every this many answers (see ``Handlers.find``).
_YIELD_EVERY, _YIELD_FOR = 32, 0.0002

#: The service of each request event (as :data:`klinika.auth.SERVICE_ACTIONS` names them).
_SERVICES = {
    "EVT_C_ECHO": "echo",
    "EVT_C_STORE": "store",
    "EVT_C_FIND": "find",
    "EVT_C_MOVE": "move",
    "EVT_C_GET": "get",
}


def _model(event: events.Event) -> str:
    """The information model (SOP Class UID) a Q/R request was sent on."""
    return str(event.request.AffectedSOPClassUID)


def failure(code: int, comment: str) -> Dataset:
    """A status data set with an ErrorComment a person can read (PS3.7 C.4)."""
    answer = Dataset()
    answer.Status = code
    answer.ErrorComment = comment[:64]
    return answer


@dataclass
class Handlers:
    """The services of our AE, bound to pynetdicom events by :mod:`klinika.dimse.server`."""

    archive: Archive
    auth: AuthService
    audit: AuditTrail
    settings: Settings

    def _allowed(self, event: events.Event, action: str) -> bool:
        """Whether the calling AE may use this event's service (``action`` names the matrix
        entry it needs); a refusal is audited by ``auth`` with the calling AE."""
        title, address = calling_peer(event)
        service = _SERVICES[event.event.name]
        assert SERVICE_ACTIONS[service] == action, (service, action)
        return self.auth.authorize_ae(
            title,
            address,
            service,
            certified=is_certified(event.assoc),
            subject=lambda: refused_subject(event),
        )

    def _record(self, event: events.Event, action: str, outcome: Outcome, **fields: Any) -> None:
        title, address = calling_peer(event)
        self.audit.record_soon(
            Actor(title or "-", Role.MODALITY),
            action,
            outcome,
            source=f"{title}@{address}",
            **fields,
        )

    # ------------------------------------------------------------------ C-ECHO
    def echo(self, event: events.Event) -> int:
        if not self._allowed(event, "dicom:echo"):
            return status.NOT_AUTHORIZED
        return status.SUCCESS

    # ----------------------------------------------------------------- C-STORE
    def store(self, event: events.Event) -> int | Dataset:
        """Store through the one ingest path; success only once the instance is durable."""
        if not self._allowed(event, "dicom:store"):
            return failure(status.NOT_AUTHORIZED, "this AE may not store here")
        outcome = self.archive.store(received_part10(event))
        details: dict[str, Any] = {"status": outcome.status, "reason": outcome.reason}
        patient_id = outcome.patient_id
        if outcome.reason == RejectReason.PATIENT_MISMATCH:
            # the event is about the study's patient (filled in by the trail); the foreign
            # patient the instance claimed is kept beside it
            details["claimed_patient_id"], patient_id = patient_id, None
        self._record(
            event,
            "dicom:store",
            Outcome.SUCCESS if outcome.accepted else Outcome.FAILURE,
            study_uid=outcome.study_uid,
            series_uid=outcome.series_uid,
            sop_instance_uid=outcome.sop_instance_uid,
            patient_id=patient_id,
            details=details,
        )
        if outcome.accepted:
            return status.SUCCESS
        return failure(status.store_status(outcome.reason), outcome.message or "rejected")

    # ------------------------------------------------------------------ C-FIND
    def find(self, event: events.Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """Matches streamed from the one query engine as pending responses: each answer is
        built (and encoded) only when pynetdicom is ready to send it, so a C-CANCEL stops
        the query, and a large match count is never held in memory."""
        if not self._allowed(event, "dicom:read"):
            yield failure(status.NOT_AUTHORIZED, "this AE may not query here"), None
            return
        try:
            query, keys = identifier_query(event.identifier, _model(event))
            matches = self.archive.search_stream(query)
            first = next(matches, None)
        except KlinikaError as exc:
            self._record(event, "dicom:read", Outcome.FAILURE, details={"error": str(exc)})
            code = (
                status.IDENTIFIER_MISMATCH
                if isinstance(exc, InvalidQuery)
                else status.FIND_UNABLE_TO_PROCESS
            )
            yield failure(code, str(exc)), None
            return
        answer = _answer_builder(event, keys, query.level, self.settings.ae_title)
        sent = 0
        seen = _Subjects()
        try:
            match = first
            while match is not None:
                if event.is_cancelled:
                    yield status.CANCEL, None
                    return
                yield status.PENDING, answer(match)
                seen.add(_value(match, "0020000D"), _value(match, "00100020"))
                sent += 1
                if sent % _YIELD_EVERY == 0:
                    # Answers are written straight to the socket and never wait, so a long
                    # stream would keep the GIL for whole switch intervals: let the DUL
                    # thread read a C-CANCEL, and other associations run.
                    time.sleep(_YIELD_FOR)
                match = next(matches, None)
        finally:
            matches.close()
            self._record(
                event,
                "dicom:read",
                Outcome.SUCCESS,
                **seen.columns(),
                details={
                    "service": "C-FIND",
                    "level": query.level.name,
                    "matches": sent,
                    **seen.details(),
                },
            )

    # ------------------------------------------------------------------ C-MOVE
    def move(self, event: events.Event) -> Iterator[Any]:
        """Send the matched instances to a configured destination (PS3.4 C.4.2).

        The calling AE is authorized first (a refusal is audited whatever the destination).
        An unknown destination answers 0xA801. A refused request (not authorized, identifier
        not resolvable) raises :class:`RetrieveRefused` before the sub-operation count, which
        pynetdicom answers with 0xC513; the destination is not contacted. Each instance goes
        in its stored transfer syntax if the destination accepted it, else transcoded
        (:mod:`klinika.dimse.retrieve`).
        """
        allowed = self._allowed(event, "dicom:read")
        destination = self._destination(event.move_destination or "")
        if destination is None:
            log.warning("C-MOVE to unknown destination %r refused", event.move_destination)
            yield None, None
            return
        sub_association: list[Association] = []

        def opened(opened_event: events.Event) -> None:
            connection_opened(opened_event)
            sub_association.append(adopt(opened_event.assoc))

        # pynetdicom reads these options only after the sub-operation count: the contexts
        # are filled in once the instances are known.
        options: dict[str, Any] = {
            "contexts": [],
            "evt_handlers": [(events.EVT_CONN_OPEN, opened)],
        }
        yield destination.host, destination.port, options
        if not allowed:
            raise RetrieveRefused(f"{calling_peer(event)[0]} may not retrieve here")
        records = self._resolve(event, "C-MOVE")
        if records is None:
            raise RetrieveRefused("the C-MOVE identifier cannot be resolved")
        options["contexts"] = proposed_contexts(records)
        yield from self._sub_operations(event, records, sub_association)

    # ------------------------------------------------------------------- C-GET
    def get(self, event: events.Event) -> Iterator[Any]:
        """Send the matched instances back on the same association (PS3.4 C.4.3), each in its
        stored transfer syntax if the requestor accepted it for the SCP role, else transcoded.

        A refusal is reported as one failed sub-operation with the failure status, since
        pynetdicom takes a status only after the sub-operation count.
        """
        refusal: Dataset | None = None
        records: list[InstanceRecord] | None = None
        if not self._allowed(event, "dicom:read"):
            refusal = failure(status.NOT_AUTHORIZED, "this AE may not retrieve here")
        else:
            records = self._resolve(event, "C-GET")
            if records is None:
                refusal = failure(status.IDENTIFIER_MISMATCH, "the identifier cannot be resolved")
        if refusal is not None or records is None:
            yield 1
            yield refusal, None
            return
        yield from self._sub_operations(event, records, [adopt(event.assoc)])

    def _destination(self, title: bytes | str) -> RemoteAE | None:
        wanted = (title.decode() if isinstance(title, bytes) else title).strip()
        if self.auth.nodes is None:
            return next((m for m in self.settings.modalities if m.title == wanted), None)
        node = self.auth.nodes.find(wanted)
        return node.remote if node is not None else None

    def _resolve(self, event: events.Event, service: str) -> list[InstanceRecord] | None:
        try:
            query, _ = identifier_query(event.identifier, _model(event))
            records = self.archive.instances_matching(query)
        except KlinikaError as exc:
            self._record(
                event,
                "dicom:read",
                Outcome.FAILURE,
                details={"service": service, "error": str(exc)},
            )
            return None
        seen = _Subjects()
        for study_uid in sorted({r.study_uid for r in records}):
            seen.add(study_uid, self.archive.patient_of(study_uid))
        self._record(
            event,
            "dicom:read",
            Outcome.SUCCESS,
            **seen.columns(),
            details={"service": service, "instances": len(records), **seen.details()},
        )
        return records

    def _sub_operations(
        self, event: events.Event, records: list[InstanceRecord], sender: list[Association]
    ) -> Iterator[Any]:
        """The count, then one pending (status, instance) per record; pynetdicom sends each
        on ``sender[0]`` (known once the count is taken) and counts the outcomes."""
        yield len(records)
        accepted = Accepted.of(sender[0]) if sender else Accepted({})
        for record in records:
            if event.is_cancelled:
                yield status.CANCEL, None
                return
            yield status.PENDING, prepare(self.archive, record, accepted)


class _Subjects:
    """The studies and patients a C-FIND answered or a retrieve sent, for its audit event:
    the study and patient columns when there is one of each, and lists (the first 20)."""

    def __init__(self) -> None:
        self.studies: dict[str, None] = {}
        self.patients: dict[str, None] = {}

    def add(self, study_uid: str | None, patient_id: str | None) -> None:
        if study_uid and len(self.studies) < 20:
            self.studies[study_uid] = None
        if patient_id and len(self.patients) < 20:
            self.patients[patient_id] = None

    def columns(self) -> dict[str, str | None]:
        return {
            "study_uid": next(iter(self.studies)) if len(self.studies) == 1 else None,
            "patient_id": next(iter(self.patients)) if len(self.patients) == 1 else None,
        }

    def details(self) -> dict[str, list[str]]:
        return {"studies": list(self.studies), "patients": list(self.patients)}


def _value(match: dict[str, Any], tag: str) -> str | None:
    """The first value of a tag in a DICOM JSON match, as text."""
    values = match.get(tag, {}).get("Value")
    if not values:
        return None
    first = values[0]
    return str(first.get("Alphabetic", "")) if isinstance(first, dict) else str(first)


class EncodedIdentifier(Dataset):
    """A C-FIND answer already encoded for its presentation context's transfer syntax
    (:class:`klinika.dimse.identifiers.AnswerEncoder`); pynetdicom sends the bytes as they are
    (:func:`klinika.dimse.server.send_encoded_answers_as_they_are`)."""

    def __init__(self, encoded: bytes, implicit_vr: bool) -> None:
        super().__init__()
        object.__setattr__(self, "encoded_bytes", encoded)
        object.__setattr__(self, "encoded_implicit_vr", implicit_vr)


def _answer_builder(
    event: events.Event, keys: list[str], level: Level, ae_title: str
) -> Callable[[dict[str, Any]], Dataset]:
    """How each match becomes a response identifier on this presentation context: encoded
    directly for little endian contexts, a pydicom data set otherwise (or when a value is not
    plain text)."""
    syntax = UID(str(event.context.transfer_syntax))
    direct = syntax.is_little_endian and not syntax.is_deflated
    implicit_vr = bool(syntax.is_implicit_VR)
    encoder = AnswerEncoder(keys, level, ae_title, implicit_vr=implicit_vr)

    def build(match: dict[str, Any]) -> Dataset:
        if direct:
            encoded = encoder(match)
            if encoded is not None:
                return EncodedIdentifier(encoded, implicit_vr)
        return answer_dataset(match, keys, level, ae_title)

    return build


def refused_subject(event: events.Event) -> dict[str, str | None]:
    """The study and patient a refused request names, for its audit event: the C-STORE data
    set's, or the C-FIND/C-MOVE/C-GET identifier's (absent ones stay None)."""
    if event.event.name == "EVT_C_ECHO":
        return {}
    try:
        dataset = event.dataset if event.event.name == "EVT_C_STORE" else event.identifier
        subject = {
            "study_uid": str(dataset.get("StudyInstanceUID", "") or "") or None,
            "patient_id": str(dataset.get("PatientID", "") or "") or None,
        }
    except Exception:  # an undecodable data set is refused anyway; the event says who asked
        return {}
    return {  # a wildcard or a list names no one patient or study
        column: value
        for column, value in subject.items()
        if value and len(value) <= 64 and not any(c in value for c in "*?\\")
    }


def received_part10(event: events.Event) -> bytes:
    """The C-STORE data set as received, wrapped as a Part-10 file: the same bytes as
    pynetdicom's ``event.encoded_dataset(include_meta=True)``, without building its File Meta
    through a pydicom data set (PS3.10 §7.1)."""
    request = cast(C_STORE, event.request)
    prefix = file_meta_prefix(
        str(request.AffectedSOPClassUID),
        str(request.AffectedSOPInstanceUID),
        str(event.context.transfer_syntax),
        PYNETDICOM_IMPLEMENTATION_UID,
        PYNETDICOM_IMPLEMENTATION_VERSION,
    )
    # getvalue() hands over the received bytes (getbuffer() would copy a shared buffer)
    return b"".join((prefix, cast(io.BytesIO, request.DataSet).getvalue()))


def connection_opened(event: events.Event) -> None:
    """``EVT_CONN_OPEN`` of every association of ours: ``TCP_NODELAY``, and DIMSE messages
    written to the socket directly (:mod:`klinika.dimse.direct`)."""
    set_nodelay(event)
    install(event.assoc)


def set_nodelay(event: events.Event) -> None:
    """Disable Nagle's algorithm: every DIMSE response would otherwise wait ~40 ms."""
    import socket

    raw = event.assoc.dul.socket.socket if event.assoc.dul.socket else None
    if raw is not None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
