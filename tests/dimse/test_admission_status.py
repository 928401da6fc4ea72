"""C-STORE answers the archive's admission refusals with their own statuses (PS3.4 B.2.3):
an HTML Encapsulated Document, an instance of another patient than its study's."""

from __future__ import annotations

import io

import pydicom
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from klinika.audit import AuditFilter
from klinika.dimse import status
from tests.archive.test_admission import html_document
from tests.dimse.conftest import LocalDimse, associate
from tests.factories import make_instance


def dataset(part10: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(part10))


def test_c_store_refuses_html_documents_and_foreign_patients(local: LocalDimse) -> None:
    study = generate_uid()
    ct = dataset(make_instance(study_uid=study, PatientID="P-1", PatientName="Doe^Jane"))
    foreign = dataset(make_instance(study_uid=study, PatientID="EVIL-1", PatientName="X^Y"))
    contexts = [(EncapsulatedPDFStorage, [ExplicitVRLittleEndian]), ct.SOPClassUID]
    assoc = associate(local.port, *contexts)
    try:
        assert assoc.send_c_store(ct).Status == status.SUCCESS
        refused = assoc.send_c_store(foreign)
        assert refused.Status == status.DATASET_MISMATCH == 0xA900
        assert refused.ErrorComment.startswith("Patient ID 'EVIL-1' is not the patient")
        html = assoc.send_c_store(dataset(html_document()))
        assert html.Status == status.CANNOT_UNDERSTAND == 0xC000
    finally:
        assoc.release()
    assert len(local.archive.instances(study)) == 1  # the CT alone
    local.runtime.audit.flush()
    events, _ = local.runtime.audit.search(AuditFilter(action="dicom:store", study_uid=study))
    assert [(e.outcome, e.patient_id) for e in reversed(events)] == [
        ("success", "P-1"),
        ("failure", "P-1"),  # an event about the study of patient P-1
    ]
