"""A signed report travels with its study: an Encapsulated PDF instance (new series, modality
DOC, the study's patient) that WADO-RS returns with the very bytes of the exported PDF; an
amendment adds the next version as a new instance."""

from __future__ import annotations

import requests
from dicomweb_client.api import DICOMwebClient

from klinika.reports.encapsulated import ENCAPSULATED_PDF_STORAGE
from tests.conftest import login
from tests.reports.conftest import CYRILLIC_NAME, LiveSite


def test_the_signed_pdf_is_stored_into_the_study_and_retrieved_by_wado_rs(live: LiveSite) -> None:
    server, study = live.server, live.study
    doctor = login(server.url, "irina")
    report = f"{server.url}/api/studies/{study.study_uid}/report"
    body = {"language": "ru", "sections": {"findings": "Норма.", "impression": "Без патологии."}}
    saved = requests.put(report, json={"revision": None, **body}, headers=doctor, timeout=30)
    assert saved.status_code == 200, saved.text
    signed = requests.post(
        report + "/sign", json={"revision": saved.json()["revision"]}, headers=doctor, timeout=60
    ).json()
    version = signed["version"]
    assert version["stored_in_study"] is True
    exported = requests.get(report + "/pdf", headers=doctor, timeout=30)
    assert exported.headers["content-type"] == "application/pdf"
    assert exported.content.startswith(b"%PDF-")

    client = DICOMwebClient(url=server.dicomweb, headers=doctor)
    documents = client.search_for_series(study.study_uid, search_filters={"Modality": "DOC"})
    assert len(documents) == 1
    series_uid = documents[0]["0020000E"]["Value"][0]
    assert series_uid != study.series_uid  # a series of its own
    instance = client.retrieve_instance(
        study.study_uid, series_uid, version["pdf_sop_instance_uid"]
    )
    assert instance.SOPClassUID == ENCAPSULATED_PDF_STORAGE
    assert instance.Modality == "DOC"
    assert instance.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert str(instance.PatientName) == CYRILLIC_NAME and instance.PatientID == "RU-0042"
    assert len(instance.EncapsulatedDocument) % 2 == 0
    assert bytes(instance.EncapsulatedDocument)[: len(exported.content)] == exported.content
    assert instance.EncapsulatedDocumentLength == len(exported.content)

    amended = requests.post(
        report + "/amend", json={"revision": signed["revision"], "reason": "x"}, headers=doctor
    ).json()
    resigned = requests.post(
        report + "/sign", json={"revision": amended["revision"]}, headers=doctor, timeout=60
    ).json()
    second = resigned["version"]["pdf_sop_instance_uid"]
    instances = client.search_for_instances(study.study_uid, series_uid)
    assert {i["00080018"]["Value"][0] for i in instances} == {
        version["pdf_sop_instance_uid"],
        second,
    }
    again = client.retrieve_instance(study.study_uid, series_uid, second)
    assert again.InstanceNumber == 2
    latest = requests.get(report + "/pdf", headers=doctor, timeout=30).content
    assert bytes(again.EncapsulatedDocument)[: again.EncapsulatedDocumentLength] == latest
