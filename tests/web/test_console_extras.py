"""The console's extras in headless Chromium against a live server: the tag browser (every
attribute, nested sequences, private tags, bulk data with its size; audited), labels on studies
(add, filter, remove; audited), the light theme, and printing the worklist without the chrome."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from playwright.sync_api import expect
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.browser import OpenPage, log_in, screenshot
from tests.conftest import TEST_PASSWORD, LiveServer, login, start_server
from tests.dicomweb.conftest import stow
from tests.factories import make_instance

LANGUAGES = ("en", "ru", "es", "fr", "de")


@dataclass(frozen=True)
class Study:
    study_uid: str
    series_uid: str
    sop_uid: str


def tagged_instance(study_uid: str, series_uid: str, sop_uid: str, **attributes: str) -> bytes:
    """A 64×64 CT with a private block (GE's, named in pydicom's private dictionary) and a
    two-level sequence."""
    data = make_instance(
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        rows=64,
        columns=64,
        **attributes,
    )
    dataset = dcmread(io.BytesIO(data))
    block = dataset.private_block(0x0009, "GEMS_IDEN_01", create=True)
    block.add_new(0x01, "LO", "GE_GENESIS_FF")
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-D3000", "SRT", "Chest"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "113691", "DCM", "IHE"
    item.AnatomicRegionModifierSequence = [code]
    dataset.AnatomicRegionSequence = [item]
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def new_study(server: LiveServer, name: str = "Петров^Пётр", pid: str = "TAG-1") -> Study:
    study = Study(generate_uid(), generate_uid(), generate_uid())
    data = tagged_instance(
        study.study_uid, study.series_uid, study.sop_uid, PatientName=name, PatientID=pid
    )
    assert stow(server, [data]).status_code == 200
    return study


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("console-extras") / "data",
        users={"irina": "doctor", "olga": "operator"},
    )
    yield live
    live.stop()


def audit_events(server: LiveServer, action: str, study_uid: str) -> list[dict[str, object]]:
    answer = requests.get(
        f"{server.url}/api/audit",
        params={"action": action, "study_uid": study_uid},
        headers=server.headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    events: list[dict[str, object]] = answer.json()["events"]
    return events


def test_the_tag_browser_shows_every_attribute_nested_private_and_bulk_and_is_audited(
    server: LiveServer, open_page: OpenPage
) -> None:
    study = new_study(server)
    browser = open_page()
    page = browser.page
    log_in(browser, server.url, "olga", TEST_PASSWORD, path="/worklist?pid=TAG-1")
    with page.expect_navigation():
        page.locator(f"tr[data-study='{study.study_uid}'] a", has_text="Tags").click()
    assert page.url.endswith(f"/studies/{study.study_uid}/tags")
    table = page.locator("[data-testid=tags]")
    name = table.locator("tr[data-tag='(0010,0010)']")
    expect(name).to_contain_text("Петров^Пётр")
    assert "Patient's Name" in name.inner_text() and "PN" in name.inner_text()
    sop_class = table.locator("tr[data-tag='(0008,0016)']").inner_text()
    assert "CT Image Storage" in sop_class  # UIDs are named
    # the sequence, its item, and the item's own sequence, each a level deeper
    region = table.locator("tr[data-tag='(0008,2218)']")
    assert region.get_attribute("data-depth") == "0" and "1 item" in region.inner_text()
    assert table.locator("tr.tag-item").first.inner_text().strip() == "Item 1"
    meanings = table.locator("tr[data-tag='(0008,0104)']")
    assert meanings.count() == 2
    assert [meanings.nth(i).get_attribute("data-depth") for i in range(2)] == ["2", "4"]
    assert "Chest" in meanings.nth(1).inner_text()
    # the private block: its creator and its element, named from pydicom's private dictionary
    creator = table.locator("tr[data-tag='(0009,0010)']")
    assert "Private Creator" in creator.inner_text() and "GEMS_IDEN_01" in creator.inner_text()
    private = table.locator("tr[data-tag='(0009,1001)']")
    assert "[GEMS_IDEN_01] Full fidelity" in private.inner_text()
    assert "GE_GENESIS_FF" in private.inner_text()
    # pixel data: a link to the bulk data with its size (64 × 64 × 2 bytes)
    pixels = table.locator("tr[data-tag='(7FE0,0010)']")
    assert "8,192 B" in pixels.inner_text()
    link = pixels.locator("[data-testid=bulk-link]").get_attribute("href")
    assert link is not None and link.endswith(
        f"/dicom-web/studies/{study.study_uid}/series/{study.series_uid}"
        f"/instances/{study.sop_uid}/bulk/pixeldata"
    )
    # the filter keeps the rows that match
    page.fill("[data-testid=tag-filter]", "modality")
    expect(table.locator("tr[data-tag='(0008,0060)']")).to_be_visible()
    expect(name).to_be_hidden()
    screenshot(browser, "tag-browser")
    assert browser.errors == [] and browser.csp_violations() == []

    events = audit_events(server, "dicom:tags", study.study_uid)
    assert events and events[0]["sop_instance_uid"] == study.sop_uid
    assert events[0]["actor"] == "olga" and events[0]["patient_id"] == "TAG-1"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_tag_browser_speaks_each_language_and_every_role_may_open_it(
    server: LiveServer, language: str
) -> None:
    study = new_study(server, pid=f"TAG-{language}")
    words = {
        "en": "DICOM tags",
        "ru": "Теги DICOM",
        "es": "Etiquetas DICOM",
        "fr": "Balises DICOM",
        "de": "DICOM-Tags",
    }
    for user in ("irina", "olga"):
        page = requests.get(
            f"{server.url}/studies/{study.study_uid}/tags",
            params={"lang": language},
            headers=login(server.url, user),
            timeout=30,
        )
        assert page.status_code == 200 and f"<h1>{words[language]}" in page.text
    missing = requests.get(
        f"{server.url}/studies/1.2.3.999/tags", headers=server.headers, timeout=30
    )
    assert missing.status_code == 404


def test_labels_are_added_filtered_by_and_removed_and_each_change_is_audited(
    server: LiveServer, open_page: OpenPage
) -> None:
    labelled = new_study(server, name="Labelled^Anna", pid="LAB-1")
    other = new_study(server, name="Other^Boris", pid="LAB-2")
    browser = open_page()
    page = browser.page
    log_in(browser, server.url, "irina", TEST_PASSWORD, path="/worklist?name=Labelled")
    row = page.locator(f"tr[data-study='{labelled.study_uid}']")
    row.locator(".label-add summary").click()
    row.locator(".label-add input[name=label]").fill("  срочно  ")
    with page.expect_navigation():
        row.locator(".label-add button[type=submit]").click()
    assert "name=Labelled" in page.url  # back to the same worklist
    chip = page.locator(f"tr[data-study='{labelled.study_uid}'] .label-chip")
    expect(chip).to_have_text("срочно×")
    # an invalid label is refused with a message
    row = page.locator(f"tr[data-study='{labelled.study_uid}']")
    row.locator(".label-add summary").click()
    row.locator(".label-add input[name=label]").fill("<b>")
    with page.expect_navigation():
        row.locator(".label-add button[type=submit]").click()
    expect(page.locator("p.error[role=alert]")).to_contain_text("1 to 32")

    # the worklist filtered by the label shows the labelled study only
    page.goto(f"{server.url}/worklist?name=*")
    page.select_option("[data-testid=label-filter]", "срочно")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_load_state()
    expect(page.locator("[data-testid=count]")).to_contain_text("1 study")
    assert page.locator(f"tr[data-study='{labelled.study_uid}']").count() == 1
    assert page.locator(f"tr[data-study='{other.study_uid}']").count() == 0
    screenshot(browser, "worklist-labels")
    # removing it: the chip goes, the filter finds nothing
    with page.expect_navigation():
        page.locator(f"tr[data-study='{labelled.study_uid}'] .label-remove").click()
    expect(page.locator("[data-testid=count]")).to_contain_text("0 studies")
    assert browser.errors == [] and browser.csp_violations() == []

    events = audit_events(server, "study:label", labelled.study_uid)
    details = [(event["outcome"], event["details"]) for event in events]
    assert ("success", {"added": "срочно", "changed": True}) in details
    assert ("success", {"removed": "срочно", "changed": True}) in details
    assert any(outcome == "failure" for outcome, _ in details)
    assert all(event["actor"] == "irina" for event in events)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_label_column_theme_and_print_buttons_speak_each_language(
    server: LiveServer, language: str
) -> None:
    words = {
        "en": ("Labels", "Light theme", "Print"),
        "ru": ("Метки", "Светлая тема", "Печать"),
        "es": ("Etiquetas", "Tema claro", "Imprimir"),
        "fr": ("Étiquettes", "Thème clair", "Imprimer"),
        "de": ("Labels", "Helles Design", "Drucken"),
    }
    page = requests.get(
        f"{server.url}/worklist", params={"lang": language}, headers=server.headers, timeout=30
    )
    assert page.status_code == 200
    for word in words[language]:
        assert word in page.text, (language, word)


def test_the_light_theme_is_a_preference_kept_across_pages(
    server: LiveServer, open_page: OpenPage
) -> None:
    browser = open_page()
    page = browser.page
    log_in(browser, server.url, "olga", TEST_PASSWORD, path="/worklist")
    html = page.locator("html")
    assert html.get_attribute("data-theme") == "dark"
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    with page.expect_navigation():
        page.select_option("[data-testid=theme-select]", "light")
    assert page.url.endswith("/worklist")
    assert html.get_attribute("data-theme") == "light"
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark == "rgb(5, 7, 13)" and light == "rgb(244, 246, 250)"
    page.goto(f"{server.url}/account/password")
    assert page.locator("html").get_attribute("data-theme") == "light"
    screenshot(browser, "worklist-light")
    with page.expect_navigation():
        page.select_option("[data-testid=theme-select]", "dark")
    assert page.locator("html").get_attribute("data-theme") == "dark"
    assert browser.errors == [] and browser.csp_violations() == []


def test_the_worklist_prints_what_is_on_screen_without_the_chrome(
    server: LiveServer, open_page: OpenPage
) -> None:
    study = new_study(server, name="Print^Paula", pid="PRN-1")
    browser = open_page()
    page = browser.page
    log_in(browser, server.url, "irina", TEST_PASSWORD, path="/worklist?name=Print*")
    page.evaluate("window.print = () => { window.klinikaPrinted = true; }")
    page.click(".print-button")
    assert page.evaluate("window.klinikaPrinted") is True
    page.emulate_media(media="print")
    for chrome in (".topbar", "form[role=search]", ".footer", ".print-button"):
        expect(page.locator(chrome)).to_be_hidden()
    row = page.locator(f"tr[data-study='{study.study_uid}']")
    expect(row).to_be_visible()
    assert "Print Paula" in row.inner_text()
    expect(row.locator(".actions")).to_be_hidden()
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(255, 255, 255)"
    page.pdf(path=str(screenshot_path("worklist-print.pdf")))
    assert browser.errors == [] and browser.csp_violations() == []


def screenshot_path(name: str) -> object:
    from tests.browser import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
