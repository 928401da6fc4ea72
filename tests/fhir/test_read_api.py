"""The FHIR R4 read API in process (SQLite and PostgreSQL): every resource parsed by
fhirclient's R4 models, searches through the one query engine, errors as OperationOutcome,
reads audited with the patient."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.diagnosticreport import DiagnosticReport
from fhirclient.models.endpoint import Endpoint
from fhirclient.models.imagingstudy import ImagingStudy
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient
from pydicom.uid import generate_uid

from klinika.audit import AuditFilter
from klinika.fhir.ids import patient_key, patient_resource_id
from tests.factories import make_instance
from tests.fhir.conftest import Installation, Study, parsed, store_series, store_study

RU_PATIENT = {
    "PatientName": "Иванова^Мария^Петровна",
    "PatientID": "RU-0042",
    "PatientBirthDate": "19800131",
    "PatientSex": "F",
    "charset": "ISO_IR 144",
}


def outcome(response: Any, status: int) -> OperationOutcome:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/fhir+json")
    found = OperationOutcome(response.json(), strict=True)
    assert found.issue and found.issue[0].severity in ("error", "fatal")
    assert found.issue[0].diagnostics
    return found


def entries(bundle: Bundle) -> list[Any]:
    return [entry.resource for entry in bundle.entry or []]


def test_metadata_is_public_and_an_r4_capability_statement(client: TestClient) -> None:
    statement = parsed(client.get("/fhir/metadata"), CapabilityStatement)
    assert statement.fhirVersion == "4.0.1" and statement.kind == "instance"
    served = {r.type: r for r in statement.rest[0].resource}
    assert set(served) == {
        "Patient",
        "ImagingStudy",
        "DiagnosticReport",
        "Endpoint",
        "ServiceRequest",
    }
    assert {p.name for p in served["ImagingStudy"].searchParam} >= {"patient", "started"}
    assert client.get("/fhir/metadata", params={"_format": "json"}).status_code == 200


def test_patient_read_and_search_by_identifier_name_birthdate_and_id(
    site: Installation, study: Study
) -> None:
    headers = site.headers("operator")
    client = site.client
    patient = parsed(client.get("/fhir/Patient/RU-0042", headers=headers), Patient)
    assert patient.id == "RU-0042" and patient.gender == "female"
    assert patient.birthDate.isostring == "1980-01-31"
    assert patient.name[0].family == "Иванова" and patient.name[0].given == ["Мария", "Петровна"]
    assert patient.identifier[0].value == "RU-0042"

    for params in (
        {"identifier": "RU-0042"},
        {"name": "мари"},  # any part of the name, case-insensitive, from its start
        {"family": "иванова", "given": "Мария"},
        {"birthdate": "1980-01"},
        {"birthdate": ["ge1980-01-31", "lt1980-02-01"]},
        {"_id": "RU-0042", "gender": "female"},
    ):
        bundle = parsed(client.get("/fhir/Patient", params=params, headers=headers), Bundle)
        assert bundle.total == 1, params
        assert [p.id for p in entries(bundle)] == ["RU-0042"], params
        Patient(bundle.entry[0].resource.as_json(), strict=True)
    for params in (
        {"identifier": "RU-0043"},
        {"name": "петр"} | {"birthdate": "gt1980-01-31"},
        {"gender": "male"},
        {"identifier": "urn:oid:1.2.3|RU-0042"},
    ):
        bundle = parsed(client.get("/fhir/Patient", params=params, headers=headers), Bundle)
        assert bundle.total == 0 and not bundle.entry, params


def test_patient_ids_that_are_no_fhir_ids_are_encoded_one_to_one() -> None:
    for patient_id, issuer in (
        ("Иванов 01", None),
        ("A/B", "HOSP"),
        ("x.41", None),
        ("plain-1.2", None),
        ("plain", "ISSUER"),
    ):
        resource_id = patient_resource_id(patient_id, issuer)
        assert patient_key(resource_id) == (patient_id, issuer)
    assert patient_resource_id("plain-1.2") == "plain-1.2"
    assert patient_resource_id("x.41") != "x.41"


def test_a_cyrillic_patient_id_is_read_through_its_encoded_id(site: Installation) -> None:
    study_uid = generate_uid()
    site.runtime.archive.store(
        make_instance(study_uid=study_uid, PatientID="Пациент 7", PatientName="Орлов^Ян")
    )
    headers = site.headers("doctor")
    search = site.client.get("/fhir/Patient", params={"name": "орлов"}, headers=headers)
    found = parsed(search, Bundle)
    (patient,) = entries(found)
    assert patient.identifier[0].value == "Пациент 7" and patient.id.startswith("x.")
    again = parsed(site.client.get(f"/fhir/Patient/{patient.id}", headers=headers), Patient)
    assert again.name[0].text == "Орлов Ян"
    by_patient = {"patient": f"Patient/{patient.id}"}
    response = site.client.get("/fhir/ImagingStudy", params=by_patient, headers=headers)
    studies = parsed(response, Bundle)
    assert [s.id for s in entries(studies)] == [study_uid]


def test_imaging_study_has_series_instances_identifiers_and_the_dicomweb_endpoint(
    site: Installation, study: Study
) -> None:
    archive = site.runtime.archive
    mr_series = store_series(archive, study.study_uid, "MR", 1, **RU_PATIENT, StudyDate="20240305")
    headers = site.headers("doctor")
    client = site.client
    read = client.get(f"/fhir/ImagingStudy/{study.study_uid}", headers=headers)
    imaging = parsed(read, ImagingStudy)
    assert imaging.status == "available"
    assert imaging.subject.reference == "Patient/RU-0042"
    assert imaging.subject.display == "Иванова Мария Петровна"
    identifiers = {(i.system, i.value) for i in imaging.identifier}
    assert ("urn:dicom:uid", f"urn:oid:{study.study_uid}") in identifiers
    assert (None, "ACC-77") in identifiers
    assert {m.code for m in imaging.modality} == {"CT", "MR"}
    assert imaging.numberOfSeries == 2 and imaging.numberOfInstances == 3
    assert imaging.started.isostring.startswith("2024-03-05T14:30:05")
    assert imaging.description == "Грудная клетка"
    series = {s.uid: s for s in imaging.series}
    assert series[study.series_uid].modality.code == "CT"
    assert [i.uid for i in series[study.series_uid].instance] == list(study.sop_uids)
    assert series[study.series_uid].instance[0].sopClass.code == "urn:oid:1.2.840.10008.5.1.4.1.1.2"
    assert series[mr_series].numberOfInstances == 1
    assert imaging.endpoint[0].reference == "Endpoint/dicomweb"
    endpoint = parsed(client.get("/fhir/Endpoint/dicomweb", headers=headers), Endpoint)
    assert endpoint.connectionType.code == "dicom-wado-rs"
    assert endpoint.address == "http://testserver/dicom-web"
    # the endpoint's address and the study's UID are a WADO-RS URL that answers
    wado = client.get(f"{endpoint.address}/studies/{study.study_uid}/metadata", headers=headers)
    assert wado.status_code == 200 and len(wado.json()) == 3
    assert parsed(client.get("/fhir/Endpoint", headers=headers), Bundle).total == 1


def test_imaging_study_search_by_patient_identifier_started_and_modality(
    site: Installation,
) -> None:
    archive = site.runtime.archive
    first = store_study(archive, modality="CT")  # 2024-03-05, patient RU-0042
    second_uid = generate_uid()
    archive.store(
        make_instance(
            study_uid=second_uid,
            Modality="MR",
            StudyDate="20250610",
            AccessionNumber="ACC-88",
            PatientID="DE-7",
            PatientName="Müller^Jörg",
        )
    )
    headers = site.headers("operator")

    def found(**params: Any) -> list[str]:
        response = site.client.get("/fhir/ImagingStudy", params=params, headers=headers)
        bundle = parsed(response, Bundle)
        for resource in entries(bundle):
            ImagingStudy(resource.as_json(), strict=True)
        assert bundle.total == len(bundle.entry or [])
        return [s.id for s in entries(bundle)]

    assert found(patient="RU-0042") == [first.study_uid]
    assert found(subject="Patient/DE-7") == [second_uid]
    assert found(patient="http://elsewhere/fhir/Patient/DE-7") == [second_uid]
    assert found(identifier=f"urn:dicom:uid|urn:oid:{second_uid}") == [second_uid]
    assert found(identifier=f"urn:oid:{first.study_uid},urn:oid:{second_uid}") == [
        second_uid,
        first.study_uid,
    ]
    assert found(identifier="ACC-88") == [second_uid]
    assert found(identifier="http://hospital/accession|ACC-77") == [first.study_uid]
    assert found(_id=first.study_uid) == [first.study_uid]
    assert found(started="ge2025") == [second_uid]
    assert found(started="lt2025-01-01") == [first.study_uid]
    assert found(started=["gt2024-03-04", "le2024-03"]) == [first.study_uid]
    assert found(started="2024-03-05") == [first.study_uid]
    assert found(started=["ge2025", "lt2024"]) == []
    assert found(modality="MR") == [second_uid]
    assert found(modality="http://dicom.nema.org/resources/ontology/DCM|CT,MR") == [
        second_uid,
        first.study_uid,
    ]
    assert found(modality="US") == []
    assert found(patient="RU-0042", modality="MR") == []


def test_searches_page_with_count_and_next_links(site: Installation) -> None:
    archive = site.runtime.archive
    uids = {store_study(archive, images=1).study_uid for _ in range(3)}
    headers = site.headers("doctor")
    url: str | None = "/fhir/ImagingStudy?patient=RU-0042&_count=2"
    seen: list[str] = []
    pages = 0
    while url:
        bundle = parsed(site.client.get(url, headers=headers), Bundle)
        assert bundle.total == 3
        seen += [s.id for s in entries(bundle)]
        links = {link.relation: link.url for link in bundle.link}
        assert links["self"].startswith("http://testserver/fhir/ImagingStudy?")
        url = links.get("next")
        if url:
            assert parse_qs(urlsplit(url).query)["_count"] == ["2"]
        pages += 1
    assert pages == 2 and sorted(seen) == sorted(uids)
    only_total = parsed(
        site.client.get("/fhir/ImagingStudy?patient=RU-0042&_count=0", headers=headers), Bundle
    )
    assert only_total.total == 3 and not only_total.entry


def write(site: Installation, study: Study, impression: str, *, sign: bool) -> None:
    """Save the report's draft as a doctor (creating or continuing it), and sign it."""
    doctor = site.headers("doctor")
    url = f"/api/studies/{study.study_uid}/report"
    current = site.client.get(url, headers=doctor)
    revision = current.json()["revision"] if current.status_code == 200 else None
    body = {"revision": revision, "language": "ru", "sections": {"impression": impression}}
    saved = site.client.put(url, headers=doctor, json=body)
    assert saved.status_code == 200, saved.text
    if sign:
        revision = saved.json()["revision"]
        signed = site.client.post(f"{url}/sign", headers=doctor, json={"revision": revision})
        assert signed.status_code == 200, signed.text


def amend(site: Installation, study: Study) -> None:
    doctor = site.headers("doctor")
    url = f"/api/studies/{study.study_uid}/report"
    revision = site.client.get(url, headers=doctor).json()["revision"]
    body = {"revision": revision, "reason": "уточнение"}
    assert site.client.post(f"{url}/amend", headers=doctor, json=body).status_code == 200


def test_diagnostic_report_from_signed_reports_final_then_amended(
    site: Installation, study: Study
) -> None:
    client = site.client
    doctor, operator = site.headers("doctor"), site.headers("operator")
    url = f"/fhir/DiagnosticReport/{study.study_uid}"
    outcome(client.get(url, headers=doctor), 404)  # no report yet
    write(site, study, "Черновик", sign=False)
    outcome(client.get(url, headers=doctor), 404)  # a draft is not published
    write(site, study, "Патологии не выявлено.", sign=True)
    report = parsed(client.get(url, headers=operator), DiagnosticReport)
    assert report.status == "final" and report.meta.versionId == "1"
    code = report.code.coding[0]
    assert (code.system, code.code) == ("http://loinc.org", "18748-4")
    assert report.subject.reference == "Patient/RU-0042"
    assert report.imagingStudy[0].reference == f"ImagingStudy/{study.study_uid}"
    assert report.conclusion == "Патологии не выявлено."
    assert report.resultsInterpreter[0].display == "Doctor"
    form = report.presentedForm[0]
    assert form.contentType == "application/pdf"
    pdf = client.get(form.url, headers=doctor)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    amend(site, study)
    # while the amendment is a draft, the signed version stays what is published
    assert parsed(client.get(url, headers=operator), DiagnosticReport).status == "final"
    write(site, study, "Уточнено.", sign=True)
    amended = parsed(client.get(url, headers=operator), DiagnosticReport)
    assert amended.status == "amended" and amended.conclusion == "Уточнено."
    assert amended.presentedForm[0].url.endswith("version=2")

    def found(**params: Any) -> list[str]:
        search = client.get("/fhir/DiagnosticReport", params=params, headers=operator)
        bundle = parsed(search, Bundle)
        for resource in entries(bundle):
            DiagnosticReport(resource.as_json(), strict=True)
        return [r.id for r in entries(bundle)]

    assert found(patient="RU-0042") == [study.study_uid]
    assert found(subject="Patient/RU-0042", status="amended") == [study.study_uid]
    assert found(status="final") == []
    assert found(status="preliminary") == []
    assert found(_id=study.study_uid) == [study.study_uid]
    assert found(patient="DE-7") == []
    viewed = AuditFilter(action="report:view", study_uid=study.study_uid)
    events, _ = site.runtime.audit.search(viewed)
    assert any(e.actor == "operator" and e.patient_id == "RU-0042" for e in events)


def test_bad_requests_answer_operation_outcomes(site: Installation, study: Study) -> None:
    client = site.client
    headers = site.headers("doctor")
    for url in (
        "/fhir/Patient?foo=1",
        "/fhir/Patient?name:exact=Ivan",
        "/fhir/Patient?birthdate=1980-13-01",
        "/fhir/Patient?birthdate=ne1980",
        "/fhir/Patient?birthdate=1980-01-31T10:00:00Z",
        "/fhir/Patient?gender=robot",
        "/fhir/Patient?_count=many",
        "/fhir/Patient?name=Iv*",
        "/fhir/ImagingStudy?patient=Group/1",
        "/fhir/ImagingStudy?modality=http://snomed.info/sct|CT",
        "/fhir/ImagingStudy?identifier=ACC-1,ACC-2",
        "/fhir/ImagingStudy?_sort=started",
        "/fhir/DiagnosticReport?status=nice",
    ):
        outcome(client.get(url, headers=headers), 400)
    for url in (
        "/fhir/Observation",
        "/fhir/Observation/1",
        "/fhir/Patient/nobody",
        "/fhir/Patient/x.zz",
        "/fhir/ImagingStudy/1.2.3.4",
        "/fhir/ImagingStudy/not-a-uid",
        "/fhir/Endpoint/other",
        "/fhir/DiagnosticReport/1.2.3",
        "/fhir",
    ):
        found = outcome(client.get(url, headers=headers), 404)
        assert found.issue[0].code == "not-found"
    outcome(client.get("/fhir/Patient/RU-0042", params={"_format": "xml"}, headers=headers), 406)
    outcome(client.get("/fhir/Patient", headers={**headers, "Accept": "application/fhir+xml"}), 406)
    outcome(client.post("/fhir/Patient", headers=headers, json={"resourceType": "Patient"}), 405)
    outcome(client.delete(f"/fhir/ImagingStudy/{study.study_uid}", headers=headers), 405)


def test_without_a_session_fhir_answers_401_with_an_operation_outcome(
    site: Installation, study: Study
) -> None:
    anonymous = TestClient(site.app)
    html = {"Accept": "text/html"}
    for url in ("/fhir/Patient", f"/fhir/ImagingStudy/{study.study_uid}", "/fhir/Nothing"):
        found = outcome(anonymous.get(url, headers=html), 401)
        assert found.issue[0].code == "login"
    expired = {"Authorization": "Bearer not-a-token"}
    outcome(anonymous.get("/fhir/Patient", headers=expired), 401)


def test_every_read_is_an_access_event_naming_the_patient(site: Installation, study: Study) -> None:
    client = site.client
    headers = site.headers("operator")
    client.get("/fhir/Patient/RU-0042", headers=headers)
    client.get(f"/fhir/ImagingStudy/{study.study_uid}", headers=headers)
    client.get("/fhir/ImagingStudy", params={"patient": "RU-0042"}, headers=headers)
    client.get("/fhir/Patient", params={"birthdate": "1980"}, headers=headers)
    events, _ = site.runtime.audit.search(
        AuditFilter(action="dicom:read", actor="operator", patient_id="RU-0042")
    )
    paths = [e.as_dict()["details"]["path"] for e in events]
    assert paths.count("/fhir/Patient/RU-0042") == 1
    assert paths.count(f"/fhir/ImagingStudy/{study.study_uid}") == 1
    assert paths.count("/fhir/ImagingStudy") == 1 and paths.count("/fhir/Patient") == 1
    search = next(e for e in events if e.as_dict()["details"]["path"] == "/fhir/Patient")
    assert search.as_dict()["details"]["patients"] == ["RU-0042"]
