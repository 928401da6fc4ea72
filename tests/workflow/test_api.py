"""``/api/worklist`` through HTTP: the front desk schedules, changes and cancels steps; the
role matrix; bad input and wrong states answer 400/404/409 and change nothing; every access
is audited with the patient id. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from klinika.audit import AuditFilter
from tests.workflow.conftest import CYRILLIC_NAME, Installation, step_body


def test_front_desk_schedules_changes_and_cancels_a_step(site: Installation) -> None:
    client, operator = site.client, site.headers("operator")
    created = client.post("/api/worklist", json=step_body(), headers=operator)
    assert created.status_code == 201, created.text
    step = created.json()
    assert step["status"] == "SCHEDULED" and step["patient_name"] == CYRILLIC_NAME
    assert step["study_instance_uid"].startswith("1.") and len(step["accession_number"]) == 16
    assert step["requested_procedure_id"] == step["accession_number"] and step["step_id"]
    step_id = step["step_id"]

    read = client.get(f"/api/worklist/{step_id}", headers=site.headers("doctor"))
    assert read.status_code == 200 and read.json() == step

    listed = client.get(
        "/api/worklist", params={"date_from": "20261201", "date_to": "20261203"}, headers=operator
    ).json()
    assert [s["step_id"] for s in listed] == [step_id]
    later = client.get("/api/worklist", params={"date_from": "20261203"}, headers=operator)
    assert later.json() == []
    by_name = client.get("/api/worklist", params={"patient": "иванова"}, headers=operator).json()
    assert [s["step_id"] for s in by_name] == [step_id]
    accession = {"accession": step["accession_number"], "patient_id": "PAT-17"}
    by_order = client.get("/api/worklist", params=accession, headers=operator).json()
    assert [s["step_id"] for s in by_order] == [step_id]
    other = client.get("/api/worklist", params={"patient_id": "PAT-1"}, headers=operator).json()
    assert other == []

    changed = client.put(
        f"/api/worklist/{step_id}",
        json=step_body(start_time="1015", status="ARRIVED"),
        headers=operator,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["start_time"] == "1015" and changed.json()["status"] == "ARRIVED"
    assert changed.json()["study_instance_uid"] == step["study_instance_uid"]
    assert changed.json()["accession_number"] == step["accession_number"]

    cancelled = client.delete(f"/api/worklist/{step_id}", headers=operator)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "DISCONTINUED"
    # a discontinued step cannot change or be cancelled again
    again = client.put(f"/api/worklist/{step_id}", json=step_body(), headers=operator)
    assert again.status_code == 409
    assert client.delete(f"/api/worklist/{step_id}", headers=operator).status_code == 409

    events, _ = site.runtime.audit.search(AuditFilter(patient_id="PAT-17"))
    seen = {(e.action, e.outcome) for e in events}
    assert {("workflow:schedule", "success"), ("workflow:read", "success")} <= seen
    assert ("workflow:schedule", "failure") in seen  # the refused change is recorded too
    assert all(e.study_uid == step["study_instance_uid"] for e in events if e.study_uid)


def test_the_role_matrix(site: Installation) -> None:
    client = site.client
    refused = client.post("/api/worklist", json=step_body(), headers=site.headers("doctor"))
    assert refused.status_code == 403
    with TestClient(site.app) as anonymous:
        assert anonymous.get("/api/worklist").status_code == 401
    made = client.post("/api/worklist", json=step_body(), headers=site.headers("admin"))
    assert made.status_code == 201
    step_id = made.json()["step_id"]
    doctor = site.headers("doctor")
    assert client.get("/api/worklist", headers=doctor).status_code == 200
    assert client.delete(f"/api/worklist/{step_id}", headers=doctor).status_code == 403
    assert client.get(f"/api/worklist/{step_id}", headers=doctor).json()["status"] == "SCHEDULED"


def test_bad_input_answers_400_and_stores_nothing(site: Installation) -> None:
    client, operator = site.client, site.headers("operator")
    for bad in (
        {"start_date": "20261332"},
        {"start_time": "2561"},
        {"modality": "ct!"},
        {"patient_id": ""},
        {"patient_sex": "X"},
        {"patient_name": "A\\B"},
        {"station_ae_title": "Станция"},
    ):
        answer = client.post("/api/worklist", json=step_body(**bad), headers=operator)
        assert answer.status_code in (400, 422), (bad, answer.text)
    assert client.get("/api/worklist", headers=operator).json() == []
    assert client.get("/api/worklist/nope", headers=operator).status_code == 404
    first = client.post("/api/worklist", json=step_body(accession_number="ACC1"), headers=operator)
    assert first.status_code == 201
    again = client.post("/api/worklist", json=step_body(accession_number="ACC1"), headers=operator)
    assert again.status_code == 409
    assert len(client.get("/api/worklist", headers=operator).json()) == 1


def test_openapi_describes_the_worklist(site: Installation) -> None:
    paths = site.client.get("/api/openapi.json", headers=site.headers("admin")).json()["paths"]
    assert {"get", "post"} <= set(paths["/api/worklist"])
    assert {"get", "put", "delete"} <= set(paths["/api/worklist/{step_id}"])
