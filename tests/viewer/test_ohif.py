"""OHIF in headless Chromium against a live Klinika: stack, MPR, a measurement saved as SR
through our STOW, sessions, roles, CSP and language."""

from __future__ import annotations

from collections.abc import Callable

import requests

from tests.browser import BrowserPage, OpenPage, log_in, screenshot
from tests.conftest import TEST_PASSWORD, LiveServer, login
from tests.conftest import wait_until as until
from tests.viewer.conftest import ct_study_uid, drawn

TIMEOUT = 90


def wait_until(condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """Poll a page's state twice a second (screenshots are not free)."""
    until(condition, timeout, interval=0.5)


def panes_drawn(page: BrowserPage, count: int) -> bool:
    panes = page.page.locator("[data-cy=viewport-pane]")
    if panes.count() != count:
        return False
    return all(drawn(panes.nth(i).screenshot()) for i in range(count))


def open_viewer(open_page: OpenPage, server: LiveServer, user: str, study_uid: str) -> BrowserPage:
    """A new browser page, logged in as ``user``, showing the study in OHIF."""
    page = open_page()
    log_in(page, server.url, user, TEST_PASSWORD, path=f"/viewer?StudyInstanceUIDs={study_uid}")
    page.page.wait_for_selector("canvas.cornerstone-canvas", timeout=TIMEOUT * 1000)
    return page


def test_a_doctor_reads_the_ct_in_stack_and_mpr_and_saves_a_measurement_as_sr(
    viewer_server: LiveServer, open_page: OpenPage
) -> None:
    uid = ct_study_uid(viewer_server)
    browser_page = open_viewer(open_page, viewer_server, "irina", uid)
    page = browser_page.page
    wait_until(lambda: panes_drawn(browser_page, 1))
    assert page.locator("#klinika-report").get_attribute("href") == f"/reports/{uid}"
    assert page.locator("#klinika-user").inner_text().startswith("irina")
    screenshot(browser_page, "viewer-stack")

    # a length measurement, tracked, saved as a DICOM SR through our STOW-RS
    page.click("[data-cy=MeasurementTools-split-button-primary]")
    box = page.locator("canvas.cornerstone-canvas").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 150, y + 40, steps=10)
    page.mouse.up()
    page.get_by_role("button", name="Yes", exact=True).click()
    page.click("[data-cy=trackedMeasurements-btn]")
    page.get_by_role("button", name="Create SR").click()
    page.fill("[data-cy=dialog-input] input, input[data-cy=dialog-input]", "Klinika test")
    with page.expect_response(
        lambda r: r.request.method == "POST" and "/dicom-web/studies" in r.url
    ) as stow:
        page.click("[data-cy=input-dialog-save-button]")
    assert stow.value.status == 200
    series = requests.get(
        f"{viewer_server.dicomweb}/studies/{uid}/series",
        params={"Modality": "SR"},
        headers=viewer_server.headers,
    ).json()
    assert len(series) == 1
    page.reload()
    page.wait_for_selector("canvas.cornerstone-canvas", timeout=TIMEOUT * 1000)
    labels = page.locator("[data-cy=series-modality-label]")
    wait_until(lambda: "SR" in labels.all_inner_texts())

    # MPR: three orthogonal views of the volume, all drawn
    page.goto(f"{viewer_server.url}/viewer?StudyInstanceUIDs={uid}&hangingprotocolId=mpr")
    page.wait_for_selector("canvas.cornerstone-canvas", timeout=TIMEOUT * 1000)
    wait_until(lambda: panes_drawn(browser_page, 3))
    screenshot(browser_page, "viewer-mpr")
    assert browser_page.csp_violations() == []
    assert browser_page.errors == []


def test_without_a_session_nothing_answers_and_logout_ends_access(
    viewer_server: LiveServer, open_page: OpenPage
) -> None:
    uid = ct_study_uid(viewer_server)
    anonymous = requests.Session()
    page_url = f"{viewer_server.url}/viewer?StudyInstanceUIDs={uid}"
    answer = anonymous.get(page_url, headers={"Accept": "text/html"}, allow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=%2Fviewer%3FStudyInstanceUIDs")
    for path in ("/app-config.js", "/app.bundle.js", f"/dicom-web/studies/{uid}/series"):
        assert anonymous.get(viewer_server.url + path).status_code == 401

    browser_page = open_viewer(open_page, viewer_server, "irina", uid)
    page = browser_page.page
    page.click("#klinika-user")
    with page.expect_navigation():
        page.click("#klinika-logout")
    assert "/login" in page.url
    after = page.request.get(f"{viewer_server.url}/dicom-web/studies/{uid}/series")
    assert after.status == 401
    page.goto(page_url)
    assert "/login?next=" in page.url
    assert browser_page.csp_violations() == []


def test_an_operator_views_and_may_upload_but_not_write_reports(
    viewer_server: LiveServer, open_page: OpenPage
) -> None:
    uid = ct_study_uid(viewer_server)
    browser_page = open_viewer(open_page, viewer_server, "olga", uid)
    page = browser_page.page
    wait_until(lambda: panes_drawn(browser_page, 1))
    config = page.evaluate("() => window.config.dataSources[0].configuration")
    assert config["dicomUploadEnabled"] is True
    assert config["qidoRoot"] == viewer_server.url + "/dicom-web"
    assert page.evaluate("() => window.klinika.user.role") == "operator"
    written = page.request.put(
        f"{viewer_server.url}/api/studies/{uid}/report",
        data={"revision": None, "sections": {"findings": "x"}},
    )
    assert written.status == 403
    # the Report button opens the report page, read-only for operators (no final report yet)
    with page.context.expect_page() as report_tab:
        page.click("#klinika-report")
    report = report_tab.value
    report.wait_for_load_state()
    assert f"/reports/{uid}" in report.url
    assert report.locator("textarea:not([readonly])").count() == 0
    assert report.locator("button", has_text="Sign").count() == 0
    assert browser_page.csp_violations() == []


def test_upload_in_the_viewer_only_for_roles_that_may_store(
    viewer_server: LiveServer, open_page: OpenPage
) -> None:
    uid = ct_study_uid(viewer_server)
    for user, may_upload in (("irina", False), ("tester", True)):
        browser_page = open_viewer(open_page, viewer_server, user, uid)
        page = browser_page.page
        config = page.evaluate("() => window.config.dataSources[0].configuration")
        assert config["dicomUploadEnabled"] is may_upload, user
        assert page.locator("#klinika-report").count() == 1  # doctors and admins report
        assert browser_page.csp_violations() == []


def test_switching_to_russian_translates_our_additions_and_ohif(
    viewer_server: LiveServer, open_page: OpenPage
) -> None:
    uid = ct_study_uid(viewer_server)
    # a doctor of her own: the language is stored with the user, and the other tests of this
    # module (in any order) read OHIF's English labels
    browser_page = open_viewer(open_page, viewer_server, "vera", uid)
    page = browser_page.page
    page.click("#klinika-user")
    with page.expect_navigation():
        page.select_option("#klinika-language", "ru")
    page.wait_for_selector("#klinika-worklist", timeout=TIMEOUT * 1000)
    assert page.locator("#klinika-worklist").inner_text() == "К рабочему списку"
    assert page.locator("#klinika-report").inner_text() == "Заключение"
    assert page.locator("#klinika-role").inner_text() == "Врач"
    wait_until(lambda: "Исследования" in page.locator("body").inner_text())
    me = page.request.get(viewer_server.url + "/api/auth/me").json()
    assert me["language"] == "ru"
    screenshot(browser_page, "viewer-russian")
    assert browser_page.csp_violations() == []


def test_a_signed_report_shows_in_ohif_as_its_pdf(
    viewer_server: LiveServer, open_page: OpenPage
) -> None:
    doctor = {"Authorization": login(viewer_server.url, "irina")["Authorization"]}
    studies = requests.get(
        viewer_server.dicomweb + "/studies",
        params={"ModalitiesInStudy": "MR"},
        headers=viewer_server.headers,
    ).json()
    uid = studies[0]["0020000D"]["Value"][0]
    report = f"{viewer_server.url}/api/studies/{uid}/report"
    draft = requests.put(
        report,
        json={"revision": None, "sections": {"findings": "No acute findings."}},
        headers=doctor,
    )
    assert draft.status_code == 200
    signed = requests.post(
        report + "/sign", json={"revision": draft.json()["revision"]}, headers=doctor
    )
    assert signed.status_code == 200
    browser_page = open_viewer(open_page, viewer_server, "irina", uid)
    page = browser_page.page
    page.get_by_text("Radiology report").first.dblclick()
    document = page.locator("object[type='application/pdf']")
    document.wait_for(state="attached", timeout=TIMEOUT * 1000)
    assert (document.get_attribute("data") or "").startswith("blob:")
    assert browser_page.csp_violations() == []
