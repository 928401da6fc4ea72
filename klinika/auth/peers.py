"""DICOM peers as principals: which calling AE, from which address, may do which action.

The DIMSE edge asks :func:`authorize_ae` (or :meth:`AuthService.authorize_ae`, which also
audits refusals) before it serves C-STORE (``dicom:store``), C-FIND / C-MOVE / C-GET
(``dicom:read``) or C-ECHO (``dicom:echo``). A peer's role is ``modality``; the answer is yes
only if the matrix allows ``modality`` the action AND the peer's own entry lists it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from klinika.auth.permissions import Role, is_allowed

#: The DIMSE services and the action each one needs.
SERVICE_ACTIONS = {
    "echo": "dicom:echo",
    "store": "dicom:store",
    "find": "dicom:read",
    "move": "dicom:read",
    "get": "dicom:read",
}
ALL_DIMSE_ACTIONS = frozenset(SERVICE_ACTIONS.values())


@dataclass(frozen=True)
class DicomPeer:
    """A known application entity.

    ``ae_title`` ``"*"`` matches any calling AE title; ``host`` None matches any address,
    otherwise an IP address or network (``10.0.0.0/24``). ``actions`` is what this peer may do
    (see :data:`SERVICE_ACTIONS`).
    """

    ae_title: str
    host: str | None = None
    actions: frozenset[str] = ALL_DIMSE_ACTIONS

    def matches(self, calling_ae: str, address: str) -> bool:
        if self.ae_title != "*" and self.ae_title.strip() != calling_ae.strip():
            return False
        if self.host is None:
            return True
        try:
            return ipaddress.ip_address(address) in ipaddress.ip_network(self.host, strict=False)
        except ValueError:
            return False


#: The embedded default: any calling AE, but only from this machine.
LOCAL_ANY = (
    DicomPeer("*", "127.0.0.0/8"),
    DicomPeer("*", "::1"),
)


def authorize_ae(peers: Iterable[DicomPeer], calling_ae: str, address: str, action: str) -> bool:
    """True if a known peer matching ``calling_ae`` and ``address`` may do ``action``."""
    if not is_allowed(Role.MODALITY, action):
        return False
    return any(p.matches(calling_ae, address) and action in p.actions for p in peers)


def peers_from_settings(modalities: Iterable[Any], *, strict: bool) -> tuple[DicomPeer, ...]:
    """The known peers: the configured modalities (title and address checked), plus, unless
    ``strict``, any AE title from this machine (the embedded default)."""
    known = tuple(
        DicomPeer(m.title, m.host, frozenset(SERVICE_ACTIONS[s] for s in m.services))
        for m in modalities
    )
    return known if strict else known + LOCAL_ANY
