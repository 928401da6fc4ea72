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
