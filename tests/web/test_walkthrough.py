"""The new user's walk-through (issue 16), in headless Chromium against a live server: the
viewer bar beside OHIF's toolbar, role-forbidden and missing pages, operators' report PDFs,
filters kept by sorting, the password page, upload, export names, sessions, the audit page,
language "automatic (browser)", translated sex, folded name search, the extra columns and the
worklist on a phone. Texts are checked in every language (one browser context each)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import requests

from klinika.i18n import LANGUAGES, translator
from tests.browser import OpenPage, log_in, screenshot
from tests.conftest import TEST_PASSWORD, LiveServer, login, start_server, wait_until
from tests.dicom.test_bare_dataset import bare
from tests.dicomweb.conftest import stow
from tests.factories import make_instance
from tests.viewer.conftest import ct_study_uid, load_demo

LOCALES = {"en": "en-US", "ru": "ru-RU", "es": "es-ES", "fr": "fr-FR", "de": "de-DE"}
RUSSIAN_NAME = "Ирина Владимировна Константинопольская-Щедрина"
UID = "1.2.826.0.1.3680043.10.1616."
#: study UID suffix -> attributes
STUDIES = {
    "1": dict(
        PatientID="WT-MUELLER",
        PatientName="Müller^Hans",
        PatientSex="F",
        PatientAge="045Y",
        ReferringPhysicianName="Petrov^Ivan",
        InstitutionName="Klinika Nord",
        StudyDate="20240105",
        Modality="MR",
    ),
    "2": dict(
        PatientID="WT-IVANOV",
        PatientName="Иванов^Пётр",
        PatientSex="M",
        PatientBirthDate="19800301",
        StudyDate="20240110",
        Modality="CT",
    ),
    "3": dict(PatientID="WT-OLD", PatientName="Old^Study", StudyDate="20190101"),
}


def text(language: str, message: str, **values: object) -> str:
    return translator(language).gettext(message, **values)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ohif_cache: Path) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("walkthrough")
    live = start_server(
        root / "data",
        extra_env={"KLINIKA_CACHE_DIR": str(ohif_cache)},
        users={"olga": "operator", "irina": "doctor", "boss": "admin"},
    )
    load_demo(live, root / "demo", ct_slices=8)
    files = [make_instance(study_uid=UID + k, StudyID=k, **attrs) for k, attrs in STUDIES.items()]
    assert stow(live, files).status_code == 200
    renamed = requests.patch(
        live.url + "/api/users/irina", json={"display_name": RUSSIAN_NAME}, headers=live.headers
    )
    assert renamed.status_code == 200, renamed.text
    # a signed report on Müller's study, for the operators' PDF
    doctor = login(live.url, "irina")
    report = f"{live.url}/api/studies/{UID}1/report"
    body = {"revision": None, "language": "en", "sections": {"findings": "Normal."}}
    saved = requests.put(report, json=body, headers=doctor, timeout=60)
    assert saved.status_code == 200, saved.text
    signed = requests.post(
        report + "/sign", json={"revision": saved.json()["revision"]}, headers=doctor, timeout=120
    )
    assert signed.status_code == 200, signed.text
    yield live
    live.stop()


def open_as(  # type: ignore[no-untyped-def]
    open_page: OpenPage, server: LiveServer, user: str, language: str, path: str, **kw
):
    page = open_page(locale=LOCALES[language], **kw)
    log_in(page, server.url, user, TEST_PASSWORD, path)
    return page


# ----------------------------------------------------------------------------- 1, 4: viewer
@pytest.mark.parametrize("language", ["en", "ru", "de"])
def test_the_viewer_bar_never_covers_ohifs_toolbar_or_logo(
    server: LiveServer, open_page: OpenPage, language: str
) -> None:
    uid = ct_study_uid(server)
    page = open_as(open_page, server, "irina", language, f"/viewer?StudyInstanceUIDs={uid}")
    p = page.page
    p.wait_for_selector("canvas.cornerstone-canvas", timeout=120_000)
    assert p.locator("#klinika-worklist").inner_text() == text(language, "Back to worklist")
    assert RUSSIAN_NAME in p.locator("#klinika-user").inner_text()
    for width in (1400, 1024):
        p.set_viewport_size({"width": width, "height": 900})
        p.wait_for_timeout(500)
        for target in ("Length-btn", "Zoom-btn", "return-to-work-list"):
            box = p.locator(f"[data-cy={target}]").first.bounding_box()
            assert box is not None, target
            hit = p.evaluate(
                '([x, y, cy]) => !!document.elementFromPoint(x, y)?.closest(`[data-cy="${cy}"]`)',
                [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, target],
            )
            assert hit, (width, target)  # OHIF's own element is on top there
        bar = p.locator("#klinika-bar").bounding_box()
        assert bar is not None and bar["width"] <= width
        p.locator("[data-cy=Length-btn]").first.click(timeout=10_000)
        screenshot(page, f"viewer-bar-{language}-{width}")
    # OHIF offers no way to its own study list; ours is the one
    assert p.evaluate("window.config.showStudyList") is False
    assert page.errors == [] and page.csp_violations() == []


def test_a_missing_study_in_the_viewer_shows_our_translated_page(
    server: LiveServer, open_page: OpenPage
) -> None:
    page = open_as(open_page, server, "irina", "ru", "/worklist")
    page.page.goto(server.url + "/viewer?StudyInstanceUIDs=1.2.3.999")
    page.page.wait_for_url(re.compile(r"/notfoundstudy\?klinika=1"), timeout=120_000)
    card = page.page.locator("[data-testid=study-not-found]")
    assert text("ru", "Study not found") in card.inner_text()
    assert "1.2.3.999" in card.inner_text()
    with page.page.expect_navigation():
        card.locator("[data-testid=back]").click()
    assert page.page.url.endswith("/worklist")


# ---------------------------------------------------- 2, 12: languages, pages and columns
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_console_in_each_language(
    server: LiveServer, open_page: OpenPage, language: str
) -> None:
    page = open_as(open_page, server, "olga", language, "/worklist")
    p = page.page
    # the user follows the browser: "automatic (browser)" is what the switch shows
    assert p.locator("h1").inner_text() == text(language, "Worklist")
    chosen = p.locator("#language-select option:checked")
    assert chosen.get_attribute("value") == "auto"
    assert chosen.inner_text() == text(language, "Automatic (browser)")
    # Age, Referring physician, Institution; sex translated
    headers = p.locator("table.worklist thead").inner_text()
    for column in ("Age", "Referring physician", "Institution"):
        assert text(language, column) in headers
    row = p.locator(f"tr[data-study='{UID}1']")
    assert row.locator("abbr.sex").inner_text() == text(language, "F")
    assert row.locator("td.age").inner_text() == text(language, "%(n)d y", n=45)
    assert "Petrov Ivan" in row.locator("td.referring").inner_text()
    assert row.locator("td.institution").inner_text() == "Klinika Nord"
    ivanov = p.locator(f"tr[data-study='{UID}2']")
    assert ivanov.locator("abbr.sex").inner_text() == text(language, "M")
    assert ivanov.locator("td.age").inner_text() == text(language, "%(n)d y", n=43)
    # buttons never wrap
    for button in p.locator("tbody .actions .button").all()[:6]:
        box = button.bounding_box()
        assert box is not None and box["height"] < 48, (language, button.inner_text())
    screenshot(page, f"walkthrough-worklist-{language}")
    # a page the role may not open: HTML in the language, a way back; the API keeps JSON
    answer = p.goto(server.url + "/admin/users")
    assert answer is not None and answer.status == 403
    error = p.locator("[data-testid=error-page]")
    assert error.locator("h1").inner_text() == text(language, "Not for your role")
    assert text(language, "Operator") in error.inner_text()
    assert error.locator("a[href='/worklist']").count() == 1
    assert p.request.get(server.url + "/api/users").json()["error"].startswith("the role")
    answer = p.goto(server.url + "/no/such/page")
    assert answer is not None and answer.status == 404
    missing = p.locator("[data-testid=error-page] h1").inner_text()
    assert missing == text(language, "Page not found")
    # an operator downloads and prints the signed report's PDF
    p.goto(server.url + f"/reports/{UID}1")
    download = p.locator("#download-pdf")
    download.wait_for()
    assert p.locator("#print-pdf").get_attribute("target") == "_blank"
    pdf = p.request.get(server.url + download.get_attribute("href"))
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF-")
    disposition = pdf.headers["content-disposition"]
    assert 'filename="report-Muller_Hans-20240105-v1.pdf"' in disposition
    assert "report-M%C3%BCller_Hans-20240105-v1.pdf" in disposition
    # the upload page in the language: a rejected file says why, in the language
    p.goto(server.url + "/upload")
    assert p.locator("#cancel-upload").is_hidden()
    p.set_input_files(
        "#file-input",
        files=[{"name": "junk.dcm", "mimeType": "application/dicom", "buffer": b"junk" * 64}],
    )
    outcome = p.locator("#results li[data-status=rejected]")
    outcome.wait_for()
    assert text(language, "not readable as DICOM") in outcome.inner_text()
    assert page.errors == [] and page.csp_violations() == []


def test_an_operator_whose_drafts_are_refused_gets_no_draft_pdf(server: LiveServer) -> None:
    operator = login(server.url, "olga")
    doctor = login(server.url, "irina")
    report = f"{server.url}/api/studies/{UID}2/report"
    body = {"revision": None, "language": "en", "sections": {"findings": "Draft only."}}
    assert requests.put(report, json=body, headers=doctor, timeout=60).status_code == 200
    assert requests.get(report + "/pdf", headers=doctor, timeout=60).status_code == 200
    assert requests.get(report + "/pdf", headers=operator, timeout=60).status_code == 404


def test_returning_to_the_browsers_language(server: LiveServer, open_page: OpenPage) -> None:
    page = open_as(open_page, server, "boss", "de", "/worklist")
    p = page.page
    assert p.locator("h1").inner_text() == "Arbeitsliste"
    with p.expect_navigation():
        p.select_option("#language-select", "ru")
    assert p.locator("h1").inner_text() == "Рабочий список"
    p.goto(server.url + "/worklist")  # remembered
    assert p.locator("h1").inner_text() == "Рабочий список"
    with p.expect_navigation():
        p.select_option("#language-select", "auto")
    assert p.locator("h1").inner_text() == "Arbeitsliste"
    assert p.request.get(server.url + "/api/auth/me").json()["language"] == "auto"
    with p.expect_navigation():
        p.click("form[action='/logout'] button")
    log_in(page, server.url, "boss", TEST_PASSWORD, "/worklist")  # and at the next login
    assert p.locator("h1").inner_text() == "Arbeitsliste"


# ------------------------------------------------------------------ 6, 12: search and sort
def test_sorting_and_paging_keep_every_filter_and_names_fold(
    server: LiveServer, open_page: OpenPage
) -> None:
    page = open_as(open_page, server, "irina", "en", "/worklist")
    p = page.page
    p.fill("input[name=from]", "2024-01-01")
    p.fill("input[name=to]", "2024-01-31")
    with p.expect_navigation():
        p.click("button[type=submit].primary")
    shown = {r.get_attribute("data-study") for r in p.locator("tbody tr[data-study]").all()}
    # this module's studies of January 2024 (other tests of the module store studies too)
    assert {uid for uid in shown if uid and uid.startswith(UID)} == {UID + "1", UID + "2"}
    for header in ("Patient", "Study date"):
        with p.expect_navigation():
            link = re.compile(f"^{header}( [▲▼])?$")
            p.locator("table.worklist thead").get_by_role("link", name=link).click()
        query = parse_qs(urlparse(p.url).query)
        assert query["from"] == ["2024-01-01"] and query["to"] == ["2024-01-31"], p.url
        rows = {r.get_attribute("data-study") for r in p.locator("tbody tr[data-study]").all()}
        assert rows == shown
    assert p.locator("input[name=from]").input_value() == "2024-01-01"
    for typed, expected in (("muller", UID + "1"), ("Ivanov", UID + "2"), ("PETR", UID + "2")):
        p.fill("input[name=name]", typed)
        with p.expect_navigation():
            p.click("button[type=submit].primary")
        rows = {r.get_attribute("data-study") for r in p.locator("tbody tr[data-study]").all()}
        assert rows == {expected}, typed


def test_on_a_phone_the_actions_are_on_screen(server: LiveServer, open_page: OpenPage) -> None:
    page = open_as(open_page, server, "boss", "ru", "/worklist", viewport=(390, 844))
    p = page.page
    row = p.locator(f"tr[data-study='{UID}1']")
    row.scroll_into_view_if_needed()
    for action in row.locator(".actions .button, .actions button").all():
        box = action.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert p.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "walkthrough-worklist-phone")


# --------------------------------------------------------------------------- 7: password
def test_changing_ones_own_password(server: LiveServer, open_page: OpenPage) -> None:
    requests.post(
        server.url + "/api/users",
        json={"username": "pw-user", "role": "doctor", "password": TEST_PASSWORD},
        headers=server.headers,
    ).raise_for_status()
    other = login(server.url, "pw-user")
    page = open_as(open_page, server, "pw-user", "ru", "/worklist")
    p = page.page
    with p.expect_navigation():
        p.click("#change-password")
    p.fill("input[name=current_password]", TEST_PASSWORD)
    p.fill("input[name=new_password]", "short")
    p.fill("input[name=confirm_password]", "short")
    p.evaluate("document.querySelectorAll('input[minlength]').forEach(i => i.minLength = 0)")
    with p.expect_navigation():
        p.click("form[action='/account/password'] button[type=submit]")
    assert p.locator("[role=alert]").inner_text() == text(
        "ru", "A password needs at least %(limit)d characters.", limit=12
    )
    new = "a-much-better-password-42"
    p.fill("input[name=current_password]", TEST_PASSWORD)
    p.fill("input[name=new_password]", new)
    p.fill("input[name=confirm_password]", new)
    with p.expect_navigation():
        p.click("form[action='/account/password'] button[type=submit]")
    notice = p.locator("[data-testid=password-changed]").inner_text()
    assert notice == text("ru", "Your password was changed. Your other sessions were ended.")
    assert requests.get(server.url + "/api/auth/me", headers=other).status_code == 401
    assert p.request.get(server.url + "/api/auth/me").status == 200  # this one goes on
    trail = requests.get(
        server.url + "/api/audit", params={"actor": "pw-user"}, headers=server.headers
    ).text
    assert "user:password" in trail


# ---------------------------------------------------------------- 9, 10: upload, export
def test_upload_links_its_studies_reads_bare_files_and_cancels(
    server: LiveServer, open_page: OpenPage, tmp_path: Path
) -> None:
    page = open_as(open_page, server, "olga", "en", "/upload")
    p = page.page
    # dated outside January 2024: the date-filter test must not see it, whatever the order
    data = bare(make_instance(study_uid=UID + "9", PatientID="WT-BARE", StudyDate="20230601"))
    p.set_input_files(
        "#file-input",
        files=[{"name": "IM0001", "mimeType": "application/octet-stream", "buffer": data}],
    )
    p.locator("#results li[data-status=stored]").wait_for()
    link = p.locator("[data-testid=stored-studies] li").first
    assert link.get_attribute("data-study") == UID + "9"
    assert link.locator("a").first.get_attribute("href") == "/worklist?pid=WT-BARE"
    # cancel: big files queued on a slow line, the rest is not sent
    line = p.context.new_cdp_session(p)
    line.send("Network.enable")
    line.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 200_000},
    )
    big = [
        {"name": f"big{i}.dcm", "mimeType": "application/dicom", "buffer": b"\0" * 8_000_000}
        for i in range(4)
    ]
    p.set_input_files("#file-input", files=big)
    p.click("#cancel-upload")
    p.wait_for_function("document.querySelectorAll('#results [data-status=cancelled]').length >= 3")

    # opening the upload page is no dicom:store event; the upload is
    def store_paths() -> set[str]:
        events = requests.get(
            server.url + "/api/audit",
            params={"actor": "olga", "action": "dicom:store", "limit": 1000},
            headers=server.headers,
        ).json()["events"]
        return {e["details"].get("path") for e in events}

    assert "/upload/files" in wait_until(store_paths, 60)
    assert "/upload" not in store_paths()


def test_export_names_say_patient_date_and_modality(server: LiveServer) -> None:
    answer = requests.get(
        f"{server.url}/export/studies/{UID}2.zip", headers=server.headers, stream=True
    )
    disposition = answer.headers["content-disposition"]
    answer.close()
    assert 'filename="Ivanov_Petr_20240110_CT.zip"' in disposition
    assert unquote(disposition.split("UTF-8''")[1]) == "Иванов_Пётр_20240110_CT.zip"
    shared = requests.get(
        f"{server.url}/export/studies/{UID}2.zip?deidentify=yes",
        headers=server.headers,
        stream=True,
    )
    assert "Ivanov" not in shared.headers["content-disposition"]
    shared.close()


# ----------------------------------------------------------------- 5, 11: audit, sessions
def test_sessions_are_confirmed_noticed_and_described(
    server: LiveServer, open_page: OpenPage
) -> None:
    victim = open_as(open_page, server, "irina", "en", "/worklist")
    assert victim.page.url.endswith("/worklist")
    admin = open_as(open_page, server, "boss", "de", "/admin/users")
    p = admin.page
    row = p.locator("tr[data-session-user=irina]").first
    assert "Chrome" in row.locator("td.browser").inner_text()
    assert row.locator("td.last-seen").inner_text() != "—"
    questions: list[str] = []

    def answer(dialog) -> None:  # type: ignore[no-untyped-def]
        questions.append(dialog.message)
        dialog.dismiss() if len(questions) == 1 else dialog.accept()

    p.on("dialog", answer)
    row.locator("button.danger").click()  # dismissed: nothing happens
    asked = text("de", "End the session of %(name)s? They must log in again.", name="irina")
    assert questions == [asked]
    count = p.locator("tr[data-session-user=irina]").count()
    with p.expect_navigation():
        row.locator("button.danger").click()
    notice = p.locator("[data-testid=session-ended]").inner_text()
    ended = text("de", "The session of %(name)s was ended; they must log in again.", name="irina")
    assert notice == ended
    assert p.locator("tr[data-session-user=irina]").count() == count - 1


def test_the_audit_page_filters_by_patient_and_labelled_action(
    server: LiveServer, open_page: OpenPage
) -> None:
    operator = login(server.url, "olga")
    stored = requests.post(
        server.url + "/upload/files",
        data=make_instance(PatientID="WT-AUDIT", StudyDate="20230602"),  # not January 2024
        headers={**operator, "X-Filename": "audit.dcm", "Content-Type": "application/dicom"},
    )
    assert stored.status_code == 200, stored.text
    wait_until(
        lambda: requests.get(
            server.url + "/api/audit", params={"patient_id": "WT-AUDIT"}, headers=server.headers
        ).json()["total"],
        60,
    )
    admin = open_as(open_page, server, "boss", "ru", "/admin/audit", timezone_id="Europe/Moscow")
    p = admin.page
    options = p.locator("[data-testid=action-filter] option")
    labels = options.all_inner_texts()
    assert text("ru", "Report signed") in labels and text("ru", "Login") in labels
    p.select_option("[data-testid=action-filter]", "dicom:store")
    p.fill("input[name=patient_id]", "WT-AUDIT")
    with p.expect_navigation():
        p.click("form.search button[type=submit]")
    rows = p.locator("table.audit tbody tr")
    assert rows.count() == 1
    assert text("ru", "Images stored") in rows.first.locator("td.action").inner_text()
    when = rows.first.locator("td.when time")
    shown = when.inner_text()
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4}, \d\d:\d\d:\d\d", shown), shown  # local, no µs
    utc = when.get_attribute("datetime") or ""
    assert int(shown[-8:-6]) == (int(utc[11:13]) + 3) % 24  # Moscow is UTC+3
