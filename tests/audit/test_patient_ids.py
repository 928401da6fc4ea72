"""Every audit event about a patient names the patient and the study: uploads, STOW, reads,
reports, exports, deletes and refusals."""

from __future__ import annotations

from pathlib import Path

from pydicom.data import get_testdata_file

from klinika.audit import AuditFilter
from tests.audit.test_trail import head, new_events, stow_body
from tests.auth.conftest import Installation

CT = Path(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
MR = Path(get_testdata_file("MR_small.dcm"))  # type: ignore[arg-type]


def subjects(site: Installation, after: int, action: str) -> list[tuple[str | None, str | None]]:
    return [
        (e["study_uid"], e["patient_id"]) for e in new_events(site, after) if e["action"] == action
    ]


def test_upload_stow_read_report_export_and_delete_events_name_the_patient(
    site: Installation,
) -> None:
    client = site.client
    operator, doctor, admin = (site.headers(r) for r in ("operator", "doctor", "admin"))
    start = head(site)

    uploaded = client.post(
        "/upload/files", content=CT.read_bytes(), headers={**operator, "X-Filename": "ct.dcm"}
    )
    assert uploaded.status_code == 200, uploaded.text
    study = uploaded.json()["results"][0]["study_uid"]
    body, content_type = stow_body(MR.read_bytes())
    stored = client.post(
        "/dicom-web/studies", content=body, headers={**operator, "Content-Type": content_type}
    )
    assert stored.status_code == 200
    mr_study = stored.json()["00081190"]["Value"][0].rsplit("/", 1)[-1]
    patient_ct, patient_mr = "1CT1", "4MR1"
    assert subjects(site, start, "dicom:store") == [(study, patient_ct), (mr_study, patient_mr)]

    assert client.get(f"/dicom-web/studies/{study}/metadata", headers=doctor).status_code == 200
    report = {"revision": None, "language": "en", "template": "CT", "sections": {"findings": "ok"}}
    saved = client.put(f"/api/studies/{study}/report", headers=doctor, json=report)
    assert saved.status_code == 200, saved.text
    assert client.get(f"/export/studies/{study}.zip", headers=doctor).status_code == 200
    assert client.delete(f"/dicom-web/studies/{study}", headers=doctor).status_code == 403
    assert client.delete(f"/dicom-web/studies/{study}", headers=admin).status_code == 204

    for action in ("dicom:read", "report:save", "dicom:export"):
        assert subjects(site, start, action) == [(study, patient_ct)], action
    deletes = [
        (e["outcome"], e["study_uid"], e["patient_id"])
        for e in new_events(site, start)
        if e["action"] == "dicom:delete"
    ]
    assert deletes == [("denied", study, patient_ct), ("success", study, patient_ct)]
    # and the trail finds them by patient, as an auditor asks
    events, _ = site.runtime.audit.search(AuditFilter(patient_id=patient_ct))
    assert {"dicom:store", "dicom:read", "report:save", "dicom:export", "dicom:delete"} <= {
        e.action for e in events
    }


#: Events about no patient: the session, the chain's own, and searches over several studies.
_NOT_ABOUT_A_PATIENT = {"auth:login", "auth:logout", "audit:keyed-chain", "audit:read"}


def test_every_door_and_refusal_names_the_patient(site: Installation) -> None:
    """Walk the doors that touch one patient's data, as each role would, including the
    refused ones, and the study management operations: every event names the patient."""
    client = site.client
    operator, doctor, admin = (site.headers(r) for r in ("operator", "doctor", "admin"))
    uploaded = client.post(
        "/upload/files", content=CT.read_bytes(), headers={**operator, "X-Filename": "ct.dcm"}
    )
    study = uploaded.json()["results"][0]["study_uid"]
    series = site.runtime.archive.study_series(study)[0]
    start = head(site)
    doors = [
        ("GET", f"/dicom-web/studies/{study}", doctor, 200),
        ("GET", f"/dicom-web/studies/{study}/series/{series}/metadata", operator, 200),
        ("GET", f"/export/studies/{study}.zip?deidentify=yes", doctor, 200),
        ("GET", f"/export/studies/{study}/images.zip?format=png", operator, 200),
        ("PUT", f"/api/studies/{study}/report", operator, 403),
        ("DELETE", f"/dicom-web/studies/{study}/series/{series}", operator, 403),
        ("PATCH", f"/api/studies/{study}", doctor, 403),
        ("POST", f"/api/studies/{study}/split", operator, 403),
        ("DELETE", f"/api/studies/{study}/series/{series}", doctor, 403),
    ]
    for method, path, headers, status in doors:
        body = {"changes": {"StudyDescription": "x"}} if method == "PATCH" else None
        if path.endswith("/split"):
            body = {"series_uids": [series]}
        answer = client.request(method, path, headers=headers, json=body)
        assert answer.status_code == status, (method, path, answer.text)
    report = {"revision": None, "language": "en", "template": "CT", "sections": {"findings": "ok"}}
    saved = client.put(f"/api/studies/{study}/report", headers=doctor, json=report)
    assert saved.status_code == 200, saved.text
    revision = {"revision": saved.json()["revision"]}
    signed = client.post(f"/api/studies/{study}/report/sign", headers=doctor, json=revision)
    assert signed.status_code == 200, signed.text
    assert client.get(f"/api/studies/{study}/report/pdf", headers=doctor).status_code == 200
    edited = client.patch(
        f"/api/studies/{study}", headers=admin, json={"changes": {"StudyDescription": "Head"}}
    )
    assert edited.status_code == 200, edited.text
    renamed = client.patch(
        "/api/patients/1CT1", headers=admin, json={"changes": {"PatientID": "1CT1-NEW"}}
    )
    assert renamed.status_code == 200, renamed.text
    assert client.get(f"/dicom-web/studies/{study}/metadata", headers=admin).status_code == 200
    assert client.delete(f"/api/studies/{study}/series/{series}", headers=admin).status_code == 200
    site.runtime.audit.flush()

    walked = [e for e in new_events(site, start) if e["action"] not in _NOT_ABOUT_A_PATIENT]
    actions = {e["action"] for e in walked}
    assert {
        "dicom:read",
        "dicom:export",
        "report:save",
        "report:sign",
        "report:pdf",
        "study:update",
        "patient:update",
        "series:delete",
    } <= actions, actions
    assert {e["outcome"] for e in walked} >= {"denied", "success"}
    for event in walked:
        assert event["patient_id"], event
        assert event["study_uid"] == study, event
    # the patient's new ID from the rename on: events name the new one
    renamed_at = next(e["seq"] for e in walked if e["action"] == "patient:update")
    assert {e["patient_id"] for e in walked if e["seq"] > renamed_at} == {"1CT1-NEW"}
    assert {e["patient_id"] for e in walked if e["seq"] < renamed_at} == {"1CT1"}
