"""A real DICOMweb client against a live uvicorn server: with a token it works, without not."""

from __future__ import annotations

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file

from klinika.audit.trail import AuditFilter
from tests.auth.conftest import Installation


def sample() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def test_dicomweb_client_with_a_bearer_token_stores_and_searches(
    site: Installation, live_url: str
) -> None:
    token = site.login("operator")
    client = DICOMwebClient(
        url=f"{live_url}/dicom-web", headers={"Authorization": f"Bearer {token}"}
    )
    dataset = sample()
    client.store_instances([dataset])
    found = client.search_for_studies(search_filters={"StudyInstanceUID": dataset.StudyInstanceUID})
    assert [s["0020000D"]["Value"][0] for s in found] == [dataset.StudyInstanceUID]


def test_dicomweb_client_without_a_token_gets_401(site: Installation, live_url: str) -> None:
    client = DICOMwebClient(url=f"{live_url}/dicom-web")
    with pytest.raises(requests.HTTPError) as refused:
        client.search_for_studies()
    assert refused.value.response.status_code == 401
    with pytest.raises(requests.HTTPError) as refused:
        client.store_instances([sample()])
    assert refused.value.response.status_code == 401


def test_a_doctor_may_search_and_store_measurements_but_not_images(
    site: Installation, live_url: str
) -> None:
    token = site.login("doctor")
    client = DICOMwebClient(
        url=f"{live_url}/dicom-web", headers={"Authorization": f"Bearer {token}"}
    )
    assert client.search_for_studies() == []
    with pytest.raises(requests.HTTPError) as refused:
        client.store_instances([sample()])
    assert refused.value.response.status_code == 409
    failed = refused.value.response.json()["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [0x0124]  # Refused: not authorized
    assert client.search_for_studies() == []
    measurements = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    stored = client.store_instances([measurements])
    assert len(stored.ReferencedSOPSequence) == 1
    assert len(client.search_for_studies()) == 1
    site.runtime.audit.flush()
    events, _ = site.runtime.audit.search(AuditFilter(actor="doctor", outcome="success"))
    assert "dicom:annotate" in {event.action for event in events}  # not "dicom:store"
    assert "dicom:store" not in {event.action for event in events}
