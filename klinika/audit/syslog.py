"""Sending audit messages to syslog (RFC 5424 over UDP, RFC 5426, or a local Unix socket),
so that a copy of the trail leaves the machine as it is written.

References
----------
RFC 5424 (the message format), RFC 5426 (syslog over UDP), IHE ITI TF-2 3.20 (Record Audit
Event: ATNA messages in syslog, facility 10 ``authpriv``, MSGID ``IHE+RFC-3881``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from klinika.errors import ConfigError

log = logging.getLogger(__name__)

FACILITY_AUTHPRIV = 10
SEVERITY_NOTICE = 5
SEVERITY_WARNING = 4
MSGID_ATNA = "IHE+RFC-3881"
MSGID_CHECKPOINT = "KLINIKA-CHECKPOINT"
_BOM = b"\xef\xbb\xbf"
_NIL = "-"


def rfc5424(
    body: bytes,
    *,
    msgid: str,
    severity: int = SEVERITY_NOTICE,
    app_name: str = "klinika",
    hostname: str | None = None,
    now: dt.datetime | None = None,
) -> bytes:
    """One RFC 5424 message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM MSG``
    (no structured data; the UTF-8 body is marked by the BOM, RFC 5424 6.4)."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    header = " ".join(
        (
            f"<{FACILITY_AUTHPRIV * 8 + severity}>1",
            moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            _field(hostname or socket.gethostname(), 255),
            _field(app_name, 48),
            _field(str(os.getpid()), 128),
            _field(msgid, 32),
            _NIL,
        )
    )
    return header.encode("ascii") + b" " + _BOM + body


def _field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit`` characters."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or _NIL


class SyslogSender:
    """Datagrams to one syslog target: ``udp://host:port`` or ``unix:///dev/log``.

    Sending never raises: the trail in the database stays the record, and a lost datagram
    is logged (UDP delivery is best effort by design, RFC 5426 3.6).

    Raises
    ------
    ConfigError
        At construction, for a target that is not one of those forms.
    """

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = target
        self._lock = threading.Lock()
        if parts.scheme == "udp" and parts.hostname:
            info = socket.getaddrinfo(parts.hostname, parts.port or 514, type=socket.SOCK_DGRAM)
            family, kind, proto, _, address = info[0]
            self._socket = socket.socket(family, kind, proto)
            self._address: tuple[Any, ...] | str = address
        elif parts.scheme == "unix" and parts.path:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._address = parts.path
        else:
            raise ConfigError(
                f"audit_syslog must be udp://HOST:PORT or unix:///PATH, not {target!r}"
            )

    def send(self, message: bytes) -> None:
        try:
            with self._lock:
                self._socket.sendto(message, self._address)
        except OSError as exc:
            log.warning("could not send an audit message to %s: %s", self.target, exc)

    def close(self) -> None:
        self._socket.close()
