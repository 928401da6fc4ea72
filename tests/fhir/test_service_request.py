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
