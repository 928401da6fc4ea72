"""FHIR ServiceRequest for the worklist's scheduled procedure steps (SQLite and PostgreSQL),
parsed by fhirclient's R4 models."""

from __future__ import annotations

from typing import Any

from fhirclient.models.bundle import Bundle
from fhirclient.models.servicerequest import ServiceRequest

from klinika.audit import Actor
from klinika.workflow import StepDetails
from tests.fhir.conftest import Installation, parsed

DESK = Actor("operator", "operator")


def schedule(site: Installation, **fields: Any) -> str:
    details = {
        "patient_id": "RU-0042",
        "patient_name": "Иванова^Мария",
        "modality": "CT",
        "start_date": "20260301",
        "start_time": "0930",
        "procedure_code_value": "CTCHEST",
        "procedure_code_scheme": "LOCAL",
        "procedure_code_meaning": "КТ грудной клетки",
        "requested_procedure_description": "КТ грудной клетки",
        "referring_physician": "Петров^Пётр",
        "station_ae_title": "CT_ROOM1",
        **fields,
    }
    return site.runtime.schedule.create(StepDetails(**details), DESK).step_id


def test_a_scheduled_step_is_a_service_request(site: Installation) -> None:
    step_id = schedule(site, step_id="SPS 1/A", accession_number="ACC-SR1")
    headers = site.headers("doctor")
    found = parsed(
        site.client.get("/fhir/ServiceRequest", params={"patient": "RU-0042"}, headers=headers),
        Bundle,
    )
    assert found.total == 1
    request = ServiceRequest(found.entry[0].resource.as_json(), strict=True)
    assert request.status == "active" and request.intent == "order"
    assert request.subject.reference == "Patient/RU-0042"
    assert request.orderDetail[0].coding[0].code == "CT"
    assert request.code.coding[0].code == "CTCHEST" and request.code.text == "КТ грудной клетки"
    assert request.occurrenceDateTime.isostring.startswith("2026-03-01T09:30")
    assert request.requester.display == "Петров Пётр"
    assert {i.value for i in request.identifier} >= {"ACC-SR1"}
    read = site.client.get(f"/fhir/ServiceRequest/{request.id}", headers=headers)
    again = parsed(read, ServiceRequest)
    assert again.id == request.id != step_id  # "SPS 1/A" is no FHIR id: encoded


def test_service_requests_are_searched_by_status_occurrence_and_modality(
    site: Installation,
) -> None:
    first = schedule(site, accession_number="ACC-SR2", start_date="20260301")
    second = schedule(site, accession_number="ACC-SR3", start_date="20260402", modality="MR")
    site.runtime.schedule.cancel(second, DESK)
    headers = site.headers("operator")

    def found(**params: Any) -> list[str]:
        response = site.client.get("/fhir/ServiceRequest", params=params, headers=headers)
        bundle = parsed(response, Bundle)
        return [ServiceRequest(e.resource.as_json()).id for e in bundle.entry or []]

    assert found() == [first, second]
    assert found(status="active") == [first]
    assert found(status="revoked") == [second]
    assert found(status="completed") == []
    assert found(occurrence="ge2026-04") == [second]
    assert found(occurrence=["ge2026-03-01", "lt2026-03-02"]) == [first]
    assert found(modality="MR") == [second]
    assert found(identifier="ACC-SR3") == [second]
    assert found(identifier="http://hospital/acc|ACC-SR2", patient="RU-0042") == [first]
    assert found(_id=first) == [first]
    assert found(patient="Patient/DE-7") == []
    assert site.client.get("/fhir/ServiceRequest?status=nice", headers=headers).status_code == 400
    assert site.client.get("/fhir/ServiceRequest/nope", headers=headers).status_code == 404


DCM = "http://dicom.nema.org/resources/ontology/DCM"


def order(subject: str = "#p1", **fields: Any) -> dict[str, Any]:
    """An imaging order as an ordering system sends it, checked by fhirclient's R4 model."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [{"system": "urn:oid:1.2.3.4", "value": "RU-0777"}],
                "name": [{"family": "Соколова", "given": ["Анна"]}],
                "birthDate": "1961-04-12",
                "gender": "female",
            }
        ],
        "identifier": [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}
                    ]
                },
                "value": "ACC-FHIR-1",
            }
        ],
        "status": "active",
        "intent": "order",
        "subject": {"reference": subject},
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "24627-2", "display": "CT Chest"}],
            "text": "КТ грудной клетки",
        },
        "orderDetail": [{"coding": [{"system": DCM, "code": "CT"}]}],
        "occurrenceDateTime": "2026-03-02T08:15:00+03:00",
        "requester": {"display": "Петров Пётр"},
        "locationCode": [{"text": "CT_ROOM1"}],
        **fields,
    }
    return dict(ServiceRequest(resource, strict=True).as_json())


def post(site: Installation, resource: dict[str, Any], role: str = "operator") -> Any:
    return site.client.post(
        "/fhir/ServiceRequest",
        json=resource,
        headers={**site.headers(role), "Content-Type": "application/fhir+json"},
    )


def test_an_order_posted_as_a_service_request_is_scheduled_for_the_modality(
    site: Installation,
) -> None:
    answer = post(site, order())
    assert answer.status_code == 201, answer.text
    created = ServiceRequest(answer.json(), strict=True)
    assert answer.headers["location"].endswith(f"/fhir/ServiceRequest/{created.id}")
    assert created.subject.reference == "Patient/RU-0777"
    assert created.occurrenceDateTime.isostring.startswith("2026-03-02T08:15")
    steps = site.client.get(
        "/api/worklist", params={"patient_id": "RU-0777"}, headers=site.headers("operator")
    ).json()
    (details,) = steps
    assert details["patient_name"] == "Соколова^Анна"
    assert details["accession_number"] == "ACC-FHIR-1" and details["modality"] == "CT"
    assert details["patient_birth_date"] == "19610412" and details["patient_sex"] == "F"
    assert details["station_ae_title"] == "CT_ROOM1"
    assert details["referring_physician"] == "Петров^Пётр"
    read = parsed(
        site.client.get(f"/fhir/ServiceRequest/{created.id}", headers=site.headers("doctor")),
        ServiceRequest,
    )
    assert read.code.text == "КТ грудной клетки"


def test_an_order_for_a_patient_we_hold_takes_the_patient_from_the_index(
    site: Installation, study: Any
) -> None:
    patient = (
        parsed(site.client.get("/fhir/Patient", headers=site.headers("doctor")), Bundle)
        .entry[0]
        .resource
    )
    answer = post(
        site,
        order(subject=f"Patient/{patient.id}", contained=None, identifier=None),
    )
    assert answer.status_code == 201, answer.text
    created = ServiceRequest(answer.json(), strict=True)
    assert created.subject.reference == f"Patient/{patient.id}"
    assert created.subject.display  # the held patient's name


def test_bad_orders_are_refused_with_an_operation_outcome_and_schedule_nothing(
    site: Installation,
) -> None:
    def refused(answer: Any, status: int) -> None:
        assert answer.status_code == status, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"

    refused(post(site, order(occurrenceDateTime=None)), 400)
    refused(post(site, order(orderDetail=None)), 400)
    refused(post(site, order(subject="#nobody")), 400)
    refused(post(site, order(subject="Patient/x.00")), 404)
    refused(post(site, {"resourceType": "Patient"}), 400)
    refused(post(site, order(), role="doctor"), 403)  # doctors read the schedule only
    wrong_type = site.client.post(
        "/fhir/ServiceRequest",
        content=b"<ServiceRequest/>",
        headers={**site.headers("operator"), "Content-Type": "application/fhir+xml"},
    )
    refused(wrong_type, 415)
    steps = site.client.get(
        "/api/worklist", params={"patient_id": "RU-0777"}, headers=site.headers("operator")
    ).json()
    assert steps == []
