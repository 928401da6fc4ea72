"""The console's schedule page in headless Chromium against a live server: the front desk
adds a procedure with a Cyrillic name, DCMTK ``findscu -W`` finds it on the modality
worklist, the desk edits and cancels it; the page in Russian; doctors see no form."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests

from tests.browser import OpenPage, log_in, screenshot
from tests.conftest import TEST_PASSWORD, LiveServer, start_server
from tests.dimse.conftest import DCMTK_ENV


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("schedule")
    live = start_server(
        root / "data",
        {"KLINIKA_MODALITIES": "CT01@127.0.0.1:11114/echo,worklist,mpps,commit"},
        users={"olga": "operator", "irina": "doctor"},
    )
    yield live
    live.stop()


def findscu(server: LiveServer, out: Path, *keys: str) -> list[pydicom.Dataset]:
    out.mkdir()
    args = [arg for key in keys for arg in ("-k", key)]
    done = subprocess.run(
        [
            "findscu",
            "-W",
            "-aet",
            "CT01",
            "-aec",
            "KLINIKA",
            "-X",
            "-od",
            str(out),
            *args,
            "127.0.0.1",
            server.env["KLINIKA_DIMSE_PORT"],
        ],
        capture_output=True,
        text=True,
        env=DCMTK_ENV,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def test_the_front_desk_schedules_a_procedure_the_modality_finds(
    server: LiveServer, open_page: OpenPage, tmp_path: Path
) -> None:
    page = open_page()
    log_in(page, server.url, "olga", TEST_PASSWORD, "/schedule/new")
    p = page.page
    p.fill("input[name=patient_id]", "DESK-1")
    p.fill("input[name=family_name]", "Кузнецова")
    p.fill("input[name=given_name]", "Анна Сергеевна")
    p.fill("input[name=patient_birth_date]", "1975-03-08")
    p.select_option("select[name=patient_sex]", "F")
    p.fill("input[name=requested_procedure_description]", "МРТ головного мозга")
    p.select_option("select[name=modality]", "MR")
    p.fill("input[name=station_ae_title]", "CT01")
    p.fill("input[name=start_date]", "2026-12-03")
    p.fill("input[name=start_time]", "11:45")
    p.fill("input[name=performing_physician]", "Орлов^Пётр")
    p.click("button.primary")
    p.wait_for_load_state()
    assert "/schedule?" in p.url and p.locator("[data-testid=saved]").count() == 1
    row = p.locator("table[data-testid=schedule] tbody tr").first
    assert "Кузнецова Анна Сергеевна" in row.inner_text()
    assert row.locator("[data-testid=status]").inner_text() == "Scheduled"
    step_id = row.get_attribute("data-step")
    assert step_id
    screenshot(page, "console-schedule")

    (answer,) = findscu(
        server,
        tmp_path / "found",
        "PatientName=Кузнецова*",
        "SpecificCharacterSet=ISO_IR 192",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261203",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    )
    assert str(answer.PatientName) == "Кузнецова^Анна^Сергеевна"
    assert answer.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID == step_id

    # the desk moves it to the afternoon and marks the patient arrived
    row.locator("a", has_text="Edit").click()
    p.wait_for_load_state()
    p.fill("input[name=start_time]", "14:00")
    p.select_option("select[name=status]", "ARRIVED")
    p.click("button.primary")
    p.wait_for_load_state()
    row = p.locator(f"tr[data-step='{step_id}']")
    assert "14:00" in row.inner_text()
    assert row.locator("[data-testid=status]").inner_text() == "Arrived"

    # cancelled: it leaves the modality's worklist
    p.once("dialog", lambda dialog: dialog.accept())
    row.locator("button", has_text="Cancel procedure").click()
    p.wait_for_load_state()
    row = p.locator(f"tr[data-step='{step_id}']")
    assert row.locator("[data-testid=status]").inner_text() == "Discontinued"
    assert findscu(server, tmp_path / "gone", "PatientName=Кузнецова*") == []


def test_the_page_in_russian_and_for_a_doctor(server: LiveServer, open_page: OpenPage) -> None:
    answer = requests.post(
        server.url + "/api/worklist",
        headers=server.headers,
        json={
            "patient_id": "RU-1",
            "patient_name": "Смирнов^Олег",
            "modality": "CT",
            "start_date": "20261204",
            "start_time": "0800",
        },
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    page = open_page(locale="ru-RU")
    log_in(page, server.url, "olga", TEST_PASSWORD, "/schedule?date_from=2026-12-04&lang=ru")
    p = page.page
    assert p.locator("h1").inner_text() == "Запланированные исследования"
    row = p.locator("table[data-testid=schedule] tbody tr").first
    assert "Смирнов Олег" in row.inner_text()
    assert row.locator("[data-testid=status]").inner_text() == "Запланировано"

    doctor = open_page()
    log_in(doctor, server.url, "irina", TEST_PASSWORD, "/schedule?date_from=2026-12-04")
    assert "Смирнов Олег" in doctor.page.locator("table").inner_text()
    assert doctor.page.locator("a", has_text="New procedure").count() == 0
    assert doctor.page.locator("nav a", has_text="Schedule").count() == 0
    cookies = {c["name"]: c["value"] for c in doctor.page.context.cookies()}
    form = requests.get(
        server.url + "/schedule/new", cookies=cookies, timeout=30, allow_redirects=False
    )
    assert form.status_code == 403
