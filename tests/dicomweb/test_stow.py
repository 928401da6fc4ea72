"""STOW-RS (PS3.18 §10.5): stored, failed and the reasons a client can read."""

from __future__ import annotations

import pydicom
import pytest

from tests.conftest import SAMPLES, samples_matching
from tests.dicomweb.conftest import Loaded, stow
from tests.factories import make_instance

MALFORMED = samples_matching(SAMPLES / "generated", "malformed_*.dcm")


def test_every_valid_sample_is_referenced(loaded: Loaded) -> None:
    assert loaded.status in (200, 202)
    referenced = loaded.referenced()
    must_store = {
        uid
        for uid, path in loaded.sent.items()
        if all(
            k in pydicom.dcmread(path, stop_before_pixels=True)
            for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID")
        )
    }
    assert must_store <= referenced
    assert len(referenced) > 80


def test_samples_without_required_attributes_fail_with_a_reason(loaded: Loaded) -> None:
    failed = loaded.response.get("00081198", {}).get("Value", [])
    assert failed, "pydicom's pixel-only test files lack StudyInstanceUID and must fail"
    assert all(item["00081197"]["Value"][0] in (0xA900, 0xC000, 0xC122) for item in failed)


@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.name)
def test_malformed_file_gets_409_with_failure_reason(loaded: Loaded, path) -> None:
    response = stow(loaded.server, [path.read_bytes()])
    assert response.status_code == 409
    body = response.json()
    assert "00081199" not in body
    (item,) = body["00081198"]["Value"]
    assert item["00081197"]["Value"][0] in (0xA900, 0xC000)
    assert body["00000902"]["Value"][0]  # a readable comment


def test_mixed_request_answers_202_and_stores_the_good_part(loaded: Loaded) -> None:
    good = make_instance()
    bad = MALFORMED[0].read_bytes()
    response = stow(loaded.server, [good, bad])
    assert response.status_code == 202
    body = response.json()
    assert len(body["00081199"]["Value"]) == 1
    assert len(body["00081198"]["Value"]) == 1


def test_instances_of_another_study_are_refused_on_a_study_url(loaded: Loaded) -> None:
    response = stow(
        loaded.server, [make_instance(study_uid="1.2.826.0.1.1")], path="/studies/1.2.826.0.1.2"
    )
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]


def test_a_body_that_is_not_multipart_is_415(loaded: Loaded) -> None:
    import requests

    response = requests.post(
        loaded.server.dicomweb + "/studies",
        data=b"hello",
        headers={"Content-Type": "application/dicom", **loaded.server.headers},
        timeout=10,
    )
    assert response.status_code == 415


def test_dicomweb_client_can_store(loaded: Loaded) -> None:
    ds = pydicom.dcmread(__import__("io").BytesIO(make_instance(PatientName="Client^Store")))
    result = loaded.client.store_instances([ds])
    assert result.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID


def test_admins_delete_a_series_and_it_is_gone(loaded: Loaded) -> None:
    import requests

    study = "1.2.826.0.1.3680043.99.7"
    response = stow(
        loaded.server,
        [
            make_instance(study_uid=study, series_uid=study + ".1"),
            make_instance(study_uid=study, series_uid=study + ".2"),
        ],
    )
    assert response.status_code == 200
    base = f"{loaded.server.dicomweb}/studies/{study}"
    auth = loaded.server.headers
    assert (
        requests.delete(base + "/series/" + study + ".1", headers=auth, timeout=10).status_code
        == 204
    )
    left = requests.get(base + "/series", headers=auth, timeout=10).json()
    assert [s["0020000E"]["Value"][0] for s in left] == [study + ".2"]
    assert requests.delete(base, headers=auth, timeout=10).status_code == 204
    assert requests.delete(base, headers=auth, timeout=10).status_code == 404
    assert requests.get(base + "/series", headers=auth, timeout=10).json() == []
