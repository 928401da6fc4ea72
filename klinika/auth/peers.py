"""DICOM peers as principals: which calling AE, from which address, may use which service.

The DIMSE edge asks :func:`authorize_ae` (or :meth:`AuthService.authorize_ae`, which also
audits refusals) before it serves C-STORE (``store``: action ``dicom:store``), C-FIND /
C-MOVE / C-GET (``find`` / ``move`` / ``get``: ``dicom:read``), C-ECHO (``echo``:
``dicom:echo``), Modality Worklist C-FIND (``worklist``: ``workflow:read``), MPPS N-CREATE /
N-SET (``mpps``) or Storage Commitment N-ACTION (``commit``: both ``workflow:perform``).
A peer's role is ``modality``; the answer is yes only if the matrix allows ``modality`` the
service's action AND the peer's own entry lists the service.

Secure by default, as Orthanc is since 1.9: without configuration any calling AE title from
this machine may echo and store (:data:`LOCAL_ANY`); querying and retrieving needs a
configured modality whose entry lists ``find`` / ``move`` / ``get``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from klinika.auth.permissions import Role, is_allowed

#: The DIMSE services and the action of the permission matrix each one needs.
SERVICE_ACTIONS = {
    "echo": "dicom:echo",
    "store": "dicom:store",
    "find": "dicom:read",
    "move": "dicom:read",
    "get": "dicom:read",
    "worklist": "workflow:read",
    "mpps": "workflow:perform",
    "commit": "workflow:perform",
}
ALL_SERVICES = frozenset(SERVICE_ACTIONS)
#: What any local process may do in the embedded default.
LOCAL_SERVICES = frozenset({"echo", "store"})


@dataclass(frozen=True)
class DicomPeer:
    """A known application entity.

    ``ae_title`` ``"*"`` matches any calling AE title; ``host`` None matches any address,
    otherwise an IP address or network (``10.0.0.0/24``). ``services`` is what this peer may
    use (keys of :data:`SERVICE_ACTIONS`). With ``client_certificate`` the peer matches only
    on a DICOM TLS association whose client certificate our CA verified.
    """

    ae_title: str
    host: str | None = None
    services: frozenset[str] = ALL_SERVICES
    client_certificate: bool = False

    def matches(self, calling_ae: str, address: str, *, certified: bool = False) -> bool:
        if self.client_certificate and not certified:
            return False
        if self.ae_title != "*" and self.ae_title.strip() != calling_ae.strip():
            return False
        if self.host is None:
            return True
        try:
            return ipaddress.ip_address(address) in ipaddress.ip_network(self.host, strict=False)
        except ValueError:
            return False


#: The embedded default: any calling AE from this machine may echo and store.
LOCAL_ANY = (
    DicomPeer("*", "127.0.0.0/8", LOCAL_SERVICES),
    DicomPeer("*", "::1", LOCAL_SERVICES),
)


def authorize_ae(
    peers: Iterable[DicomPeer],
    calling_ae: str,
    address: str,
    service: str,
    *,
    certified: bool = False,
) -> bool:
    """True if a known peer matching ``calling_ae`` and ``address`` may use ``service``
    (``echo``, ``store``, ``find``, ``move``, ``get``); ``certified``: the association came
    over DICOM TLS with a verified client certificate."""
    action = SERVICE_ACTIONS.get(service)
    if action is None or not is_allowed(Role.MODALITY, action):
        return False
    return any(
        p.matches(calling_ae, address, certified=certified) and service in p.services for p in peers
    )


def peers_from_settings(modalities: Iterable[Any], *, strict: bool) -> tuple[DicomPeer, ...]:
    """The known peers: the configured modalities (title and address checked, each with its
    services), plus, unless ``strict``, echo and store from any AE title on this machine."""
    known = tuple(
        DicomPeer(m.title, m.host, frozenset(m.services), m.client_certificate) for m in modalities
    )
    return known if strict else known + LOCAL_ANY
