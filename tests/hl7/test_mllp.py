"""HL7 v2 over MLLP against a live ``klinika serve``: messages sent by python-hl7's MLLP
client, ACK codes checked, every change checked through DICOMweb (QIDO-RS, WADO-RS metadata)
or the worklist API, bad messages NACKed with nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from fhirclient.models.servicerequest import ServiceRequest
from pydicom.dataset import Dataset
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

from klinika.config import load_settings
from klinika.errors import ConfigError
from tests.dimse.conftest import associate
from tests.hl7.conftest import Hl7Site, control_id, msh, store_patient


def patient_name(site: Hl7Site, patient_id: str) -> str | None:
    studies = site.get("/dicom-web/studies", PatientID=patient_id).json()
    if not studies:
        return None
    names = {s["00100010"]["Value"][0]["Alphabetic"] for s in studies}
    assert len(names) == 1, names
    return names.pop()


def metadata_names(site: Hl7Site, study_uid: str) -> set[str]:
    instances = site.get(f"/dicom-web/studies/{study_uid}/metadata").json()
    return {i["00100010"]["Value"][0]["Alphabetic"] for i in instances}


def c_find_names(site: Hl7Site, patient_id: str) -> list[str]:
    """Patient names a Study Root C-FIND (pynetdicom) answers for ``patient_id``."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = patient_id
    query.PatientName = ""
    query.StudyInstanceUID = ""
    assoc = associate(int(site.server.env["KLINIKA_DIMSE_PORT"]), FIND)
    try:
        answers = [
            str(found.PatientName)
            for status, found in assoc.send_c_find(query, FIND)
            if status and status.Status in (0xFF00, 0xFF01)
        ]
    finally:
        assoc.release()
    return answers


def events(site: Hl7Site, **filters: str) -> list[dict[str, Any]]:
    response = site.get("/api/audit", **filters)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["events"] if isinstance(body, dict) else body


def test_a08_updates_the_patient_everywhere_and_is_audited(hl7_site: Hl7Site) -> None:
    study_uid = store_patient(hl7_site, "HL7-A08", "Old^Name", images=2)
    ident = control_id()
    ack = hl7_site.send(
        "\r".join(
            [
                msh("ADT^A08^ADT_A01", ident=ident),
                "EVN|A08|20260101120000",
                "PID|1||HL7-A08^^^HOSPITAL^MR||Смирнова^Анна^Игоревна||19851224|F",
                "PV1|1|O",
            ]
        )
    )
    assert (ack.code, ack.control_id) == ("AA", ident)
    assert patient_name(hl7_site, "HL7-A08") == "Смирнова^Анна^Игоревна"
    assert metadata_names(hl7_site, study_uid) == {"Смирнова^Анна^Игоревна"}
    assert c_find_names(hl7_site, "HL7-A08") == ["Смирнова^Анна^Игоревна"]
    study = hl7_site.get("/dicom-web/studies", PatientID="HL7-A08").json()[0]
    assert study["00100030"]["Value"] == ["19851224"] and study["00100040"]["Value"] == ["F"]
    found = events(hl7_site, action="patient:update", patient_id="HL7-A08")
    assert any(e["actor"] == "HIS@HOSPITAL" and e["outcome"] == "success" for e in found)


def test_a08_in_iso_8859_5_is_decoded(hl7_site: Hl7Site) -> None:
    store_patient(hl7_site, "HL7-KOI", "Old^Name")
    message = "\r".join(
        [
            msh("ADT^A08", charset="8859/5"),
            "EVN|A08",
            "PID|1||HL7-KOI||Петров^Иван",
        ]
    )
    assert hl7_site.send(message, encoding="iso8859-5").code == "AA"
    assert patient_name(hl7_site, "HL7-KOI") == "Петров^Иван"


def test_a40_merges_the_prior_patient_into_the_surviving_one(hl7_site: Hl7Site) -> None:
    prior = store_patient(hl7_site, "HL7-OLD", "Dup^Patient")
    surviving = store_patient(hl7_site, "HL7-KEEP", "Keep^Patient")
    ack = hl7_site.send(
        "\r".join(
            [
                msh("ADT^A40^ADT_A39"),
                "EVN|A40|20260101120000",
                "PID|1||HL7-KEEP^^^HOSPITAL^MR||Keep^Patient",
                "MRG|HL7-OLD^^^HOSPITAL^MR",
            ]
        )
    )
    assert ack.code == "AA", ack.text
    assert patient_name(hl7_site, "HL7-OLD") is None
    assert c_find_names(hl7_site, "HL7-OLD") == []
    assert c_find_names(hl7_site, "HL7-KEEP") == ["Keep^Patient", "Keep^Patient"]
    studies = hl7_site.get("/dicom-web/studies", PatientID="HL7-KEEP").json()
    assert {s["0020000D"]["Value"][0] for s in studies} == {prior, surviving}
    assert metadata_names(hl7_site, prior) == {"Keep^Patient"}
    assert events(hl7_site, action="patient:merge", patient_id="HL7-KEEP")


def test_a40_to_an_id_not_held_here_renames_the_prior_patient(hl7_site: Hl7Site) -> None:
    study_uid = store_patient(hl7_site, "HL7-TEMP", "Temp^Patient")
    ack = hl7_site.send(
        "\r".join(
            [
                msh("ADT^A40"),
                "EVN|A40",
                "PID|1||HL7-MPI-9||Final^Name",
                "MRG|HL7-TEMP",
            ]
        )
    )
    assert ack.code == "AA", ack.text
    assert patient_name(hl7_site, "HL7-TEMP") is None
    assert patient_name(hl7_site, "HL7-MPI-9") == "Final^Name"
    assert metadata_names(hl7_site, study_uid) == {"Final^Name"}


def order(control: str, *, accession: str, step: str = "", kind: str = "ORM^O01") -> str:
    return "\r".join(
        [
            msh(kind, sender="RIS", facility="ANY"),
            "PID|1||HL7-ORD^^^HOSPITAL^MR||Орлова^Вера||19900505|F",
            "PV1|1|O||||||^Петров^Пётр",
            f"ORC|{control}|PL-{accession}|FL-{accession}||SC||^^^202601150930",
            f"OBR|1|PL-{accession}|FL-{accession}|CTCHEST^CT chest^LOCAL|||||||||||"
            f"|||{accession}|RP-{accession}|{step}||||CT",
        ]
    )


def steps_of(site: Hl7Site, accession: str) -> list[dict[str, Any]]:
    found = site.get("/api/worklist", date_from="20260115", date_to="20260115").json()
    return [s for s in found if s["accession_number"] == accession]


def test_orm_new_order_schedules_a_step_and_cancel_discontinues_it(hl7_site: Hl7Site) -> None:
    ack = hl7_site.send(order("NW", accession="ACC-H1", step="SPS-H1"))
    assert ack.code == "AA", ack.text
    (step,) = steps_of(hl7_site, "ACC-H1")
    assert step["status"] == "SCHEDULED" and step["step_id"] == "SPS-H1"
    assert step["patient_name"] == "Орлова^Вера" and step["modality"] == "CT"
    assert (step["start_date"], step["start_time"]) == ("20260115", "0930")
    assert step["referring_physician"] == "Петров^Пётр"
    assert step["procedure_code_value"] == "CTCHEST"
    # the order is a FHIR ServiceRequest too (parsed by fhirclient's R4 model)
    fhir = hl7_site.get("/fhir/ServiceRequest", patient="HL7-ORD", status="active").json()
    requests = [ServiceRequest(e["resource"]) for e in fhir.get("entry", [])]
    assert "ACC-H1" in {i.value for r in requests for i in r.identifier}
    # the same order again: the accession is taken, nothing new is scheduled
    again = hl7_site.send(order("NW", accession="ACC-H1", step="SPS-H1"))
    assert again.code == "AE" and again.error_code == "205"
    assert len(steps_of(hl7_site, "ACC-H1")) == 1
    cancel = hl7_site.send(order("CA", accession="ACC-H1"))  # found by its accession
    assert cancel.code == "AA", cancel.text
    assert steps_of(hl7_site, "ACC-H1")[0]["status"] == "DISCONTINUED"
    assert events(hl7_site, action="workflow:schedule", actor="RIS@ANY")


def test_omi_o23_orders_with_the_ipc_segment(hl7_site: Hl7Site) -> None:
    message = "\r".join(
        [
            msh("OMI^O23^OMI_O23", sender="RIS", facility="ANY"),
            "PID|1||HL7-OMI||Lee^Ann",
            "ORC|NW|PL-9|FL-9",
            "TQ1|1||||||202601151400",
            "OBR|1|PL-9|FL-9|MRHEAD^MR head^LOCAL",
            "IPC|ACC-OMI|RP-OMI|1.2.3.4|SPS-OMI|MR||||MR_ROOM1",
        ]
    )
    ack = hl7_site.send(message)
    assert ack.code == "AA", ack.text
    (step,) = steps_of(hl7_site, "ACC-OMI")
    assert (step["modality"], step["station_ae_title"], step["step_id"]) == (
        "MR",
        "MR_ROOM1",
        "SPS-OMI",
    )
    assert step["start_time"] == "1400"
    assert hl7_site.send(message.replace("ORC|NW", "ORC|CA")).code == "AA"
    assert steps_of(hl7_site, "ACC-OMI")[0]["status"] == "DISCONTINUED"


@pytest.mark.parametrize(
    ("message", "code", "error"),
    [
        # a sender not named in hl7_senders
        (msh("ADT^A08", sender="STRANGER") + "\rPID|1||HL7-BAD||Changed^Name", "AR", "103"),
        # the facility does not match HIS@HOSPITAL
        (msh("ADT^A08", facility="ELSEWHERE") + "\rPID|1||HL7-BAD||Changed^Name", "AR", "103"),
        # an event we do not process
        (msh("ADT^A01") + "\rPID|1||HL7-BAD||Changed^Name", "AR", "201"),
        (msh("ORU^R01") + "\rPID|1||HL7-BAD||Changed^Name", "AR", "200"),
        # training messages are not applied
        (msh("ADT^A08").replace("|P|2.5.1", "|T|2.5.1") + "\rPID|1||HL7-BAD||X^Y", "AR", "202"),
        # no patient ID
        (msh("ADT^A08") + "\rPID|1||||Changed^Name", "AE", "101"),
        # a birth date that is no date: the name in the same message is not applied either
        (msh("ADT^A08") + "\rPID|1||HL7-BAD||Changed^Name||1980-01", "AE", "102"),
        # a sex outside table 0001
        (msh("ADT^A08") + "\rPID|1||HL7-BAD||Changed^Name|||Q", "AE", "103"),
        # a merge into itself
        (msh("ADT^A40") + "\rPID|1||HL7-BAD\rMRG|HL7-BAD", "AE", "102"),
        # an order without a modality or a start
        (msh("ORM^O01") + "\rPID|1||HL7-BAD\rORC|NW|1\rOBR|1|1||X^Y", "AE", "101"),
        # an order control we do not process
        (msh("ORM^O01") + "\rPID|1||HL7-BAD\rORC|XO|1\rOBR|1|1||X^Y", "AE", "103"),
    ],
)
def test_bad_messages_are_nacked_and_change_nothing(
    hl7_site: Hl7Site, message: str, code: str, error: str
) -> None:
    if patient_name(hl7_site, "HL7-BAD") is None:
        store_patient(hl7_site, "HL7-BAD", "Unchanged^Name")
    ack = hl7_site.send(message)
    assert (ack.code, ack.error_code) == (code, error), ack.text
    assert ack.control_id == str(ack.message["MSA.F2"]) and ack.control_id.startswith("T")
    assert patient_name(hl7_site, "HL7-BAD") == "Unchanged^Name"


def test_what_is_not_an_hl7_message_gets_a_reject(hl7_site: Hl7Site) -> None:
    ack = hl7_site.send("HELLO|world")
    assert (ack.code, ack.error_code) == ("AR", "100")
    refused = hl7_site.send(msh("ADT^A08", charset="KOI8-R") + "\rPID|1||X")
    assert refused.code == "AR"


def test_an_update_of_a_patient_not_held_is_accepted_and_changes_nothing(
    hl7_site: Hl7Site,
) -> None:
    ack = hl7_site.send(msh("ADT^A08") + "\rPID|1||HL7-NOBODY||Some^One")
    assert ack.code == "AA" and "not held" in ack.text
    assert patient_name(hl7_site, "HL7-NOBODY") is None


def test_the_listener_needs_the_senders_named() -> None:
    with pytest.raises(ConfigError, match="hl7_senders"):
        load_settings(env={}, hl7_port=2575)
    settings = load_settings(env={}, hl7_port=2575, hl7_senders="HIS@HOSP RIS")
    assert settings.hl7_allowed_senders == (("HIS", "HOSP"), ("RIS", "*"))


def test_a_refused_sender_is_recorded_with_why(hl7_site: Hl7Site) -> None:
    ident = control_id()
    ack = hl7_site.send(msh("ADT^A08", sender="MALLORY", ident=ident) + "\rPID|1||HL7-X||A^B")
    assert (ack.code, ack.control_id) == ("AR", ident)
    found = events(hl7_site, action="hl7:message", outcome="denied")
    mine = [e for e in found if e["details"].get("control_id") == ident]
    assert mine and mine[0]["actor"] == "MALLORY@HOSPITAL"
    assert "hl7_senders" in mine[0]["details"]["error"]
