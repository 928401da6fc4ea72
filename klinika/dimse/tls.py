"""DICOM TLS (PS3.15 B.1, the TLS Secure Transport Connection Profile): contexts and listener.

The server side is a second listener (``dimse_tls_port``, 2762 by default, the port IANA
registered for DICOM over TLS) that starts when ``dimse_tls_cert`` and ``dimse_tls_key`` are
set. It speaks TLS 1.2 or newer only. With ``dimse_tls_ca`` a client certificate is asked
for; one that the CA did not sign fails the handshake, and modalities configured with
``+cert`` (``client_certificate``) are admitted only when a verified certificate came.

References
----------
PS3.15 Annex B (B.1 TLS profile; the BCP 195 profiles: TLS 1.2 minimum), PS3.8 §9.1.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

from klinika.config import Settings

log = logging.getLogger(__name__)

#: A client that opens the TCP connection but never finishes the handshake is dropped after
#: this long (the handshake runs in the listener's accept loop).
HANDSHAKE_TIMEOUT = 10.0


def server_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS context, or None when DICOM TLS is not configured.

    Raises
    ------
    OSError, ssl.SSLError
        When the certificate, key or CA file cannot be read.
    """
    if settings.dimse_tls_cert is None or settings.dimse_tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.dimse_tls_cert, settings.dimse_tls_key)
    if settings.dimse_tls_ca is not None:
        context.load_verify_locations(cafile=settings.dimse_tls_ca)
        context.verify_mode = ssl.CERT_OPTIONAL  # a certificate, when sent, must verify
    return context


def client_tls_context(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client context for ``klinika echo/send --tls``: TLS 1.2+, the server certificate
    verified against ``ca`` (the system's trust store without it), our certificate offered
    when ``cert`` is given. The host name is checked against the certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def is_certified(assoc: Any) -> bool:
    """Whether an association runs over TLS with a client certificate the CA verified."""
    transport = getattr(assoc.dul, "socket", None)
    raw = getattr(transport, "socket", None)
    return isinstance(raw, ssl.SSLSocket) and bool(raw.getpeercert())


class TlsAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the TLS handshake bounded in time and
    ``TCP_NODELAY`` on each accepted socket."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None and self.ssl_context is not None
        connection, address = self.socket.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.settimeout(HANDSHAKE_TIMEOUT)
        try:
            wrapped = self.ssl_context.wrap_socket(connection, server_side=True)
        except OSError as exc:  # ssl.SSLError included: a bad or unsigned client certificate
            log.warning("DICOM TLS handshake from %s:%d refused: %s", *address[:2], exc)
            connection.close()
            raise
        wrapped.settimeout(None)
        return wrapped, address
