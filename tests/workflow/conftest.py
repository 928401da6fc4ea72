"""Installations for the workflow tests (SQLite and PostgreSQL) and a step to schedule."""

from __future__ import annotations

from typing import Any

from tests.auth.conftest import Installation, install, site  # noqa: F401  (fixtures)

#: A Cyrillic patient, as the front desk types her.
CYRILLIC_NAME = "Иванова^Мария^Петровна"


def step_body(**overrides: Any) -> dict[str, Any]:
    """The JSON of one scheduled step for ``/api/worklist`` (today's CT on station CT01)."""
    body: dict[str, Any] = {
        "patient_id": "PAT-17",
        "patient_name": CYRILLIC_NAME,
        "patient_birth_date": "19800214",
        "patient_sex": "F",
        "requested_procedure_description": "КТ грудной клетки",
        "procedure_code_value": "CTCHEST",
        "procedure_code_scheme": "99KLINIKA",
        "procedure_code_meaning": "CT chest",
        "modality": "CT",
        "station_ae_title": "CT01",
        "start_date": "20261202",
        "start_time": "0930",
        "performing_physician": "Петров^Иван",
        "referring_physician": "Smith^John",
        "step_description": "CT chest without contrast",
    }
    body.update(overrides)
    return body
