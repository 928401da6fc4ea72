"""The export room on a real archive: DICOM ZIP with a DICOMDIR, and rendered JPEG/PNG."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pydicom
import pytest
from PIL import Image

from klinika.dicom.deidentify import Deidentifier
from klinika.errors import NotFound
from klinika.export import dicom_zip, images_zip, zips
from tests.conftest import PYDICOM_DATA, SAMPLES
from tests.factories import make_instance


def unzip(chunks) -> zipfile.ZipFile:  # type: ignore[no-untyped-def]
    return zipfile.ZipFile(io.BytesIO(b"".join(chunks)))


@pytest.fixture
def stored(archive):  # type: ignore[no-untyped-def]
    """Three studies: a CT, an Encapsulated PDF (no pixels) and an MR."""
    files = [
        PYDICOM_DATA / "CT_small.dcm",
        SAMPLES / "generated" / "encapsulated_pdf.dcm",
        PYDICOM_DATA / "MR_small.dcm",
    ]
    for path in files:
        outcome = archive.store(path.read_bytes())
        assert outcome.status in ("stored", "duplicate"), outcome
    return archive


def study_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def test_dicom_zip_holds_the_stored_bytes_and_a_dicomdir_dcmdump_reads(
    stored, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(zips, "CHUNK_BYTES", 1000)  # files go out in many chunks
    ct = PYDICOM_DATA / "CT_small.dcm"
    uid = study_of(ct)
    with unzip(dicom_zip(stored, uid)) as bundle:
        bundle.extractall(tmp_path)
        names = bundle.namelist()
    assert names[0] == "DICOMDIR"
    directory = pydicom.dcmread(tmp_path / "DICOMDIR")
    kinds = [r.DirectoryRecordType for r in directory.DirectoryRecordSequence]
    assert kinds.count("PATIENT") == 1 and kinds.count("STUDY") == 1
    referenced = [r for r in directory.DirectoryRecordSequence if "ReferencedFileID" in r]
    assert len(referenced) == len(names) - 1
    for record in referenced:
        exported = (tmp_path / Path(*record.ReferencedFileID)).read_bytes()
        sop_uid = pydicom.dcmread(io.BytesIO(exported)).SOPInstanceUID
        assert sop_uid == record.ReferencedSOPInstanceUIDInFile
        if sop_uid == pydicom.dcmread(ct).SOPInstanceUID:
            assert exported == ct.read_bytes()  # bytes as received, not re-encoded
    dump = subprocess.run(
        ["dcmdump", str(tmp_path / "DICOMDIR")], capture_output=True, encoding="latin-1"
    )
    assert dump.returncode == 0 and "DirectoryRecordSequence" in dump.stdout


def test_series_export_holds_only_that_series(stored) -> None:  # type: ignore[no-untyped-def]
    mr = pydicom.dcmread(PYDICOM_DATA / "MR_small.dcm", stop_before_pixels=True)
    with unzip(dicom_zip(stored, mr.StudyInstanceUID, mr.SeriesInstanceUID)) as bundle:
        assert len(bundle.namelist()) == 2  # DICOMDIR and the one MR image


@pytest.mark.parametrize(("media_type", "kind"), [("image/jpeg", "JPEG"), ("image/png", "PNG")])
def test_images_zip_renders_each_frame_and_leaves_out_objects_without_pixels(
    stored, media_type, kind
) -> None:  # type: ignore[no-untyped-def]
    for path in (PYDICOM_DATA / "CT_small.dcm", SAMPLES / "generated" / "encapsulated_pdf.dcm"):
        with unzip(images_zip(stored, study_of(path), media_type=media_type)) as bundle:
            names = bundle.namelist()
            for name in names:
                with Image.open(io.BytesIO(bundle.read(name))) as picture:
                    assert picture.format == kind and picture.size == (128, 128)
            if path.name == "CT_small.dcm":
                assert names == [f"series-01/image-0001.{'jpg' if kind == 'JPEG' else 'png'}"]
            else:
                assert names == []  # a PDF has no frames to render


def test_exporting_an_unknown_study_raises_before_anything_is_sent(stored) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound):
        dicom_zip(stored, "1.2.3.4")
    with pytest.raises(NotFound):
        images_zip(stored, "1.2.3.4")


def test_deidentified_zip_has_no_patient_data_a_dicomdir_that_matches_and_leaves_out_documents(
    stored, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    ct = pydicom.dcmread(PYDICOM_DATA / "CT_small.dcm")
    with unzip(
        dicom_zip(stored, study_of(PYDICOM_DATA / "CT_small.dcm"), None, Deidentifier())
    ) as bundle:
        bundle.extractall(tmp_path)
        names = bundle.namelist()
    directory = pydicom.dcmread(tmp_path / "DICOMDIR")
    patient = next(
        r for r in directory.DirectoryRecordSequence if r.DirectoryRecordType == "PATIENT"
    )
    assert patient.PatientID.startswith("ANON-") and patient.PatientID != ct.PatientID
    image = next(r for r in directory.DirectoryRecordSequence if "ReferencedFileID" in r)
    exported = pydicom.dcmread(tmp_path / Path(*image.ReferencedFileID))
    assert exported.SOPInstanceUID == image.ReferencedSOPInstanceUIDInFile != ct.SOPInstanceUID
    assert exported.PatientIdentityRemoved == "YES"
    raw = (tmp_path / Path(*image.ReferencedFileID)).read_bytes()
    assert str(ct.PatientName).encode() not in raw and ct.PatientID.encode() not in raw
    assert (exported.pixel_array == ct.pixel_array).all()
    assert len(names) == 2  # DICOMDIR and the one CT image

    pdf_study = study_of(SAMPLES / "generated" / "encapsulated_pdf.dcm")
    with unzip(dicom_zip(stored, pdf_study, None, Deidentifier())) as bundle:
        assert "NOT-INCLUDED.txt" in bundle.namelist()
        assert "encapsulated document" in bundle.read("NOT-INCLUDED.txt").decode()


def test_a_study_without_study_id_dates_or_numbers_exports_with_a_complete_dicomdir(
    archive, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Study ID and the numbers are Type 2 in the image IODs but Type 1 in the directory
    records: the DICOMDIR gets fallbacks, the exported files keep their bytes."""
    study_uid, series_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    sent = [
        make_instance(
            study_uid=study_uid,
            series_uid=series_uid,
            StudyDate="",
            SeriesDate="20230405",
            SeriesNumber=None,
            InstanceNumber=None,
        )
        for _ in range(2)
    ]
    for data in sent:
        assert archive.store(data).status == "stored"
    with unzip(dicom_zip(archive, study_uid)) as bundle:
        bundle.extractall(tmp_path)
        files = {name: bundle.read(name) for name in bundle.namelist() if name != "DICOMDIR"}
    assert sorted(files.values()) == sorted(sent)
    records = pydicom.dcmread(tmp_path / "DICOMDIR").DirectoryRecordSequence
    study = next(r for r in records if r.DirectoryRecordType == "STUDY")
    assert (study.StudyID, study.StudyDate) == ("1", "20230405")
    images = [r for r in records if r.DirectoryRecordType == "IMAGE"]
    assert sorted(int(r.InstanceNumber) for r in images) == [1, 2]
    assert [int(r.SeriesNumber) for r in records if r.DirectoryRecordType == "SERIES"] == [1]
