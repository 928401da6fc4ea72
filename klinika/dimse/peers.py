"""Who may open an association with us: the rules applied at A-ASSOCIATE.

The called AE title must be ours (else A-ASSOCIATE-RJ, called AE title not recognized). A
calling AE is admitted when one of the auth service's known peers matches its title and
address (:meth:`klinika.auth.DicomPeer.matches`), and for a peer marked ``+cert`` a client
certificate verified over DICOM TLS. Outside strict mode those peers include any AE title from
this machine (the embedded default: echo and store only); in strict mode only configured
modalities. Each service is still authorized on its own (``AuthService.authorize_ae``), since a
peer may be limited to some services. Every refusal is logged and audited.

References
----------
PS3.8 §7.1.1.9 and Table 9-21 (A-ASSOCIATE-RJ result, source and reason).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pynetdicom import events

from klinika.audit import Actor, AuditTrail, Outcome
from klinika.auth import AuthService, Role
from klinika.dimse.tls import is_certified

log = logging.getLogger(__name__)

#: A-ASSOCIATE-RJ: rejected-permanent, by the service user, calling AE title not recognized.
_REJECT_CALLING_AE = (0x01, 0x01, 0x03)
#: A-ASSOCIATE-RJ: rejected-permanent, by the service user, called AE title not recognized.
_REJECT_CALLED_AE = (0x01, 0x01, 0x07)


def calling_peer(event: events.Event) -> tuple[str, str]:
    """(calling AE title, address) of the association an event belongs to."""
    requestor = event.assoc.requestor
    return str(requestor.ae_title).strip(), str(requestor.address)


def is_known(auth: AuthService, title: str, address: str, *, certified: bool = False) -> bool:
    """Whether any known peer matches this calling AE title and address (``certified``: over
    DICOM TLS with a verified client certificate)."""
    return any(peer.matches(title, address, certified=certified) for peer in auth.peers)


def association_rejected(audit: AuditTrail, title: str, address: str, reason: str) -> None:
    """Record one refused association: a log line and an audit event (``dicom:associate``).

    The one place where refusals are reported; alerting on repeated refusals plugs in here.
    """
    log.warning("association from %s@%s rejected: %s", title or "-", address, reason)
    audit.record_soon(
        Actor(title or "-", Role.MODALITY),
        "dicom:associate",
        Outcome.DENIED,
        source=f"{title}@{address}",
        details={"reason": reason},
    )


def requesting_peer(event: events.Event) -> tuple[str, str]:
    """(calling AE title, address) from an A-ASSOCIATE request not yet negotiated (pynetdicom
    copies the calling title onto the requestor only during negotiation)."""
    requestor = event.assoc.requestor
    request = requestor.primitive
    calling = request.calling_ae_title if request is not None else ""
    return str(calling).strip(), str(requestor.address)


def admission_handler(
    auth: AuthService, audit: AuditTrail, ae_title: str
) -> Callable[[events.Event], None]:
    """An ``EVT_REQUESTED`` handler that rejects, before negotiation, a request addressed to
    another called AE title than ``ae_title`` and one from an unknown calling AE.

    Rejecting from ``EVT_REQUESTED`` is pynetdicom's documented way to refuse a request; it
    answers A-ASSOCIATE-RJ (permanent, called / calling AE title not recognized) and then stops
    the association's threads, as pynetdicom's own rejection path does.
    """
    ours = ae_title.strip()

    def admit(event: events.Event) -> None:
        title, address = requesting_peer(event)
        request = event.assoc.requestor.primitive
        called = str(request.called_ae_title if request is not None else "").strip()
        if called != ours:
            association_rejected(
                audit, title, address, f"called AE title {called!r} is not ours ({ours})"
            )
            event.assoc.acse.send_reject(*_REJECT_CALLED_AE)
            event.assoc.kill()
            return
        if is_known(auth, title, address, certified=is_certified(event.assoc)):
            return
        association_rejected(audit, title, address, "unknown calling AE or address")
        event.assoc.acse.send_reject(*_REJECT_CALLING_AE)
        event.assoc.kill()

    return admit
