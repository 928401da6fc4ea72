"""Every DIMSE audit event about a patient names the patient (and the study when there is
one): C-STORE stored or refused, C-FIND, C-MOVE and C-GET."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import CTImageStorage, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from klinika.audit import AuditFilter
from tests.conftest import free_port
from tests.dimse.conftest import TEST_SCU, associate, local_dimse
from tests.factories import make_instance


def dataset(part10: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(pydicom.filebase.DicomBytesIO(part10))


def test_store_find_move_and_get_events_name_the_patient(tmp_path: Path) -> None:
    destination = AE(ae_title="DEST")
    destination.add_supported_context(CTImageStorage)
    received: list[str] = []

    def keep(event: evt.Event) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    port = free_port()
    scp = destination.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, keep)]
    )
    modalities = f"{TEST_SCU} DEST@127.0.0.1:{port}"
    try:
        with local_dimse(tmp_path / "data", modalities=modalities) as local:
            study = generate_uid()
            first = make_instance(study_uid=study, PatientID="AUD-1", PatientName="Audit^One")
            foreign = make_instance(study_uid=study, PatientID="EVIL-1", PatientName="Evil^One")
            assoc = associate(
                local.port,
                CTImageStorage,
                StudyRootQueryRetrieveInformationModelFind,
                StudyRootQueryRetrieveInformationModelMove,
                PatientRootQueryRetrieveInformationModelGet,
            )
            try:
                assert assoc.send_c_store(dataset(first)).Status == 0x0000
                assert assoc.send_c_store(dataset(foreign)).Status != 0x0000
                query = pydicom.Dataset()
                query.QueryRetrieveLevel = "STUDY"
                query.PatientID = "AUD-1"
                query.StudyInstanceUID = ""
                answers = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
                assert any(a[1] is not None for a in answers)
                retrieve = pydicom.Dataset()
                retrieve.QueryRetrieveLevel = "STUDY"
                retrieve.StudyInstanceUID = study
                moved = list(
                    assoc.send_c_move(retrieve, "DEST", StudyRootQueryRetrieveInformationModelMove)
                )
                assert moved[-1][0].Status == 0x0000
                retrieve.PatientID = "AUD-1"
                retrieve.QueryRetrieveLevel = "PATIENT"
                got = list(assoc.send_c_get(retrieve, PatientRootQueryRetrieveInformationModelGet))
                assert got
            finally:
                assoc.release()
            local.runtime.audit.flush()
            found, _ = local.runtime.audit.search(AuditFilter(actor="TESTSCU"))
            events = sorted((e.as_dict() for e in found), key=lambda e: e["seq"])
    finally:
        scp.shutdown()

    stores = [
        (e["outcome"], e["study_uid"], e["patient_id"])
        for e in events
        if e["action"] == "dicom:store"
    ]
    # the refused foreign instance: an event about the study's patient, naming the claim too
    assert stores == [("success", study, "AUD-1"), ("failure", study, "AUD-1")]
    (claimed,) = [e for e in events if e["action"] == "dicom:store" and e["outcome"] == "failure"]
    assert claimed["details"]["claimed_patient_id"] == "EVIL-1"
    reads = [e for e in events if e["action"] == "dicom:read"]
    services = [e["details"].get("service") for e in reads]
    assert {"C-FIND", "C-MOVE", "C-GET"} <= set(services), services
    for event in reads:
        assert event["patient_id"] == "AUD-1", event
        assert event["study_uid"] == study, event
    assert received  # the C-MOVE reached its destination


def test_refused_store_and_find_name_the_patient(tmp_path: Path) -> None:
    modalities = "NOSTORE@127.0.0.1:11113/echo,find NOFIND@127.0.0.1:11114/echo,store"
    with local_dimse(tmp_path / "data", modalities=modalities, dimse_strict=True) as local:
        study = generate_uid()
        instance = make_instance(study_uid=study, PatientID="AUD-2", PatientName="Audit^Two")
        assoc = associate(local.port, CTImageStorage, aet="NOSTORE")
        try:
            assert assoc.send_c_store(dataset(instance)).Status != 0x0000
        finally:
            assoc.release()
        assoc = associate(local.port, StudyRootQueryRetrieveInformationModelFind, aet="NOFIND")
        try:
            query = pydicom.Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.PatientID = "AUD-2"
            query.StudyInstanceUID = study
            answers = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
            assert answers[-1][0].Status != 0x0000
        finally:
            assoc.release()
        local.runtime.audit.flush()
        found, _ = local.runtime.audit.search(AuditFilter(outcome="denied"))
    refused = sorted((e.actor, e.action, e.study_uid, e.patient_id) for e in found)
    assert refused == [
        ("NOFIND", "dicom:read", study, "AUD-2"),
        ("NOSTORE", "dicom:store", study, "AUD-2"),
    ]
