"""Our AE: which services and transfer syntaxes it accepts, and starting it."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import pynetdicom.service_class
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, _config, evt
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from klinika.archive import Archive
from klinika.audit import AuditTrail
from klinika.auth import AuthService
from klinika.config import Settings
from klinika.dimse.handlers import EncodedIdentifier, Handlers, connection_opened
from klinika.dimse.peers import admission_handler
from klinika.dimse.sop_classes import storage_sop_classes
from klinika.dimse.telemetry import telemetry_handlers
from klinika.dimse.tls import TlsAssociationServer, server_tls_context
from klinika.dimse.workflow import WorkflowHandlers
from klinika.observability import Metrics
from klinika.workflow import Schedule

log = logging.getLogger(__name__)

#: Every transfer syntax pynetdicom knows, Explicit VR Little Endian first: pynetdicom's
#: acceptor takes the first of *its* list that the requestor proposed, and ALL_TRANSFER_SYNTAXES
#: starts with Implicit VR LE, which would win over the Explicit VR LE a peer prefers (a C-GET
#: of instances stored explicit would then be re-encoded for every instance).
ACCEPTED_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    *(syntax for syntax in ALL_TRANSFER_SYNTAXES if syntax != ExplicitVRLittleEndian),
]

#: Patient/Study Root Q/R FIND, MOVE, GET (PS3.4 C.6.1, C.6.2), by pynetdicom's names.
QUERY_RETRIEVE = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
)


class SharedContexts(list):  # type: ignore[type-arg]
    """The server's supported contexts, shared read-only by every association.

    pynetdicom deep-copies them for each association: with every storage SOP class in every
    transfer syntax that is ~40,000 UIDs re-validated, ~40 ms per association. Negotiation only
    reads them, so a shallow copy is enough.
    """

    def __deepcopy__(self, memo: dict[int, object]) -> list[object]:
        return list(self)


class NoDelayAssociationServer(ThreadedAssociationServer):
    """Accepted sockets get ``TCP_NODELAY`` before the first PDU is answered: with Nagle's
    algorithm on, a multi-write A-ASSOCIATE-AC or DIMSE response waits ~40 ms for an ACK."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


class SharedListenerServer(NoDelayAssociationServer):
    """An association server accepting from a listening socket that several DIMSE processes
    share (:func:`listening_socket`, inherited across ``fork``).

    Each process waits in a blocking ``accept``: Linux hands every new connection to one
    waiting process, in turn, so concurrent associations spread over the processes (a
    ``select`` loop would wake them all to race for it).
    """

    shared_socket: ClassVar[socket.socket]
    _stopping = False

    def server_bind(self) -> None:
        if self.socket is not None:
            self.socket.close()  # the fresh, unbound socket socketserver made
        self.socket = self.shared_socket
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Already listening."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        while not self._stopping:
            try:
                request, address = self.get_request()
            except OSError:
                continue
            if self._stopping:
                self.shutdown_request(request)
                return
            try:
                self.process_request(request, address)
            except Exception:
                self.handle_error(request, address)
                self.shutdown_request(request)
            self.service_actions()

    def stop(self) -> None:
        """Abort the open associations and close this process's copy of the socket; the
        acceptor thread ends with the process (the other processes keep listening)."""
        self._stopping = True
        for association in self.active_associations:
            association.abort()
        if self.socket is not None:
            self.socket.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket for several DIMSE processes to share (port 0: a free one).

    It is blocking: each process accepts from it with :class:`SharedListenerServer`.
    """
    listener = socket.create_server((host, port), backlog=128)
    listener.settimeout(None)
    return listener


@dataclass
class DimseServer:
    """A running listener."""

    ae: AE
    server: ThreadedAssociationServer
    tls_server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def tls_port(self) -> int | None:
        """The DICOM TLS listener's port, when it runs."""
        return None if self.tls_server is None else int(self.tls_server.server_address[1])

    def shutdown(self) -> None:
        """Stop accepting, abort the open associations (an unacknowledged instance is the
        sender's to retry) and close the socket."""
        if isinstance(self.server, SharedListenerServer):
            self.server.stop()
        else:
            self.ae.shutdown()


def build_ae(settings: Settings) -> AE:
    """The AE with every storage SOP class of PS3.4, retired ones included
    (:func:`~klinika.dimse.sop_classes.storage_sop_classes`), in every transfer syntax
    pynetdicom knows, plus verification and Patient/Study Root query/retrieve (C-GET role
    selection accepted).

    With ``dimse_accept_unknown_sop_classes`` any private or unknown SOP class is taken as
    storage too: pynetdicom's documented "unrestricted storage service"
    (``_config.UNRESTRICTED_STORAGE_SERVICE``), a switch for the whole process (one DIMSE
    listener per process). The called AE title is checked by
    :func:`klinika.dimse.peers.admission_handler`.
    """
    _config.UNRESTRICTED_STORAGE_SERVICE = settings.dimse_accept_unknown_sop_classes
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_pdu_size = 0  # no limit: fewer, larger P-DATA PDUs
    ae.maximum_associations = 32
    ae.network_timeout = 120
    ae.dimse_timeout = 120
    for uid in storage_sop_classes():
        ae.add_supported_context(uid, ACCEPTED_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
    ae.add_supported_context(Verification)
    for sop_class in QUERY_RETRIEVE:
        ae.add_supported_context(sop_class, ACCEPTED_TRANSFER_SYNTAXES)
    for sop_class in (
        ModalityWorklistInformationFind,
        ModalityPerformedProcedureStep,
        StorageCommitmentPushModel,
    ):
        ae.add_supported_context(sop_class, ACCEPTED_TRANSFER_SYNTAXES)
    # Calling AEs are admitted by klinika.dimse.peers (title and address), not by
    # ae.require_calling_aet, which checks titles only and leaves no trace of a refusal.
    return ae


def send_encoded_answers_as_they_are() -> None:
    """Let pynetdicom's C-FIND SCP send an :class:`EncodedIdentifier` without re-encoding it.

    pynetdicom encodes each pending answer with pydicom (``service_class.encode``), which costs
    more than finding the match; its service classes offer no hook for ready bytes, so its
    encoder is wrapped once per process. Anything else is encoded as before. pynetdicom's
    per-message logging of identifiers (``pretty_dataset`` of every answer, even when the
    log level drops it) is turned off, and its standard DIMSE/PDU log handlers are not bound
    unless the ``pynetdicom`` logger shows INFO.
    """
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    if not logging.getLogger("pynetdicom").isEnabledFor(logging.INFO):
        _config.LOG_HANDLER_LEVEL = "none"
    service_class = cast(Any, pynetdicom.service_class)
    original = service_class.encode
    if getattr(original, "passes_encoded_answers", False):
        return

    def encode(
        dataset: Any, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False
    ) -> bytes | None:
        if (
            isinstance(dataset, EncodedIdentifier)
            and dataset.encoded_implicit_vr == is_implicit_vr
            and is_little_endian
            and not deflated
        ):
            return bytes(dataset.encoded_bytes)
        return cast(bytes | None, original(dataset, is_implicit_vr, is_little_endian, deflated))

    encode.passes_encoded_answers = True  # type: ignore[attr-defined]
    service_class.encode = encode


def start_dimse_server(
    archive: Archive,
    auth: AuthService,
    audit: AuditTrail,
    settings: Settings,
    *,
    listener: socket.socket | None = None,
    tls_listener: socket.socket | None = None,
    metrics: Metrics | None = None,
    schedule: Schedule | None = None,
) -> DimseServer:
    """Listen on ``settings.dimse_host:dimse_port`` in background threads; non-blocking.

    Calling AEs are admitted by :func:`klinika.dimse.peers.admission_handler`; each service
    is then authorized by ``auth`` and audited. ``schedule`` serves the workflow SCPs
    (worklist, MPPS, storage commitment); one on ``archive``'s database when not given.
    ``settings.dimse_port`` 0 picks a free port (see :attr:`DimseServer.port`). With
    ``listener`` (and ``tls_listener`` for DICOM TLS, from :func:`listening_socket`), this
    process accepts from those shared sockets instead, next to the other DIMSE processes.
    """
    send_encoded_answers_as_they_are()
    handlers = Handlers(archive, auth, audit, settings)
    schedule = schedule or Schedule(archive.database, audit)
    workflow = WorkflowHandlers(schedule, auth, audit, settings)

    def find(event: evt.Event) -> Any:
        """Modality Worklist queries to the workflow handlers, the others to Q/R."""
        if str(event.request.AffectedSOPClassUID) == ModalityWorklistInformationFind:
            return workflow.worklist(event)
        return handlers.find(event)

    ae = build_ae(settings)
    evt_handlers: list[Any] = [
        (evt.EVT_CONN_OPEN, connection_opened),
        (evt.EVT_REQUESTED, admission_handler(auth, audit, settings.ae_title)),
        (evt.EVT_C_ECHO, handlers.echo),
        (evt.EVT_C_STORE, handlers.store),
        (evt.EVT_C_FIND, find),
        (evt.EVT_N_CREATE, workflow.create_performed),
        (evt.EVT_N_SET, workflow.set_performed),
        (evt.EVT_N_ACTION, workflow.commit),
        (evt.EVT_C_MOVE, handlers.move),
        (evt.EVT_C_GET, handlers.get),
        *telemetry_handlers(metrics or Metrics()),  # metrics and the DIMSE access log
    ]
    server_class: type[Any] = NoDelayAssociationServer
    address: tuple[str, int] = (settings.dimse_host, settings.dimse_port)
    if listener is not None:
        server_class = type("SharedListener", (SharedListenerServer,), {"shared_socket": listener})
        address = listener.getsockname()[:2]
    server = ae.make_server(
        address,
        server_class=server_class,
        evt_handlers=evt_handlers,
    )
    server.contexts = SharedContexts(server.contexts)
    ae._servers.append(server)  # as start_server does, so that shutdown() finds it
    threading.Thread(target=server.serve_forever, name="dimse-acceptor", daemon=True).start()
    log.info(
        "DIMSE %s listening on %s:%d",
        settings.ae_title,
        settings.dimse_host,
        server.server_address[1],
    )
    return DimseServer(ae, server, start_tls_listener(ae, settings, evt_handlers, tls_listener))


def start_tls_listener(
    ae: AE,
    settings: Settings,
    evt_handlers: list[Any],
    listener: socket.socket | None = None,
) -> ThreadedAssociationServer | None:
    """The DICOM TLS listener on ``dimse_tls_port`` (PS3.15 B.1) with the same services and
    handlers, when a certificate and key are configured; None otherwise. With ``listener``
    (several DIMSE processes) this process accepts from that shared socket, as on the plain
    port."""
    context = server_tls_context(settings)
    if context is None:
        return None
    server_class: type[Any] = TlsAssociationServer
    address: tuple[str, int] = (settings.dimse_host, settings.dimse_tls_port)
    if listener is not None:
        server_class = type(
            "SharedTlsListener",
            (SharedListenerServer,),
            {"shared_socket": listener, "get_request": TlsAssociationServer.get_request},
        )
        address = listener.getsockname()[:2]
    server = ae.make_server(
        address,
        server_class=server_class,
        evt_handlers=evt_handlers,
        ssl_context=context,
    )
    server.contexts = SharedContexts(server.contexts)
    ae._servers.append(server)
    threading.Thread(target=server.serve_forever, name="dimse-tls-acceptor", daemon=True).start()
    log.info(
        "DICOM TLS %s listening on %s:%d%s",
        settings.ae_title,
        settings.dimse_host,
        server.server_address[1],
        " (client certificates verified)" if settings.dimse_tls_ca else "",
    )
    return server
