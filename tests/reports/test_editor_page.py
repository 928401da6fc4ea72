"""The report editor in headless Chromium: a doctor inserts a template, writes (autosaved),
signs, amends and signs again, switches the page language; an operator reads the signed
version only. No CSP violation, no script error."""

from __future__ import annotations

import re
from pathlib import Path

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
    page.fill("#section-indication", "Toux persistante depuis trois semaines.")
    page.locator("[data-key-image]").first.check()
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


def test_the_key_image_picker_spreads_its_choices_over_each_series() -> None:
    from types import SimpleNamespace

    from klinika.web.pages.reports import key_image_choices

    ct = [SimpleNamespace(series_uid="ct", number=n) for n in range(300)]
    scout = [SimpleNamespace(series_uid="scout", number=n) for n in range(2)]
    chosen = key_image_choices(ct + scout, limit=20)  # type: ignore[arg-type]
    ct_numbers = [r.number for r in chosen if r.series_uid == "ct"]
    assert len(chosen) <= 20 and [r.number for r in chosen if r.series_uid == "scout"] == [0, 1]
    assert ct_numbers[0] < 30 and ct_numbers[-1] > 250  # head to feet, not the first slices
    assert key_image_choices([]) == []
