"""QIDO-RS through dicomweb-client and raw HTTP (PS3.18 §10.6)."""

from __future__ import annotations

import requests

from tests.dicomweb.conftest import Loaded

CYRILLIC_UID = "2.25.31415926535897932384626433832795028840200"  # the Cyrillic study


def names(matches: list[dict]) -> list[str]:
    return [m["00100010"]["Value"][0]["Alphabetic"] for m in matches if "Value" in m["00100010"]]


def test_search_for_studies_lists_every_study(loaded: Loaded) -> None:
    studies = loaded.client.search_for_studies()
    assert len(studies) >= 20
    for study in studies:
        assert study["00081190"]["Value"][0].endswith(study["0020000D"]["Value"][0])
        assert study["00201208"]["Value"][0] >= 1


def test_cyrillic_wildcard_search_finds_the_patient(loaded: Loaded) -> None:
    found = loaded.client.search_for_studies(search_filters={"PatientName": "Иван*"})
    assert any(n.startswith("Иванов") for n in names(found))


def test_percent_encoded_wildcard_and_comma_includefield(loaded: Loaded) -> None:
    url = (
        loaded.server.dicomweb
        + "/studies?PatientName=%D0%B8%D0%B2%D0%B0%D0%BD%2A&includefield=00081030%2C00080020"
    )
    response = requests.get(
        url, headers={"Accept": "application/dicom+json", **loaded.server.headers}, timeout=10
    )
    assert response.status_code == 200
    assert any(n.startswith("Иванов") for n in names(response.json()))


def test_includefield_all_returns_more_attributes(loaded: Loaded) -> None:
    plain = loaded.client.search_for_studies(limit=1)
    full = loaded.client.search_for_studies(limit=1, fields=["all"])
    assert set(plain[0]) < set(full[0])


def test_limit_and_offset_page_without_overlap(loaded: Loaded) -> None:
    first = loaded.client.search_for_studies(limit=5)
    second = loaded.client.search_for_studies(limit=5, offset=5)
    uids = {s["0020000D"]["Value"][0] for s in first} & {s["0020000D"]["Value"][0] for s in second}
    assert len(first) == len(second) == 5 and not uids


def test_limit_above_the_result_count_sets_no_warning_and_smaller_sets_one(loaded: Loaded) -> None:
    response = requests.get(
        loaded.server.dicomweb + "/studies?limit=2", headers=loaded.server.headers, timeout=10
    )
    assert response.headers.get("Warning", "").startswith("299")
    response = requests.get(
        loaded.server.dicomweb + "/studies?limit=100000", headers=loaded.server.headers, timeout=10
    )
    assert "Warning" not in response.headers


def test_series_and_instances_of_a_study(loaded: Loaded) -> None:
    series = loaded.client.search_for_series(CYRILLIC_UID)
    assert series and all(s["0020000D"]["Value"] == [CYRILLIC_UID] for s in series)
    instances = loaded.client.search_for_instances(CYRILLIC_UID, series[0]["0020000E"]["Value"][0])
    assert instances[0]["00080018"]["Value"]


def test_relational_series_query_matches_on_study_attributes(loaded: Loaded) -> None:
    found = loaded.client.search_for_series(
        search_filters={"PatientName": "Иван*", "Modality": "OT"}
    )
    assert found and all("0020000D" in s for s in found)


def test_bad_query_values_are_400_with_a_message(loaded: Loaded) -> None:
    for query in ("StudyDate=yesterday", "limit=ten", "NoSuchAttribute=1"):
        response = requests.get(
            loaded.server.dicomweb + "/studies?" + query, headers=loaded.server.headers, timeout=10
        )
        assert response.status_code == 400, query
        assert response.json()["error"]


def test_unacceptable_accept_is_406(loaded: Loaded) -> None:
    response = requests.get(
        loaded.server.dicomweb + "/studies",
        headers={"Accept": "application/dicom+xml", **loaded.server.headers},
        timeout=10,
    )
    assert response.status_code == 406
