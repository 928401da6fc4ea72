"""Klinika as a DICOM client: echo, send studies out, query and retrieve from another PACS.

References
----------
PS3.4 Annex A (Verification), B (Storage), C (Query/Retrieve).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, build_context, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from klinika.archive import Archive, InstanceRecord
from klinika.config import RemoteAE, Settings
from klinika.dimse.handlers import connection_opened, received_part10
from klinika.dimse.retrieve import (
    MAX_CONTEXTS,
    Accepted,
    prepare,
    proposed_contexts,
    send_instance,
)
from klinika.errors import KlinikaError


class PeerError(KlinikaError):
    """The remote AE refused or could not be reached; the message says which and why."""


#: Told (done, total) after each sub-operation of a send or retrieve.
Progress = Callable[[int, int], None]
#: C-STORE warning statuses (PS3.4 B.2.3): stored, but coerced or with elements discarded.
WARNINGS = (0xB000, 0xB006, 0xB007)


@dataclass
class SendResult:
    sent: int
    failed: list[tuple[str, int]]
    warnings: int = 0


@dataclass
class RetrieveResult:
    """Sub-operations of a C-MOVE or C-GET as the peer counted them."""

    completed: int
    failed: int
    warnings: int = 0


@contextmanager
def _association(
    settings: Settings,
    peer: RemoteAE,
    contexts: list[PresentationContext],
    tls: ssl.SSLContext | None = None,
    *,
    ext_neg: list[Any] | None = None,
    handlers: list[Any] | None = None,
) -> Iterator[Association]:
    """An association to ``peer``, over DICOM TLS (PS3.15 B.1) when ``tls`` is given (see
    :func:`klinika.dimse.tls.client_tls_context`); the host name is what the certificate
    must name."""
    ae = AE(ae_title=settings.ae_title)
    ae.requested_contexts = contexts
    assoc = ae.associate(
        peer.host,
        peer.port,
        ae_title=peer.title,
        ext_neg=ext_neg,
        evt_handlers=[(evt.EVT_CONN_OPEN, connection_opened), *(handlers or [])],
        tls_args=(tls, peer.host) if tls is not None else None,
    )
    if not assoc.is_established:
        raise PeerError(
            f"{peer.title} at {peer.host}:{peer.port} refused the association or did not answer"
        )
    try:
        yield assoc
    finally:
        assoc.release()


def echo(settings: Settings, peer: RemoteAE, tls: ssl.SSLContext | None = None) -> int:
    """C-ECHO (over DICOM TLS with ``tls``); returns the status (0 = success)."""
    with _association(settings, peer, [build_context(Verification)], tls) as assoc:
        answer = assoc.send_c_echo()
    if "Status" not in answer:
        raise PeerError(f"{peer.title} sent no C-ECHO response")
    return int(answer.Status)


def send(
    settings: Settings,
    archive: Archive,
    study_uid: str,
    peer: RemoteAE,
    tls: ssl.SSLContext | None = None,
) -> SendResult:
    """C-STORE every instance of a study to ``peer`` (over DICOM TLS with ``tls``): as stored
    when the peer accepted the stored transfer syntax, else transcoded to one it accepted (see
    :mod:`klinika.dimse.retrieve`); an instance it can take in neither way is a failure."""
    return send_records(settings, archive, archive.instances(study_uid), peer, tls)


def send_records(
    settings: Settings,
    archive: Archive,
    records: Sequence[InstanceRecord],
    peer: RemoteAE,
    tls: ssl.SSLContext | None = None,
    progress: Progress | None = None,
) -> SendResult:
    """C-STORE ``records`` to ``peer`` on one association, in what it accepted (the sender
    C-MOVE uses); ``progress`` is told (done, total) after each instance."""
    failed: list[tuple[str, int]] = []
    warnings = 0
    with _association(settings, peer, proposed_contexts(records), tls) as assoc:
        accepted = Accepted.of(assoc)
        for number, record in enumerate(records):
            item = prepare(archive, record, accepted)
            answer = send_instance(assoc, item, msg_id=number % 65535 + 1)
            code = int(answer.get("Status", 0xC000))
            if code in WARNINGS:
                warnings += 1
            elif code != 0x0000:
                failed.append((record.sop_instance_uid, code))
            if progress is not None:
                progress(number + 1, len(records))
            if not assoc.is_established:
                failed += [(r.sop_instance_uid, 0xC000) for r in records[number + 1 :]]
                break
    return SendResult(len(records) - len(failed), failed, warnings)


def query(
    settings: Settings,
    peer: RemoteAE,
    level: str,
    keys: dict[str, str],
    patient_root: bool = False,
    tls: ssl.SSLContext | None = None,
    limit: int | None = None,
) -> list[Dataset]:
    """C-FIND at ``level`` with ``keys`` (keyword -> value; empty = return it)."""
    model = (
        PatientRootQueryRetrieveInformationModelFind
        if patient_root
        else StudyRootQueryRetrieveInformationModelFind
    )
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level.upper()
    if any(not v.isascii() for v in keys.values()):
        identifier.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    found: list[Dataset] = []
    with _association(settings, peer, [build_context(model)], tls) as assoc:
        for answer, match in assoc.send_c_find(identifier, model):
            status = int(answer.get("Status", 0xC000))
            if status in (0xFF00, 0xFF01) and match is not None:
                if limit is not None and len(found) >= limit:
                    continue  # pynetdicom has no C-CANCEL from this loop; drain the answers
                found.append(match)
            elif status not in (0x0000, 0xFF00, 0xFF01):
                raise PeerError(f"C-FIND failed with status 0x{status:04X}")
    return found


def retrieve(
    settings: Settings,
    peer: RemoteAE,
    study_uid: str,
    tls: ssl.SSLContext | None = None,
    progress: Progress | None = None,
) -> RetrieveResult:
    """C-MOVE a study from ``peer`` to our own AE title (``peer`` must know our AE title and
    address); what arrives comes in through our C-STORE SCP, the one ingest path.

    ``progress`` is told (done, total) from the peer's pending responses (PS3.4 C.4.2.1.3).
    """
    identifier = _study_identifier(study_uid)
    model = StudyRootQueryRetrieveInformationModelMove
    counts = _Counts()
    with _association(settings, peer, [build_context(model)], tls) as assoc:
        for answer, _ in assoc.send_c_move(identifier, settings.ae_title, model):
            counts.update(answer, progress)
    return counts.result()


def retrieve_get(
    settings: Settings,
    peer: RemoteAE,
    study_uid: str,
    store: Callable[[bytes], bool],
    sop_classes: Sequence[str],
    tls: ssl.SSLContext | None = None,
    progress: Progress | None = None,
) -> RetrieveResult:
    """C-GET a study from ``peer``: it sends the instances back on our association, each one
    handed to ``store`` as a Part-10 file (the caller stores it through the one ingest path;
    False answers the peer 0xA700 "out of resources", True success).

    We propose Study Root GET and, for each of ``sop_classes``, a storage context with the
    SCP role (PS3.7 D.3.3.4 role selection), in every transfer syntax pynetdicom knows.
    """
    from pynetdicom import ALL_TRANSFER_SYNTAXES
    from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation

    identifier = _study_identifier(study_uid)
    model = StudyRootQueryRetrieveInformationModelGet
    contexts = [build_context(model)]
    roles = []
    for uid in list(dict.fromkeys(sop_classes))[: MAX_CONTEXTS - 1]:
        contexts.append(build_context(uid, ALL_TRANSFER_SYNTAXES))
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = uid
        role.scu_role = False
        role.scp_role = True
        roles.append(role)

    def received(event: evt.Event) -> int:
        return 0x0000 if store(received_part10(event)) else 0xA700

    counts = _Counts()
    with _association(
        settings,
        peer,
        contexts,
        tls,
        ext_neg=roles,
        handlers=[(evt.EVT_C_STORE, received)],
    ) as assoc:
        for answer, _ in assoc.send_c_get(identifier, model):
            counts.update(answer, progress)
    return counts.result()


def _study_identifier(study_uid: str) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    return identifier


@dataclass
class _Counts:
    """Sub-operation counts from C-MOVE / C-GET responses (PS3.4 C.4.2.1.3, C.4.3.1.3)."""

    completed: int = 0
    failed: int = 0
    warnings: int = 0

    def update(self, answer: Dataset, progress: Progress | None) -> None:
        status = int(answer.get("Status", 0xC000))
        self.completed = int(answer.get("NumberOfCompletedSuboperations") or self.completed)
        self.failed = int(answer.get("NumberOfFailedSuboperations") or self.failed)
        self.warnings = int(answer.get("NumberOfWarningSuboperations") or self.warnings)
        remaining = int(answer.get("NumberOfRemainingSuboperations") or 0)
        done = self.completed + self.failed + self.warnings
        if progress is not None:
            progress(done, done + remaining)
        if status not in (0x0000, 0xFF00, 0xFF01, 0xB000):
            raise PeerError(f"the retrieve failed with status 0x{status:04X}")

    def result(self) -> RetrieveResult:
        return RetrieveResult(self.completed, self.failed, self.warnings)
