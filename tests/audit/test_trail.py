"""The audit trail: the right events for logins, reads and stores; tampering detected."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file

from klinika.audit import Actor, AuditFilter, event_hash, load_audit_key
from klinika.cli.auth_commands import register
from tests.auth.conftest import PASSWORDS, SECRET, Installation


def new_events(site: Installation, after: int) -> list[dict]:
    events, _ = site.runtime.audit.search(AuditFilter(), limit=1000)
    return [e.as_dict() for e in reversed(events) if e.seq > after]


def head(site: Installation) -> int:
    return site.runtime.audit.verify().head_seq


def stow_body(data: bytes, boundary: str = "b0undary") -> tuple[bytes, str]:
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def raw_sql(site: Installation, *statements: str) -> None:
    with site.runtime.database.writer.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def klinika_cli() -> click.Group:
    from klinika.cli.main import cli

    if "audit" not in cli.commands:
        register(cli)
    return cli


def test_login_search_and_store_leave_exactly_the_expected_events(site: Installation) -> None:
    start = head(site)
    client = TestClient(site.app)
    login = client.post(
        "/api/auth/login", json={"username": "operator", "password": PASSWORDS["operator"]}
    )
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()  # type: ignore[arg-type]
    body, content_type = stow_body(data)
    stored = client.post(
        "/dicom-web/studies", content=body, headers={**bearer, "Content-Type": content_type}
    )
    assert stored.status_code == 200, stored.text
    study_uid = stored.json()["00081199"]["Value"][0]["00081190"]["Value"][0].split("/")[-5]
    found = client.get(
        f"/dicom-web/studies?PatientID=1CT1&StudyInstanceUID={study_uid}", headers=bearer
    )
    assert found.status_code == 200 and len(found.json()) == 1
    events = new_events(site, start)
    summary = [(e["actor"], e["role"], e["action"], e["outcome"]) for e in events]
    assert summary == [
        ("operator", "operator", "auth:login", "success"),
        ("operator", "operator", "dicom:store", "success"),
        ("operator", "operator", "dicom:read", "success"),
    ]
    login_event, store_event, read_event = events
    assert login_event["source"] == "testclient"
    assert store_event["details"]["status"] == 200
    assert (read_event["study_uid"], read_event["patient_id"]) == (study_uid, "1CT1")
    assert read_event["details"]["path"] == "/dicom-web/studies"


def test_failures_denials_and_logouts_are_recorded(site: Installation) -> None:
    start = head(site)
    client = TestClient(site.app)
    client.post("/api/auth/login", json={"username": "doctor", "password": "wrong-one-here"})
    headers = site.headers("doctor")
    assert client.get("/dicom-web/studies/1.2.3/metadata", headers=headers).status_code == 404
    assert client.delete("/dicom-web/studies/1.2.3", headers=headers).status_code == 403
    client.post("/api/auth/logout", headers=headers)
    summary = [
        (e["actor"], e["action"], e["outcome"], e["study_uid"]) for e in new_events(site, start)
    ]
    assert summary == [
        ("doctor", "auth:login", "failure", None),
        ("doctor", "auth:login", "success", None),
        ("doctor", "dicom:read", "failure", "1.2.3"),
        ("doctor", "dicom:delete", "denied", "1.2.3"),
        ("doctor", "auth:logout", "success", None),
    ]


def test_user_changes_are_recorded(site: Installation) -> None:
    start = head(site)
    admin = site.headers("admin")
    site.client.post("/api/users", json={"username": "newbie", "role": "operator"}, headers=admin)
    site.client.patch("/api/users/newbie", json={"active": False}, headers=admin)
    actions = [(e["actor"], e["action"], e["details"].get("user")) for e in new_events(site, start)]
    assert actions[1:] == [("admin", "user:create", "newbie"), ("admin", "user:update", "newbie")]


def test_the_chain_verifies_and_each_hash_covers_its_fields(site: Installation) -> None:
    audit = site.runtime.audit
    first = audit.record(Actor("x", "system"), "test:one", "success", details={"n": 1})
    second = audit.record(Actor("y", "system"), "test:two", "success", patient_id="P1")
    assert second.prev_hash == first.hash
    key = load_audit_key(site.settings.audit_key_path)
    assert event_hash(second.__dict__, key) == second.hash
    assert event_hash(second.__dict__) != second.hash  # keyed: the unkeyed hash differs
    result = audit.verify()
    assert result.ok and result.checked == result.head_seq >= 2


def test_the_database_refuses_updates_and_deletes(site: Installation) -> None:
    site.runtime.audit.record(Actor("x", "system"), "test", "success")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        raw_sql(site, "UPDATE audit_events SET actor = 'mallory'")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        raw_sql(site, "DELETE FROM audit_events")


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
        "UPDATE audit_events SET details = '{}' WHERE seq = 3",
        "DELETE FROM audit_events WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)",
    ],
)
def test_an_edited_or_deleted_row_breaks_verify_and_the_cli_exits_non_zero(
    install: Callable[..., Installation], tamper: str
) -> None:
    site = install()
    for n in range(4):
        site.runtime.audit.record(Actor("x", "system"), "test", "success", details={"n": n})
    assert site.runtime.audit.verify().ok
    # what an attacker with database access does first: remove the append-only triggers
    drop = {
        "sqlite": ["DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete"],
        "postgresql": ["DROP TRIGGER audit_events_append_only ON audit_events"],
    }[site.runtime.database.dialect]
    raw_sql(site, *drop, tamper)
    result = site.runtime.audit.verify()
    assert not result.ok and result.problem
    runner = CliRunner()
    env = {
        "KLINIKA_JWT_SECRET": SECRET,
        "KLINIKA_FSYNC": "false",
        "KLINIKA_DATABASE_URL": site.settings.database_url,
    }
    data_dir = str(site.settings.data_dir)
    outcome = runner.invoke(klinika_cli(), ["--data-dir", data_dir, "audit", "verify"], env=env)
    assert outcome.exit_code == 1, outcome.output
    assert "BROKEN" in outcome.output


def test_cli_verify_passes_on_an_intact_trail(site: Installation) -> None:
    runner = CliRunner()
    env = {
        "KLINIKA_JWT_SECRET": SECRET,
        "KLINIKA_FSYNC": "false",
        "KLINIKA_DATABASE_URL": site.settings.database_url,
    }
    data_dir = str(site.settings.data_dir)
    outcome = runner.invoke(klinika_cli(), ["--data-dir", data_dir, "audit", "verify"], env=env)
    assert outcome.exit_code == 0 and "intact" in outcome.output


def test_admins_search_page_export_and_verify_over_http(site: Installation) -> None:
    audit = site.runtime.audit
    for n in range(5):
        audit.record(Actor("robot", "system"), "test:page", "success", patient_id=f"P{n}")
    admin = site.headers("admin")
    page = site.client.get(
        "/api/audit", params={"action": "test:page", "limit": 2, "offset": 1}, headers=admin
    ).json()
    assert page["total"] == 5
    assert [e["patient_id"] for e in page["events"]] == ["P3", "P2"]
    by_patient = site.client.get("/api/audit", params={"patient_id": "P0"}, headers=admin)
    assert [e["patient_id"] for e in by_patient.json()["events"]] == ["P0"]
    today = site.client.get(
        "/api/audit", params={"since": "2000-01-01", "until": "2999-12-31"}, headers=admin
    )
    assert today.json()["total"] >= 5
    bad = site.client.get("/api/audit", params={"since": "yesterday"}, headers=admin)
    assert bad.status_code == 400

    exported = site.client.get(
        "/api/audit/export", params={"format": "csv", "action": "test:page"}, headers=admin
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 5
    key = load_audit_key(site.settings.audit_key_path)
    for row in rows:
        fields = {k: (v or None) for k, v in row.items()}
        fields["seq"] = int(row["seq"])
        fields["details"] = row["details"]
        assert event_hash(fields, key) == row["hash"]
    as_json = site.client.get(
        "/api/audit/export", params={"format": "json", "action": "test:page"}, headers=admin
    )
    assert [e["patient_id"] for e in json.loads(as_json.text)] == [f"P{n}" for n in range(5)]
    assert site.client.get("/api/audit/verify", headers=admin).json()["ok"] is True
    doctor = site.headers("doctor")
    assert site.client.get("/api/audit", headers=doctor).status_code == 403


def test_many_reads_of_one_study_leave_one_event_per_session(site: Installation) -> None:
    client = TestClient(site.app)
    bearer = site.headers("doctor")
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()  # type: ignore[arg-type]
    body, content_type = stow_body(data)
    stored = client.post(
        "/dicom-web/studies",
        content=body,
        headers={**site.headers("operator"), "Content-Type": content_type},
    )
    url = stored.json()["00081199"]["Value"][0]["00081190"]["Value"][0]
    path = url[url.index("/dicom-web") :]
    start = head(site)
    for _ in range(5):
        assert client.get(path + "/metadata", headers=bearer).status_code == 200
        frame = client.get(path + "/frames/1", headers=bearer)
        assert frame.status_code == 200
    reads = [e for e in new_events(site, start) if e["action"] == "dicom:read"]
    assert len(reads) == 1
    assert reads[0]["actor"] == "doctor" and path.split("/")[3] == reads[0]["study_uid"]
    other_session = site.headers("doctor")
    client.get(path + "/metadata", headers=other_session)
    reads = [e for e in new_events(site, start) if e["action"] == "dicom:read"]
    assert len(reads) == 2
