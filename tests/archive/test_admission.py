"""Content checks at ingest: documents only of the types their IOD defines, derived objects
that are what their class says, and one patient per study."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import BasicTextSRStorage, generate_uid

from klinika.archive import Archive
from tests.audit.test_trail import stow_body
from tests.auth.conftest import Installation
from tests.conftest import SAMPLES
from tests.factories import make_instance

PDF = SAMPLES / "generated" / "encapsulated_pdf.dcm"
SR = SAMPLES / "highdicom" / "sr_document.dcm"
SEG = SAMPLES / "highdicom" / "seg_image_ct_binary.dcm"


def rewritten(path: Path, **attributes: object) -> bytes:
    """A sample with new UIDs (a fresh instance) and the given attributes changed."""
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    if "SOPClassUID" in attributes:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def html_document() -> bytes:
    page = b"<html><body><form action='https://evil.example/'>Session expired</form></body></html>"
    return rewritten(
        PDF,
        MIMETypeOfEncapsulatedDocument="text/html",
        EncapsulatedDocument=page + b" " * (len(page) % 2),
        EncapsulatedDocumentLength=len(page),
    )


def stow(site: Installation, role: str, *instances: bytes, study: str = "") -> dict:
    boundary = "b0undary"
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
            for data in instances
        )
        + f"--{boundary}--\r\n".encode()
    )
    _, content_type = stow_body(b"", boundary)
    response = site.client.post(
        f"/dicom-web/studies{'/' + study if study else ''}",
        content=body,
        headers={**site.headers(role), "Content-Type": content_type},
    )
    return {"status": response.status_code, **response.json()}


def failure_reasons(answer: dict) -> list[int]:
    return [item["00081197"]["Value"][0] for item in answer.get("00081198", {}).get("Value", [])]


def test_an_html_encapsulated_document_is_refused(archive: Archive) -> None:
    outcome = archive.store(html_document())
    assert (outcome.status, outcome.reason) == ("rejected", "unsupported-document")
    assert "text/html" in (outcome.message or "") and "application/pdf" in (outcome.message or "")
    assert list(archive.blobs.blob_keys()) == []  # no trace
    assert archive.store(rewritten(PDF)).status == "stored"  # a PDF is what the IOD defines


def test_a_document_hidden_in_another_sop_class_is_refused(archive: Archive) -> None:
    outcome = archive.store(rewritten(PDF, SOPClassUID="1.2.840.10008.5.1.4.1.1.7"))
    assert (outcome.status, outcome.reason) == ("rejected", "unsupported-document")


def test_stow_of_an_html_document_answers_409_with_a_failure_reason(site: Installation) -> None:
    answer = stow(site, "operator", html_document())
    assert answer["status"] == 409
    assert failure_reasons(answer) == [0xC000]
    assert "text/html" in answer["00000902"]["Value"][0]


def test_a_ct_image_relabelled_as_basic_text_sr_is_refused_for_a_doctor(
    site: Installation,
) -> None:
    relabelled = make_instance(SOPClassUID=BasicTextSRStorage, Modality="SR")
    answer = stow(site, "doctor", relabelled)
    assert answer["status"] == 409 and failure_reasons(answer) == [0x0124]
    assert "pixel data" in answer["00000902"]["Value"][0]
    # what a doctor may store: real derived objects
    stored = stow(site, "doctor", rewritten(SR), rewritten(SEG))
    assert stored["status"] in (200, 202) and not failure_reasons(stored), stored


@pytest.mark.parametrize(
    ("path", "changes", "words"),
    [
        (SR, {"ValueType": "TEXT"}, "SR document content"),
        (SEG, {"SegmentSequence": []}, "Segment Sequence"),
    ],
)
def test_derived_objects_without_their_content_are_refused_for_a_doctor(
    archive: Archive, path: Path, changes: dict, words: str
) -> None:
    (outcome,) = archive.store_many([rewritten(path, **changes)], derived_only=True)
    assert (outcome.status, outcome.reason) == ("rejected", "not-authorized")
    assert words in (outcome.message or "")


def test_an_operator_may_still_store_images(archive: Archive) -> None:
    assert archive.store_many([make_instance()], derived_only=False)[0].status == "stored"
    (outcome,) = archive.store_many([make_instance()], derived_only=True)
    assert (outcome.status, outcome.reason) == ("rejected", "not-authorized")


def test_an_sr_naming_another_patient_cannot_join_an_existing_study(site: Installation) -> None:
    study, series = generate_uid(), generate_uid()
    ct = make_instance(study_uid=study, series_uid=series, PatientID="P-1", PatientName="Doe^Jane")
    assert stow(site, "operator", ct)["status"] == 200
    foreign = rewritten(SR, StudyInstanceUID=study, SeriesInstanceUID=series, PatientID="EVIL-1")
    answer = stow(site, "admin", foreign)
    assert answer["status"] == 409 and failure_reasons(answer) == [0xA900]
    assert "EVIL-1" in answer["00000902"]["Value"][0]
    renamed = rewritten(SR, StudyInstanceUID=study, PatientID="P-1", PatientName="Roe^Richard")
    assert failure_reasons(stow(site, "doctor", renamed)) == [0xA900]
    same = rewritten(SR, StudyInstanceUID=study, PatientID="P-1", PatientName="DOE^JANE^^")
    assert stow(site, "doctor", same)["status"] == 200  # the same name, written otherwise
    metadata = site.client.get(
        f"/dicom-web/studies/{study}/metadata", headers=site.headers("doctor")
    ).json()
    assert {item["00100020"]["Value"][0] for item in metadata} == {"P-1"}


def test_two_patients_in_one_batch_of_a_new_study_are_told_apart(archive: Archive) -> None:
    study = generate_uid()
    first = make_instance(study_uid=study, PatientID="A", PatientName="A^A")
    second = make_instance(study_uid=study, PatientID="B", PatientName="B^B")
    outcomes = archive.store_many([first, second])
    assert [(o.status, o.reason) for o in outcomes] == [
        ("stored", None),
        ("rejected", "patient-mismatch"),
    ]
    assert len(list(archive.blobs.blob_keys())) == 1


def test_a_migration_may_allow_patient_mismatches(archive: Archive) -> None:
    archive.ingest.allow_patient_mismatch = True
    study = generate_uid()
    first = make_instance(study_uid=study, PatientID="A")
    second = make_instance(study_uid=study, PatientID="B")
    assert [o.status for o in archive.store_many([first, second])] == ["stored", "stored"]


def test_stored_documents_are_served_in_a_sandbox(site: Installation) -> None:
    pdf = pydicom.dcmread(PDF).EncapsulatedDocument.rstrip(b"\0") + b"\n%" + b"x" * 8191
    document = rewritten(PDF, EncapsulatedDocument=pdf, EncapsulatedDocumentLength=len(pdf))
    answer = stow(site, "operator", document)
    assert answer["status"] == 200
    instance_url = answer["00081199"]["Value"][0]["00081190"]["Value"][0]
    path = instance_url[instance_url.index("/dicom-web") :]
    headers = site.headers("doctor")
    (metadata,) = site.client.get(path + "/metadata", headers=headers).json()
    bulk = metadata["00420011"]["BulkDataURI"]  # where OHIF fetches the document from
    assert "/bulk/" in bulk
    response = site.client.get(bulk[bulk.index("/dicom-web") :], headers=headers)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert response.headers["content-disposition"] == "attachment"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert pdf in response.content


def test_a_patient_renamed_between_studies_can_still_add_to_the_new_study(
    archive: Archive,
) -> None:
    before, after = generate_uid(), generate_uid()
    maiden = make_instance(study_uid=before, PatientID="W-1", PatientName="Doe^Jane")
    married = [
        make_instance(study_uid=after, PatientID="W-1", PatientName="Smith^Jane") for _ in "ab"
    ]
    assert archive.store(maiden).status == "stored"
    assert [archive.store(item).status for item in married] == ["stored", "stored"]  # one by one
    late = make_instance(study_uid=before, PatientID="W-1", PatientName="Smith^Jane")
    assert archive.store(late).reason == "patient-mismatch"  # the first study says Doe
