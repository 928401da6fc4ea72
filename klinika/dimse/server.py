"""Our AE: which services and transfer syntaxes it accepts, and starting it."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
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
from klinika.dimse.handlers import Handlers, set_nodelay
from klinika.dimse.peers import admission_handler
from klinika.dimse.telemetry import telemetry_handlers
from klinika.observability import Metrics

log = logging.getLogger(__name__)

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


@dataclass
class DimseServer:
    """A running listener."""

    ae: AE
    server: ThreadedAssociationServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def shutdown(self) -> None:
        """Stop accepting, abort the open associations (an unacknowledged instance is the
        sender's to retry) and close the socket."""
        self.ae.shutdown()


def build_ae(settings: Settings) -> AE:
    """The AE with every storage SOP class in every transfer syntax pynetdicom knows, plus
    verification and Patient/Study Root query/retrieve (C-GET role selection accepted)."""
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_pdu_size = 0  # no limit: fewer, larger P-DATA PDUs
    ae.maximum_associations = 32
    ae.network_timeout = 120
    ae.dimse_timeout = 120
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(
            context.abstract_syntax, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True
        )
    ae.add_supported_context(Verification)
    for sop_class in QUERY_RETRIEVE:
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    # Calling AEs are admitted by klinika.dimse.peers (title and address), not by
    # ae.require_calling_aet, which checks titles only and leaves no trace of a refusal.
    return ae


def start_dimse_server(
    archive: Archive,
    auth: AuthService,
    audit: AuditTrail,
    settings: Settings,
    *,
    metrics: Metrics | None = None,
) -> DimseServer:
    """Listen on ``settings.dimse_host:dimse_port`` in background threads; non-blocking.

    Calling AEs are admitted by :func:`klinika.dimse.peers.admission_handler`; each service
    is then authorized by ``auth`` and audited. ``settings.dimse_port`` 0 picks a free port
    (see :attr:`DimseServer.port`).
    """
    handlers = Handlers(archive, auth, audit, settings)
    ae = build_ae(settings)
    server = ae.make_server(
        (settings.dimse_host, settings.dimse_port),
        server_class=NoDelayAssociationServer,
        evt_handlers=[
            (evt.EVT_CONN_OPEN, set_nodelay),
            (evt.EVT_REQUESTED, admission_handler(auth, audit)),
            (evt.EVT_C_ECHO, handlers.echo),
            (evt.EVT_C_STORE, handlers.store),
            (evt.EVT_C_FIND, handlers.find),
            (evt.EVT_C_MOVE, handlers.move),
            (evt.EVT_C_GET, handlers.get),
            *telemetry_handlers(metrics or Metrics()),  # metrics and the DIMSE access log
        ],
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
    return DimseServer(ae, server)
