"""Klinika as a DICOM client: echo, send studies out, query and retrieve from another PACS.

References
----------
PS3.4 Annex A (Verification), B (Storage), C (Query/Retrieve).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE, build_context, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from klinika.archive import Archive
from klinika.config import RemoteAE, Settings
from klinika.dimse.handlers import connection_opened
from klinika.dimse.retrieve import Accepted, prepare, proposed_contexts, send_instance
from klinika.errors import KlinikaError


class PeerError(KlinikaError):
    """The remote AE refused or could not be reached; the message says which and why."""


@dataclass
class SendResult:
    sent: int
    failed: list[tuple[str, int]]


@contextmanager
def _association(
    settings: Settings,
    peer: RemoteAE,
    contexts: list[PresentationContext],
    tls: ssl.SSLContext | None = None,
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
        evt_handlers=[(evt.EVT_CONN_OPEN, connection_opened)],
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
    records = archive.instances(study_uid)
    failed: list[tuple[str, int]] = []
    with _association(settings, peer, proposed_contexts(records), tls) as assoc:
        accepted = Accepted.of(assoc)
        for number, record in enumerate(records):
            item = prepare(archive, record, accepted)
            answer = send_instance(assoc, item, msg_id=number % 65535 + 1)
            code = int(answer.get("Status", 0xC000))
            if code not in (0x0000, 0xB000, 0xB006, 0xB007):
                failed.append((record.sop_instance_uid, code))
            if not assoc.is_established:
                failed += [(r.sop_instance_uid, 0xC000) for r in records[number + 1 :]]
                break
    return SendResult(len(records) - len(failed), failed)


def query(
    settings: Settings, peer: RemoteAE, level: str, keys: dict[str, str], patient_root: bool = False
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
    found = []
    with _association(settings, peer, [build_context(model)]) as assoc:
        for answer, match in assoc.send_c_find(identifier, model):
            status = int(answer.get("Status", 0xC000))
            if status in (0xFF00, 0xFF01) and match is not None:
                found.append(match)
            elif status not in (0x0000, 0xFF00, 0xFF01):
                raise PeerError(f"C-FIND failed with status 0x{status:04X}")
    return found


def retrieve(settings: Settings, peer: RemoteAE, study_uid: str) -> tuple[int, int]:
    """C-MOVE a study from ``peer`` to us (``peer`` must know our AE title and address).

    Returns (completed, failed) sub-operations.
    """
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    model = StudyRootQueryRetrieveInformationModelMove
    completed = failed = 0
    with _association(settings, peer, [build_context(model)]) as assoc:
        for answer, _ in assoc.send_c_move(identifier, settings.ae_title, model):
            status = int(answer.get("Status", 0xC000))
            completed = int(answer.get("NumberOfCompletedSuboperations", completed) or completed)
            failed = int(answer.get("NumberOfFailedSuboperations", failed) or failed)
            if status not in (0x0000, 0xFF00, 0xB000):
                raise PeerError(f"C-MOVE failed with status 0x{status:04X}")
    return completed, failed
