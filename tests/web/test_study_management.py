"""Study management over the REST API of a live server: every change is visible at once over
DICOMweb (dicomweb-client: QIDO, series metadata, retrieve) and DIMSE (DCMTK findscu), and
only an admin may make it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from tests.browser import OpenPage, log_in, screenshot
from tests.conftest import TEST_PASSWORD, LiveServer, login, start_server
from tests.factories import make_instance

TEST_SCU = "TESTSCU@127.0.0.1:11112/echo,store,find,move,get"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    started = start_server(
        tmp_path_factory.mktemp("management") / "data",
        {"KLINIKA_MODALITIES": TEST_SCU},
        users={"doc": "doctor", "op": "operator"},
    )
    yield started
    started.stop()


def client(server: LiveServer) -> DICOMwebClient:
    return DICOMwebClient(url=server.dicomweb, headers=server.headers)


def store(server: LiveServer, patient: str, name: str, series: int = 1) -> tuple[str, list[str]]:
    study, series_uids = generate_uid(), [generate_uid() for _ in range(series)]
    datasets = [
        pydicom.dcmread(
            pydicom.filebase.DicomBytesIO(
                make_instance(
                    study_uid=study,
                    series_uid=uid,
                    PatientID=patient,
                    PatientName=name,
                    SeriesNumber=n,
                )
            )
        )
        for n, uid in enumerate(series_uids, 1)
    ]
    client(server).store_instances(datasets)
    return study, series_uids


def findscu(server: LiveServer, tmp_path: Path, *keys: str) -> list[pydicom.Dataset]:
    """C-FIND (study root) with DCMTK; the answers as data sets."""
    out = tmp_path / f"find-{generate_uid()}"
    out.mkdir()
    args = ["findscu", "-S", "-aet", "TESTSCU", "-aec", "KLINIKA", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", server.env["KLINIKA_DIMSE_PORT"]]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, "TCP_NODELAY": "1"}
    )
    assert done.returncode == 0, done.stderr
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def api(
    server: LiveServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **body: object,
) -> requests.Response:
    return requests.request(
        method, server.url + path, json=body or None, headers=headers or server.headers, timeout=120
    )


def test_edit_a_study_and_its_patient_then_see_it_over_dicomweb_and_dimse(
    server: LiveServer, tmp_path: Path
) -> None:
    study, (series,) = store(server, "MGMT-1", "Ivanov^Ivan")
    edited = api(
        server,
        "PATCH",
        f"/api/studies/{study}",
        changes={"StudyDescription": "Chest CT", "AccessionNumber": "ACC-77"},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["instances"] == 1
    renamed = api(
        server,
        "PATCH",
        "/api/patients/MGMT-1",
        changes={"PatientName": "Иванов^Иван", "PatientSex": "M"},
    )
    assert renamed.status_code == 200, renamed.text

    web = client(server)
    (found,) = web.search_for_studies(search_filters={"StudyInstanceUID": study})
    assert found["00081030"]["Value"] == ["Chest CT"]
    assert found["00080050"]["Value"] == ["ACC-77"]
    assert found["00100010"]["Value"][0]["Alphabetic"] == "Иванов^Иван"
    (metadata,) = web.retrieve_series_metadata(study, series)
    assert metadata["00081030"]["Value"] == ["Chest CT"]
    (instance,) = web.retrieve_series(study, series)
    assert instance.StudyDescription == "Chest CT" and str(instance.PatientName) == "Иванов^Иван"

    (answer,) = findscu(
        server,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={study}",
        "StudyDescription",
        "PatientName",
        "AccessionNumber",
    )
    assert answer.StudyDescription == "Chest CT" and answer.AccessionNumber == "ACC-77"
    assert str(answer.PatientName) == "Иванов^Иван"


def test_merge_split_and_delete_are_visible_over_dicomweb_and_dimse(
    server: LiveServer, tmp_path: Path
) -> None:
    target, _ = store(server, "MGMT-2", "Petrov^Petr")
    source, (moved, wrong) = store(server, "MGMT-2", "Petrov^Petr", series=2)
    other, _ = store(server, "MGMT-3", "Sidorova^Anna")

    merged = api(server, "POST", f"/api/studies/{source}/merge", target_study_uid=target)
    assert merged.status_code == 200, merged.text
    web = client(server)
    assert web.search_for_studies(search_filters={"StudyInstanceUID": source}) == []
    assert len(web.search_for_series(target)) == 3
    assert findscu(server, tmp_path, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={source}") == []
    (answer,) = findscu(
        server,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={target}",
        "NumberOfStudyRelatedSeries",
    )
    assert answer.NumberOfStudyRelatedSeries == 3
    (instance,) = web.retrieve_series(target, moved)
    assert instance.StudyInstanceUID == target

    split = api(
        server,
        "POST",
        f"/api/studies/{target}/split",
        series_uids=[wrong],
        target_patient_id="MGMT-3",
    )
    assert split.status_code == 200, split.text
    new_study = split.json()["new_study_uid"]
    (found,) = web.search_for_studies(search_filters={"StudyInstanceUID": new_study})
    assert found["00100020"]["Value"] == ["MGMT-3"]
    (answer,) = findscu(
        server,
        tmp_path,
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={new_study}",
        "SeriesInstanceUID",
    )
    assert answer.SeriesInstanceUID == wrong

    deleted = api(server, "DELETE", f"/api/studies/{target}/series/{moved}")
    assert deleted.status_code == 200, deleted.text
    assert moved not in {s["0020000E"]["Value"][0] for s in web.search_for_series(target)}

    merged_patients = api(server, "POST", "/api/patients/MGMT-2/merge", target_patient_id="MGMT-3")
    assert merged_patients.status_code == 200, merged_patients.text
    assert web.search_for_studies(search_filters={"PatientID": "MGMT-2"}) == []
    answers = findscu(
        server, tmp_path, "QueryRetrieveLevel=STUDY", "PatientID=MGMT-3", "StudyInstanceUID"
    )
    assert {a.StudyInstanceUID for a in answers} == {target, new_study, other}


@pytest.mark.parametrize("user", ["doc", "op"])
def test_doctors_and_operators_are_refused(server: LiveServer, user: str) -> None:
    study, (series,) = store(server, "MGMT-4", "Kuznetsov^Oleg")
    headers = login(server.url, user)
    refused = [
        api(server, "PATCH", f"/api/studies/{study}", headers, changes={"StudyDescription": "x"}),
        api(server, "PATCH", "/api/patients/MGMT-4", headers, changes={"PatientSex": "F"}),
        api(server, "POST", "/api/patients/MGMT-4/merge", headers, target_patient_id="X"),
        api(server, "POST", f"/api/studies/{study}/merge", headers, target_study_uid="1.2"),
        api(server, "POST", f"/api/studies/{study}/split", headers, series_uids=[series]),
        api(server, "DELETE", f"/api/studies/{study}/series/{series}", headers),
    ]
    assert [r.status_code for r in refused] == [403] * 6
    (found,) = client(server).search_for_studies(search_filters={"StudyInstanceUID": study})
    assert "00081030" not in found or found["00081030"].get("Value") != ["x"]


def test_an_admin_manages_a_study_from_the_worklist_in_chromium(
    server: LiveServer, open_page: OpenPage
) -> None:
    study, (first, second) = store(server, "UI-1", "Browser^Bob", series=2)
    page = open_page()
    log_in(page, server.url, "tester", TEST_PASSWORD, "/worklist?pid=UI-1")
    browser = page.page
    with browser.expect_navigation():
        browser.locator(f'tr[data-study="{study}"] [data-testid=manage]').click()
    assert browser.url.endswith(f"/worklist/studies/{study}")
    for name in ("Edit patient", "Edit study", "Merge into…", "Split series…"):
        assert browser.get_by_role("button", name=name).count() == 1, name
    assert browser.get_by_role("button", name="Delete series").count() == 2
    screenshot(page, "console-study-management")  # docs/images/ has a copy

    # edit: asked first; dismissing changes nothing
    form = browser.locator("[data-testid=edit-study]")
    form.locator("input[name=StudyDescription]").fill("Abdomen CT")
    browser.once("dialog", lambda dialog: dialog.dismiss())
    form.get_by_role("button", name="Edit study").click()
    browser.wait_for_timeout(300)
    assert "done=" not in browser.url
    browser.once("dialog", lambda dialog: dialog.accept())
    with browser.expect_navigation():
        form.get_by_role("button", name="Edit study").click()
    assert browser.locator("p.ok[role=status]").inner_text() == "The study was changed."
    (found,) = client(server).search_for_studies(search_filters={"StudyInstanceUID": study})
    assert found["00081030"]["Value"] == ["Abdomen CT"]

    # split the second series out, then merge the new study back
    browser.locator(f'tr[data-series="{second}"] input[type=checkbox]').check()
    browser.once("dialog", lambda dialog: dialog.accept())
    with browser.expect_navigation():
        browser.get_by_role("button", name="Split series…").click()
    assert "done=split" in browser.url and study not in browser.url
    new_study = browser.url.split("/worklist/studies/")[1].split("?")[0]
    assert [s["0020000E"]["Value"][0] for s in client(server).search_for_series(new_study)] == [
        second
    ]
    merge = browser.locator("[data-testid=merge-study]")
    merge.locator("input[name=target_study_uid]").fill(study)
    browser.once("dialog", lambda dialog: dialog.accept())
    with browser.expect_navigation():
        merge.get_by_role("button", name="Merge into…").click()
    assert browser.url.endswith(f"/worklist/studies/{study}?done=merged")
    assert len(client(server).search_for_series(study)) == 2

    # a refused change shows the reason on the page
    merge = browser.locator("[data-testid=merge-study]")
    merge.locator("input[name=target_study_uid]").fill(study)
    browser.once("dialog", lambda dialog: dialog.accept())
    with browser.expect_navigation():
        merge.get_by_role("button", name="Merge into…").click()
    assert "cannot be merged into itself" in browser.locator("p.error").inner_text()

    browser.once("dialog", lambda dialog: dialog.accept())
    with browser.expect_navigation():
        browser.locator(f'tr[data-series="{first}"]').get_by_role(
            "button", name="Delete series"
        ).click()
    assert browser.locator("p.ok[role=status]").inner_text() == "The series was deleted."
    assert browser.locator("tr[data-series]").count() == 1
    assert page.csp_violations() == [] and page.errors == []


@pytest.mark.parametrize("user", ["doc", "op"])
def test_doctors_and_operators_see_no_management_in_chromium(
    server: LiveServer, open_page: OpenPage, user: str
) -> None:
    study, _ = store(server, f"UI-{user}", "Browser^Carl")
    page = open_page()
    log_in(page, server.url, user, TEST_PASSWORD, f"/worklist?pid=UI-{user}")
    row = page.page.locator(f'tr[data-study="{study}"]')
    assert row.count() == 1
    assert row.locator("[data-testid=manage]").count() == 0
    answer = page.page.goto(f"{server.url}/worklist/studies/{study}")
    assert answer is not None and answer.status == 403
    posted = page.page.request.post(
        f"{server.url}/worklist/studies/{study}/edit", form={"StudyDescription": "x"}
    )
    assert posted.status == 403


def test_the_study_view_speaks_russian(server: LiveServer, open_page: OpenPage) -> None:
    study, _ = store(server, "UI-RU", "Браузер^Борис")
    page = open_page(locale="ru-RU")
    log_in(page, server.url, "tester", TEST_PASSWORD, f"/worklist/studies/{study}?lang=ru")
    assert page.page.locator("h1").inner_text() == "Управление исследованием"
    assert page.page.get_by_role("button", name="Выделить серии…").count() == 1
    assert page.page.locator("input[name=PatientName]").input_value() == "Браузер^Борис"


def test_the_routes_are_in_the_openapi_document(server: LiveServer) -> None:
    document = requests.get(
        server.url + "/api/openapi.json", headers=server.headers, timeout=30
    ).json()
    paths = document["paths"]
    assert set(paths["/api/patients/{patient_id}"]) == {"patch"}
    assert "post" in paths["/api/patients/{patient_id}/merge"]
    assert "patch" in paths["/api/studies/{study_uid}"]
    assert "post" in paths["/api/studies/{study_uid}/merge"]
    assert "post" in paths["/api/studies/{study_uid}/split"]
    assert "delete" in paths["/api/studies/{study_uid}/series/{series_uid}"]
