"""A real FHIR client (SMART's fhirclient, R4 models) against a live uvicorn server: it reads
the CapabilityStatement, searches with its search API, follows our next links, and reads
resources by id."""

from __future__ import annotations

import pytest
from fhirclient import client as fhir
from fhirclient.models.diagnosticreport import DiagnosticReport
from fhirclient.models.imagingstudy import ImagingStudy
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRNotFoundException, FHIRUnauthorizedException

from tests.fhir.conftest import Installation, store_study


def connect(url: str, token: str | None) -> fhir.FHIRClient:
    smart = fhir.FHIRClient(settings={"app_id": "klinika-tests", "api_base": url + "/fhir/"})
    if token:
        smart.server.session.headers["Authorization"] = f"Bearer {token}"
    return smart


def test_fhirclient_searches_pages_and_reads(site: Installation, live_url: str) -> None:
    archive = site.runtime.archive
    uids = {store_study(archive, images=1).study_uid for _ in range(3)}
    smart = connect(live_url, site.login("doctor"))
    smart.prepare()  # reads /fhir/metadata without a token
    assert smart.server.capabilityStatement.fhirVersion == "4.0.1"

    search = ImagingStudy.where(struct={"patient": "Patient/RU-0042", "_count": "2"})
    bundles = list(search.perform_iter(smart.server))
    assert len(bundles) == 2 and all(b.total == 3 for b in bundles)
    studies = list(search.perform_resources_iter(smart.server))
    assert {s.id for s in studies} == uids
    assert all(isinstance(s, ImagingStudy) and s.series[0].instance for s in studies)

    patients = list(Patient.where(struct={"name": "иван"}).perform_resources_iter(smart.server))
    assert [p.id for p in patients] == ["RU-0042"]
    patient = Patient.read("RU-0042", smart.server)
    assert patient.name[0].family == "Иванова"
    study = ImagingStudy.read(sorted(uids)[0], smart.server)
    assert study.subject.reference == "Patient/RU-0042"
    with pytest.raises(FHIRNotFoundException):
        DiagnosticReport.read(sorted(uids)[0], smart.server)


def test_fhirclient_without_a_token_is_refused(site: Installation, live_url: str) -> None:
    smart = connect(live_url, None)
    with pytest.raises(FHIRUnauthorizedException):
        Patient.read("RU-0042", smart.server)
