"""The worklist against a live server: filters (Cyrillic names and wildcards, IDs, date presets
and ranges, modality), sorting, paging, what each role may do, and an admin's delete (asked
first, audited)."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.browser import OpenPage, log_in
from tests.conftest import TEST_PASSWORD, LiveServer, login, start_server
from tests.factories import make_instance

TODAY = dt.date.today()
UID_ROOT = "1.2.826.0.1.3680043.10.77."
#: patient ID -> (name, study date, modality, accession)
NAMED = {
    "RU1": ("Иванов^Иван", TODAY, "MR", "ACC-RU1"),
    "RU2": ("ИВАНОВА^Мария", TODAY - dt.timedelta(days=1), "CR", "ACC-RU2"),
    "EN1": ("Smith^John", TODAY - dt.timedelta(days=10), "US", "ACC-EN1"),
    "EN2": ("smith^anna", TODAY - dt.timedelta(days=40), "MR", "ACC-EN2"),
}
BULK = 52  # with the four above: 56 studies, two pages of 50


def uid_of(patient_id: str) -> str:
    return UID_ROOT + str(int.from_bytes(patient_id.encode(), "big"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("worklist")
    live = start_server(root / "data", users={"irina": "doctor", "olga": "operator"})
    folder = root / "import"
    folder.mkdir()
    studies = {pid: (n, d, m, a) for pid, (n, d, m, a) in NAMED.items()}
    for i in range(BULK):
        date = dt.date(2015, 1, 1) + dt.timedelta(days=i)
        studies[f"BULK{i:02d}"] = (f"Bulk^Patient{i:02d}", date, "CT", f"ACC-B{i:02d}")
    for pid, (name, date, modality, accession) in studies.items():
        data = make_instance(
            study_uid=uid_of(pid),
            PatientID=pid,
            PatientName=name,
            StudyDate=f"{date:%Y%m%d}",
            Modality=modality,
            AccessionNumber=accession,
        )
        (folder / f"{pid}.dcm").write_bytes(data)
    subprocess.run(
        [sys.executable, "-m", "klinika", "import", str(folder)],
        env=live.env,
        check=True,
        capture_output=True,
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def doctor(server: LiveServer) -> dict[str, str]:
    return login(server.url, "irina")


def page_of(server: LiveServer, headers: dict[str, str], **params: str) -> str:
    answer = requests.get(server.url + "/worklist", params=params, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.text


def found(server: LiveServer, headers: dict[str, str], **params: str) -> list[str]:
    """Patient IDs of the rows shown, in order."""
    uids = re.findall(r'<tr data-study="([^"]+)"', page_of(server, headers, **params))
    by_uid = {uid_of(pid): pid for pid in [*NAMED, *(f"BULK{i:02d}" for i in range(BULK))]}
    return [by_uid[uid] for uid in uids]


def test_pages_of_fifty_newest_first_that_neither_overlap_nor_skip(server, doctor) -> None:  # type: ignore[no-untyped-def]
    first = found(server, doctor)
    assert len(first) == 50 and first[:2] == ["RU1", "RU2"]  # today's study, then yesterday's
    assert "Page 1 of 2" in page_of(server, doctor) and "56 studies" in page_of(server, doctor)
    second = found(server, doctor, page="2")
    assert len(second) == 6 and second[-1] == "BULK00"
    assert len(set(first) | set(second)) == 56
    assert found(server, doctor, page="3") == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("иван*", {"RU1", "RU2"}),
        ("ИВАН", {"RU1", "RU2"}),  # no wildcard: words are prefixes, any case
        ("?ванова*", {"RU2"}),
        ("?ванова", set()),  # with a wildcard the pattern is the whole name, as in QIDO
        ("smith", {"EN1", "EN2"}),
        ("*anna", {"EN2"}),
        ("мария", {"RU2"}),  # plain words start any part of the name
        ("smith jo", {"EN1"}),
        ("nobody", set()),
    ],
)
def test_name_search_matches_as_qido_does(server, doctor, name, expected) -> None:  # type: ignore[no-untyped-def]
    assert set(found(server, doctor, name=name)) == expected
    # the same answer QIDO-RS gives: the pattern as is, plain words with fuzzymatching
    fuzzy = "false" if "*" in name or "?" in name else "true"
    qido = requests.get(
        server.dicomweb + "/studies",
        params={"PatientName": name, "fuzzymatching": fuzzy},
        headers=doctor,
    )
    answers = qido.json() if qido.status_code == 200 else []
    assert {a["00100020"]["Value"][0] for a in answers} == expected


def test_patient_id_and_accession_match_exactly(server, doctor) -> None:  # type: ignore[no-untyped-def]
    assert found(server, doctor, pid="RU1") == ["RU1"]
    assert found(server, doctor, pid="RU") == []
    assert found(server, doctor, accession="ACC-EN2") == ["EN2"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"preset": "today"}, ["RU1"]),
        ({"preset": "yesterday"}, ["RU2"]),
        ({"preset": "7d"}, ["RU1", "RU2"]),
        ({"preset": "30d"}, ["RU1", "RU2", "EN1"]),
        (
            {"from": f"{TODAY - dt.timedelta(days=40)}", "to": f"{TODAY - dt.timedelta(days=2)}"},
            ["EN1", "EN2"],
        ),
        ({"from": "2015-01-02", "to": "2015-01-03"}, ["BULK02", "BULK01"]),
        ({"modality": "MR"}, ["RU1", "EN2"]),
        ({"modality": "MR", "preset": "30d"}, ["RU1"]),
    ],
)
def test_date_presets_ranges_and_modality(server, doctor, params, expected) -> None:  # type: ignore[no-untyped-def]
    assert found(server, doctor, **params) == expected


def test_sorting_by_name_ignores_case_and_flips(server, doctor) -> None:  # type: ignore[no-untyped-def]
    recent = {"from": f"{TODAY - dt.timedelta(days=60)}"}
    ascending = found(server, doctor, sort="name", order="asc", **recent)
    assert ascending == ["EN2", "EN1", "RU1", "RU2"]  # smith^anna, Smith^John, Иванов, ИВАНОВА
    assert found(server, doctor, sort="name", order="desc", **recent) == ascending[::-1]
    assert found(server, doctor, sort="pid", order="asc")[:2] == ["BULK00", "BULK01"]
    assert found(server, doctor, sort="date", order="asc")[0] == "BULK00"


def test_odd_parameters_fall_back_instead_of_failing(server, doctor) -> None:  # type: ignore[no-untyped-def]
    assert (
        len(found(server, doctor, sort="bogus", order="up", modality="XX", **{"from": "x"})) == 50
    )
    answer = requests.get(server.url + "/worklist", params={"page": "0"}, headers=doctor)
    assert answer.status_code == 422


def test_doctors_see_viewer_and_report_links_but_may_not_delete(server, doctor) -> None:  # type: ignore[no-untyped-def]
    html = page_of(server, doctor, pid="RU1")
    uid = uid_of("RU1")
    assert f'href="/viewer?StudyInstanceUIDs={uid}"' in html
    assert f'href="/reports/{uid}"' in html and f'href="/export/studies/{uid}.zip"' in html
    assert "/delete" not in html
    answer = requests.post(f"{server.url}/worklist/studies/{uid}/delete", headers=doctor)
    assert answer.status_code == 403
    assert found(server, doctor, pid="RU1") == ["RU1"]
    assert "/delete" in page_of(server, server.headers, pid="RU1")  # admins see it


def test_an_admin_deletes_a_study_after_confirming_and_it_is_audited(
    server: LiveServer, open_page: OpenPage
) -> None:
    page = open_page()
    log_in(page, server.url, "tester", TEST_PASSWORD, "/worklist?pid=BULK10")
    row = page.page.locator(f'tr[data-study="{uid_of("BULK10")}"]')
    page.page.once("dialog", lambda dialog: dialog.dismiss())
    row.locator("button.danger").click()
    page.page.wait_for_timeout(300)
    assert page.page.url.endswith("/worklist?pid=BULK10") and row.count() == 1  # still there
    page.page.once("dialog", lambda dialog: dialog.accept())
    with page.page.expect_navigation():
        row.locator("button.danger").click()
    assert "deleted=1" in page.page.url
    assert page.page.locator("p.ok[role=status]").count() == 1
    assert found(server, server.headers, pid="BULK10") == []
    qido = requests.get(
        server.dicomweb + "/studies", params={"PatientID": "BULK10"}, headers=server.headers
    )
    assert qido.status_code == 204 or qido.json() == []
    trail = requests.get(
        server.url + "/api/audit",
        params={"action": "dicom:delete", "study_uid": uid_of("BULK10")},
        headers=server.headers,
    ).json()
    assert [(e["actor"], e["outcome"]) for e in trail["events"]] == [("tester", "success")]
    assert page.csp_violations() == [] and page.errors == []


def test_the_worklist_is_the_home_page_and_needs_a_session(server: LiveServer) -> None:
    answer = requests.get(server.url + "/", headers=server.headers, allow_redirects=False)
    assert answer.headers["location"].startswith("/worklist")
    anonymous = requests.get(
        server.url + "/worklist?name=x", headers={"Accept": "text/html"}, allow_redirects=False
    )
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=%2Fworklist%3Fname%3Dx")
    assert Path(__file__).name == "test_worklist.py"


def test_a_deidentified_share_download_is_offered_and_audited(server: LiveServer) -> None:
    uid = uid_of("BULK11")
    assert f"/export/studies/{uid}.zip?deidentify=yes" in page_of(
        server, server.headers, pid="BULK11"
    )
    answer = requests.get(
        f"{server.url}/export/studies/{uid}.zip",
        params={"deidentify": "yes"},
        headers=server.headers,
    )
    assert answer.status_code == 200
    assert "deidentified" in answer.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(answer.content)) as bundle:
        contents = [bundle.read(name) for name in bundle.namelist()]
    assert len(contents) == 2  # the DICOMDIR and the instance, neither naming the patient
    assert all(
        b"BULK11" not in c and b"Patient11" not in c and b"ACC-B11" not in c for c in contents
    )
    trail = requests.get(
        server.url + "/api/audit",
        params={"action": "dicom:export", "study_uid": uid},
        headers=server.headers,
    ).json()
    assert "dicom-deidentified" in [e["details"]["format"] for e in trail["events"]]
