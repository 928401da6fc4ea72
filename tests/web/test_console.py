"""The web console in headless Chromium against a live server with real data: upload,
worklist search, viewer and report links, export, and the admin console."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from PIL import Image

from tests.browser import BrowserPage, OpenPage, log_in, screenshot
from tests.conftest import PYDICOM_DATA, SAMPLES, TEST_PASSWORD, LiveServer, start_server
from tests.viewer.conftest import load_demo

CYRILLIC = SAMPLES / "generated" / "cyrillic_iso_ir_144.dcm"
MALFORMED = SAMPLES / "generated" / "malformed_bad_dicm_magic.dcm"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("console")
    live = start_server(
        root / "data", users={"olga": "operator", "irina": "doctor", "boss": "admin"}
    )
    load_demo(live, root / "demo", ct_slices=8)
    yield live
    live.stop()


def study_uids(server: LiveServer, **match: str) -> list[str]:
    found = requests.get(server.dicomweb + "/studies", params=match, headers=server.headers)
    return [s["0020000D"]["Value"][0] for s in found.json()] if found.status_code == 200 else []


def outcomes(page: BrowserPage) -> list[tuple[str, str]]:
    items = page.page.locator("#results li")
    return [
        (items.nth(i).get_attribute("data-status") or "", items.nth(i).inner_text())
        for i in range(items.count())
    ]


def test_an_operator_uploads_a_folder_and_a_zip_and_sees_each_outcome(
    server: LiveServer, open_page: OpenPage, tmp_path: Path
) -> None:
    folder = tmp_path / "cd-rom"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(CYRILLIC, folder / "nested" / "cyrillic.dcm")
    shutil.copy(PYDICOM_DATA / "CT_small.dcm", folder / "ct.dcm")
    shutil.copy(MALFORMED, folder / "broken.dcm")
    archive = tmp_path / "studies.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(PYDICOM_DATA / "MR_small.dcm", "a/mr.dcm")
        bundle.write(PYDICOM_DATA / "CT_small.dcm", "b/ct-again.dcm")
        bundle.writestr("readme.txt", "not DICOM")

    page = open_page()
    log_in(page, server.url, "olga", TEST_PASSWORD, "/upload")
    page.page.set_input_files("#folder-input", str(folder))
    page.page.locator("#results li").nth(2).wait_for()
    page.page.set_input_files("#file-input", str(archive))
    page.page.locator("#results li").nth(5).wait_for()
    seen = outcomes(page)
    statuses = sorted(status for status, _ in seen)
    assert statuses == ["duplicate", "rejected", "rejected", "stored", "stored", "stored"], seen
    broken = page.page.locator("#results tr", has_text="broken.dcm").locator("li").inner_text()
    assert broken.startswith("Rejected — ")  # the malformed file says why; the others went on
    assert len(broken) > len("Rejected — ") + 10, broken
    readme = page.page.locator("#results li", has_text="readme.txt").inner_text()
    assert "Rejected" in readme
    assert "3 stored, 1 duplicates, 2 rejected" in page.page.locator("#summary").inner_text()
    screenshot(page, "console-upload")
    # the new studies are in the worklist
    page.page.goto(server.url + "/worklist?pid=" + pydicom.dcmread(CYRILLIC).PatientID)
    assert page.page.locator("tbody tr[data-study]").count() == 1
    assert page.csp_violations() == [] and page.errors == []


def test_a_doctor_finds_a_cyrillic_name_and_opens_viewer_and_report(
    server: LiveServer, open_page: OpenPage
) -> None:
    page = open_page(locale="ru-RU")
    log_in(page, server.url, "irina", TEST_PASSWORD, "/worklist")
    # her preference is "automatic": the browser's language
    assert page.page.locator("h1").inner_text() == "Рабочий список"
    with page.page.expect_navigation():
        page.page.select_option("#language-select", "ru")
    page.page.fill("input[name=name]", "иван*")
    with page.page.expect_navigation():
        page.page.click("button[type=submit].primary")
    rows = page.page.locator("tbody tr[data-study]")
    names = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    assert names and all(name.lower().startswith("иван") for name in names), names
    assert any("Иванов Иван" in name for name in names)  # the demo CT's patient
    rows = page.page.locator("tbody tr[data-study]", has_text="Иванов Иван")
    assert page.page.locator("h1").inner_text() == "Рабочий список"
    uid = rows.first.get_attribute("data-study")
    assert page.page.locator("button.danger").count() == 0  # doctors do not delete
    screenshot(page, "console-worklist-ru")
    viewer = rows.first.locator("a.button.primary")
    assert viewer.get_attribute("href") == f"/viewer?StudyInstanceUIDs={uid}"
    report = rows.first.locator(f"a[href='/reports/{uid}']")
    with page.page.expect_navigation():
        report.click()
    assert page.page.url.endswith(f"/reports/{uid}")
    assert page.csp_violations() == [] and page.errors == []


def test_an_admin_creates_a_user_who_logs_in_then_disables_them(
    server: LiveServer, open_page: OpenPage
) -> None:
    admin = open_page()
    log_in(admin, server.url, "boss", TEST_PASSWORD, "/admin/users")
    admin.page.fill("form[action='/admin/users'] input[name=username]", "newdoc")
    admin.page.fill("form[action='/admin/users'] input[name=display_name]", "Dr New")
    admin.page.select_option("form[action='/admin/users'] select[name=role]", "doctor")
    with admin.page.expect_navigation():
        admin.page.click("form[action='/admin/users'] button[type=submit]")
    password = admin.page.locator("[data-testid=new-password] code").inner_text()

    user = open_page()
    log_in(user, server.url, "newdoc", password, "/worklist")
    assert user.page.url.endswith("/worklist")
    assert "newdoc" in user.page.locator("[data-testid=user-menu]").inner_text()

    admin.page.goto(server.url + "/admin/users")
    row = admin.page.locator("tr[data-user=newdoc]")
    row.locator("input[name=active]").uncheck()
    with admin.page.expect_navigation():
        row.locator("button", has_text="Save").click()
    user.page.goto(server.url + "/worklist")  # the session ended at once
    assert "/login?next=" in user.page.url
    assert user.page.request.get(server.dicomweb + "/studies").status == 401

    admin.page.goto(server.url + "/admin/audit?actor=boss&verify=true")
    trail = admin.page.locator("table.audit").inner_text()
    assert "user:create" in trail and "user:update" in trail
    assert "newdoc" in trail
    assert "intact" in admin.page.locator("[data-testid=chain]").inner_text()
    screenshot(admin, "console-admin-audit")
    admin.page.goto(server.url + "/admin/system")
    assert int(admin.page.locator("[data-testid=studies]").inner_text()) >= 4
    assert admin.page.locator("[data-testid=health-database]").inner_text() == "ok"
    screenshot(admin, "console-admin-system")
    assert admin.csp_violations() == [] and admin.errors == []


def test_export_zip_opens_with_pydicom_and_dcmdump_and_images_with_pillow(
    server: LiveServer, tmp_path: Path
) -> None:
    uid = study_uids(server, StudyDescription="MRI Brain*")[0]
    answer = requests.get(f"{server.url}/export/studies/{uid}.zip", headers=server.headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as bundle:
        bundle.extractall(tmp_path / "dicom")
        names = bundle.namelist()
    assert "DICOMDIR" in names
    directory = pydicom.dcmread(tmp_path / "dicom" / "DICOMDIR")
    images = [r for r in directory.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    assert len(images) == len(names) - 1
    for record in images:
        path = tmp_path / "dicom" / Path(*record.ReferencedFileID)
        assert pydicom.dcmread(path).SOPInstanceUID == record.ReferencedSOPInstanceUIDInFile
    dump = subprocess.run(
        ["dcmdump", str(tmp_path / "dicom" / "DICOMDIR")], capture_output=True, encoding="latin-1"
    )
    assert dump.returncode == 0 and "DirectoryRecordSequence" in dump.stdout
    for fmt, kind in (("jpeg", "JPEG"), ("png", "PNG")):
        answer = requests.get(
            f"{server.url}/export/studies/{uid}/images.zip",
            params={"format": fmt},
            headers=server.headers,
        )
        with zipfile.ZipFile(io.BytesIO(answer.content)) as bundle:
            pictures = bundle.namelist()
            assert len(pictures) == len(images)
            with Image.open(io.BytesIO(bundle.read(pictures[0]))) as picture:
                assert picture.format == kind and picture.size[0] > 0
    assert (
        requests.get(f"{server.url}/export/studies/1.2.3.zip", headers=server.headers).status_code
        == 404
    )
