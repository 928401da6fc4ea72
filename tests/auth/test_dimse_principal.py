"""The DIMSE principal: known AEs read the same matrix, narrowed by their own entry."""

from __future__ import annotations

from klinika.audit import AuditFilter
from klinika.auth import LOCAL_ANY, DicomPeer, authorize_ae, is_allowed
from tests.auth.conftest import Installation

CT = DicomPeer("CT1", "10.0.0.5", frozenset({"dicom:store", "dicom:echo"}))
WORKSTATION = DicomPeer("WS1", "10.0.1.0/24")


def test_a_known_modality_may_store_but_not_query_when_its_entry_says_so() -> None:
    peers = [CT, WORKSTATION]
    assert authorize_ae(peers, "CT1", "10.0.0.5", "dicom:store")
    assert not authorize_ae(peers, "CT1", "10.0.0.5", "dicom:read")
    assert authorize_ae(peers, "WS1", "10.0.1.77", "dicom:read")


def test_title_and_address_must_both_match() -> None:
    peers = [CT]
    assert not authorize_ae(peers, "CT2", "10.0.0.5", "dicom:store")
    assert not authorize_ae(peers, "CT1", "10.0.0.6", "dicom:store")
    assert not authorize_ae(peers, "CT1", "not-an-address", "dicom:store")


def test_no_peer_may_do_what_the_matrix_denies_modalities() -> None:
    everything = DicomPeer("*", None, frozenset({"dicom:delete", "user:manage"}))
    assert not is_allowed("modality", "dicom:delete")
    assert not authorize_ae([everything], "ANY", "10.0.0.1", "dicom:delete")


def test_the_embedded_default_accepts_any_title_from_this_machine_only() -> None:
    assert authorize_ae(LOCAL_ANY, "STORESCU", "127.0.0.1", "dicom:store")
    assert authorize_ae(LOCAL_ANY, "FINDSCU", "::1", "dicom:read")
    assert not authorize_ae(LOCAL_ANY, "STORESCU", "192.168.1.9", "dicom:store")


def test_a_refused_association_is_audited(site: Installation) -> None:
    auth = site.runtime.auth
    assert not auth.authorize_ae("INTRUDER", "192.168.1.9", "dicom:store")
    assert auth.authorize_ae("STORESCU", "127.0.0.1", "dicom:store")
    events, total = site.runtime.audit.search(AuditFilter(outcome="denied"))
    assert total == 1
    assert (events[0].actor, events[0].role, events[0].action, events[0].source) == (
        "INTRUDER",
        "modality",
        "dicom:store",
        "INTRUDER@192.168.1.9",
    )
