"""The report editor in headless Chromium: a doctor inserts a template, writes (autosaved),
signs, amends and signs again, switches the page language; an operator reads the signed
version only. No CSP violation, no script error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import OpenPage, log_in, screenshot
from tests.conftest import TEST_PASSWORD
from tests.reports.conftest import LiveSite, stow_study


def test_a_doctor_writes_signs_and_amends_and_an_operator_reads(
    live: LiveSite, open_page: OpenPage
) -> None:
    study = stow_study(live.server)
    path = f"/reports/{study.study_uid}"
    doctor = open_page(locale="en-US")
    page = doctor.page
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(doctor, live.server.url, "irina", TEST_PASSWORD, path=path)
    assert page.url.endswith(path)
    assert "Иванова Мария Петровна" in page.locator("[data-testid=report-patient]").inner_text()
    message = page.locator("[data-testid=report-message]")
    expect(message).to_contain_text("No report yet")

    page.select_option("#report-language", "fr")
    page.select_option("#report-template", "CT")  # the study's modality is suggested too
    page.click("#insert-template")
    technique = page.locator("#section-technique")
    expect(technique).to_have_value(re.compile("."))
    assert "TDM multibarrette" in technique.input_value()
    inserted = {
        key: page.locator(f"#section-{key}").input_value()
        for key in ("technique", "findings", "impression")
    }
    page.click("#insert-template")  # twice: nothing is added again
    for key, text in inserted.items():
        assert page.locator(f"#section-{key}").input_value() == text
    assert technique.input_value().count("TDM multibarrette") == 1
    page.fill("#section-indication", "Toux persistante depuis trois semaines.")
    # every slice can be picked, with its number: the second of two
    expect(page.locator("[data-testid=key-slice-label]")).to_have_text(
        "Slice 1 of 2 · image number 1"
    )
    page.locator("#key-slice-number").fill("2")
    page.locator("#key-slice-number").dispatch_event("change")
    expect(page.locator("[data-testid=key-slice-label]")).to_have_text(
        "Slice 2 of 2 · image number 2"
    )
    page.click("#add-key-image")
    chosen = page.locator("[data-testid=key-image-list] li")
    expect(chosen).to_have_count(1)
    assert chosen.first.get_attribute("data-sop-instance-uid") == study.sop_uids[1]
    assert "slice 2 of 2" in chosen.first.inner_text()
    expect(page.locator("[data-testid=report-message]")).to_have_text("Draft saved")
    assert page.locator("[data-testid=report-status]").inner_text() == "Draft"

    page.click("#sign-report")
    expect(page.locator("[data-testid=report-status]")).to_have_text("Final")
    assert technique.get_attribute("readonly") is not None  # signed: read-only
    with page.expect_download() as download:
        page.click("#download-pdf")
    pdf = download.value
    # report-<patient>-<date>-v<n>.pdf, the name as written (Cyrillic kept)
    name = pdf.suggested_filename
    assert re.fullmatch(r"report-[^-]+-\d{8}-v1\.pdf", name), name
    assert Path(pdf.path()).read_bytes().startswith(b"%PDF-")

    assert page.locator("#amend-report").is_disabled()  # no reason, no amendment
    page.fill("#amend-reason", "Précision de la conclusion")
    page.click("#amend-report")
    expect(page.locator("[data-testid=report-version]")).to_have_text("Version 2")
    page.fill("#section-impression", "Pas de signe de pathologie aiguë. Contrôle dans 6 mois.")
    page.click("#save-report")
    expect(page.locator("[data-testid=report-message]")).to_have_text("Draft saved")
    page.click("#sign-report")
    expect(page.locator("[data-testid=report-status]")).to_have_text("Amended")
    assert page.locator("[data-testid=report-versions] li").count() == 2
    page.locator("[data-testid=report-versions] li").first.locator("button").click()
    expect(page.locator("#version-preview-body")).to_contain_text("Toux persistante")
    screenshot(doctor, "report-editor-en")

    with page.expect_navigation():
        page.select_option("#language-select", "de")
    expect(page.locator("[data-testid=report-status]")).to_have_text("Berichtigt")
    assert page.locator("label[for=section-findings]").inner_text() == "Befund"
    assert page.locator("#sign-report").inner_text() == "Unterzeichnen"
    assert page.locator("#section-impression").input_value().startswith("Pas de signe")
    screenshot(doctor, "report-editor-de")
    assert doctor.errors == [] and doctor.csp_violations() == []

    operator = open_page(locale="ru-RU")
    log_in(operator, live.server.url, "oleg", TEST_PASSWORD, path=path + "?lang=ru")
    reader = operator.page
    expect(reader.locator("[data-testid=report-status]")).to_have_text("Исправлен")
    assert reader.locator("#sign-report").count() == 0
    # the front desk downloads and prints a signed report's PDF (issue 16, point 3)
    href = reader.locator("#download-pdf").get_attribute("href")
    pdf = reader.request.get(live.server.url + href)
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF-")
    assert reader.locator("#print-pdf").get_attribute("target") == "_blank"
    assert reader.locator("#section-impression").get_attribute("readonly") is not None
    assert "Контроль" not in reader.locator("#section-impression").input_value()
    assert reader.locator("#section-impression").input_value().startswith("Pas de signe")
    assert operator.errors == [] and operator.csp_violations() == []


def test_an_operator_sees_no_draft_and_a_conflict_stops_autosave(
    live: LiveSite, open_page: OpenPage
) -> None:
    import requests

    from tests.conftest import login

    study = stow_study(live.server)
    path = f"/reports/{study.study_uid}?lang=en"  # irina chose German above
    api = f"{live.server.url}/api/studies/{study.study_uid}/report"
    headers = login(live.server.url, "irina")
    requests.put(api, json={"sections": {"findings": "v1"}}, headers=headers, timeout=30)

    operator = open_page(locale="en-US")
    log_in(operator, live.server.url, "oleg", TEST_PASSWORD, path=path)
    expect(operator.page.locator("[data-testid=report-message]")).not_to_be_empty()
    assert "no signed report" in operator.page.locator("[data-testid=report-message]").inner_text()
    assert operator.page.locator("#section-findings").input_value() == ""

    doctor = open_page(locale="en-US")
    log_in(doctor, live.server.url, "irina", TEST_PASSWORD, path=path)
    page = doctor.page
    expect(page.locator("#section-findings")).to_have_value("v1")
    # someone else saves meanwhile: this page's revision is stale
    requests.put(api, json={"revision": 1, "sections": {"findings": "elsewhere"}}, headers=headers)
    page.fill("#section-findings", "mine")
    expect(page.locator("#reload-report")).to_be_visible()
    expect(page.locator("[data-testid=report-message]")).to_contain_text("changed by someone else")
    page.click("#reload-report")
    expect(page.locator("#section-findings")).to_have_value("elsewhere")
    assert doctor.errors == [] and doctor.csp_violations() == []


def test_the_key_image_picker_offers_every_slice_of_every_series_with_its_number() -> None:
    import json
    from types import SimpleNamespace

    from klinika.web.pages.reports import key_image_series

    def record(series: str, sop: str, number: int, frames: int = 1) -> SimpleNamespace:
        metadata = {"00200013": {"vr": "IS", "Value": [number]}}
        metadata["00200011"] = {"vr": "IS", "Value": [7 if series == "ct" else 1]}
        return SimpleNamespace(
            series_uid=series,
            sop_instance_uid=sop,
            number_of_frames=frames,
            metadata_json=json.dumps(metadata),
        )

    ct = [record("ct", f"ct{n}", n) for n in range(1, 301)]
    cine = [record("us", "cine", 1, frames=3)]
    series = key_image_series(ct + cine)  # type: ignore[arg-type]
    assert [s["number"] for s in series] == [7, 1]
    assert len(series[0]["slices"]) == 300  # not a sample: the lesion's slice is there
    assert series[0]["slices"][150] == ["ct151", 1, 151]
    assert series[1]["slices"] == [["cine", 1, 1], ["cine", 2, 1], ["cine", 3, 1]]
    assert key_image_series([]) == []


PRINT_WORDS = {
    "en": ("Print", "Findings"),
    "ru": ("Печать", "Описание"),
    "es": ("Imprimir", "Hallazgos"),
    "fr": ("Imprimer", "Résultats"),
    "de": ("Drucken", "Befund"),
}


@pytest.mark.parametrize("language", sorted(PRINT_WORDS))
def test_the_front_desk_prints_a_signed_report_without_the_console_chrome(
    live: LiveSite, open_page: OpenPage, language: str
) -> None:
    import requests

    from tests.conftest import login

    study = stow_study(live.server)
    api = f"{live.server.url}/api/studies/{study.study_uid}/report"
    doctor = login(live.server.url, "irina")
    findings = "Лёгкие без очаговых изменений.\nSin derrame. Keine Läsion."
    saved = requests.put(api, json={"sections": {"findings": findings}}, headers=doctor, timeout=30)
    requests.post(
        api + "/sign", json={"revision": saved.json()["revision"]}, headers=doctor, timeout=120
    ).raise_for_status()

    operator = open_page(locale="en-US")
    log_in(
        operator,
        live.server.url,
        "oleg",
        TEST_PASSWORD,
        path=f"/reports/{study.study_uid}?lang={language}",
    )
    page = operator.page
    expect(page.locator("#section-findings")).to_have_value(findings)
    button_word, heading = PRINT_WORDS[language]
    page.evaluate("window.print = () => { window.dispatchEvent(new Event('beforeprint')); }")
    page.get_by_role("button", name=button_word, exact=True).click()
    page.emulate_media(media="print")
    printed = page.locator("[data-testid=report-print]")
    expect(printed).to_be_visible()
    assert printed.locator("h2").all_inner_texts() == [heading]
    assert printed.locator("p").inner_text() == findings  # the whole text, line breaks kept
    for chrome in (
        ".topbar",
        ".footer",
        ".report-versions",
        "#section-findings",
        "[data-testid=print-report]",
    ):
        expect(page.locator(chrome)).to_be_hidden()
    expect(page.locator("[data-testid=report-patient]")).to_contain_text("Иванова Мария")
    assert operator.errors == [] and operator.csp_violations() == []
