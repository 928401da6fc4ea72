"""The DIMSE principal: known AEs read the same matrix, narrowed by their own entry."""

from __future__ import annotations

from klinika.audit import AuditFilter
from klinika.auth import LOCAL_ANY, DicomPeer, authorize_ae, is_allowed
from tests.auth.conftest import Installation

CT = DicomPeer("CT1", "10.0.0.5", frozenset({"store", "echo"}))
WORKSTATION = DicomPeer("WS1", "10.0.1.0/24")


def test_a_known_modality_may_store_but_not_query_when_its_entry_says_so() -> None:
    peers = [CT, WORKSTATION]
    assert authorize_ae(peers, "CT1", "10.0.0.5", "store")
    assert not authorize_ae(peers, "CT1", "10.0.0.5", "find")
    assert authorize_ae(peers, "WS1", "10.0.1.77", "find")


def test_title_and_address_must_both_match() -> None:
    peers = [CT]
    assert not authorize_ae(peers, "CT2", "10.0.0.5", "store")
    assert not authorize_ae(peers, "CT1", "10.0.0.6", "store")
    assert not authorize_ae(peers, "CT1", "not-an-address", "store")


def test_no_peer_may_do_what_the_matrix_denies_modalities() -> None:
    everything = DicomPeer("*", None, frozenset({"delete", "dicom:delete", "user:manage"}))
    assert not is_allowed("modality", "dicom:delete")
    for request in ("delete", "dicom:delete", "user:manage"):
        assert not authorize_ae([everything], "ANY", "10.0.0.1", request)


def test_the_embedded_default_lets_any_local_title_echo_and_store_but_not_read() -> None:
    assert authorize_ae(LOCAL_ANY, "STORESCU", "127.0.0.1", "store")
    assert authorize_ae(LOCAL_ANY, "ECHOSCU", "::1", "echo")
    for service in ("find", "move", "get"):
        assert not authorize_ae(LOCAL_ANY, "FINDSCU", "127.0.0.1", service)
    assert not authorize_ae(LOCAL_ANY, "STORESCU", "192.168.1.9", "store")


def test_a_peer_marked_for_client_certificates_matches_only_when_certified() -> None:
    secure = [DicomPeer("WS1", "10.0.1.0/24", frozenset({"find"}), client_certificate=True)]
    assert not authorize_ae(secure, "WS1", "10.0.1.7", "find")
    assert authorize_ae(secure, "WS1", "10.0.1.7", "find", certified=True)


def test_a_refused_association_is_audited(site: Installation) -> None:
    auth = site.runtime.auth
    assert not auth.authorize_ae("INTRUDER", "192.168.1.9", "store")
    assert auth.authorize_ae("STORESCU", "127.0.0.1", "store")
    events, total = site.runtime.audit.search(AuditFilter(outcome="denied"))
    assert total == 1
    assert (events[0].actor, events[0].role, events[0].action, events[0].source) == (
        "INTRUDER",
        "modality",
        "dicom:store",
        "INTRUDER@192.168.1.9",
    )
