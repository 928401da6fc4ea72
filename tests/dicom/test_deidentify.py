"""The de-identification engine against PS3.15 Table E.1-1, on every sample, checked by dciodvfy."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from klinika.dicom.confidentiality_table import ATTRIBUTES
from klinika.dicom.deidentify import Deidentifier, NotDeidentifiable, Option
from klinika.dicom.header import parse_instance
from tests.conftest import PYDICOM_DATA, SAMPLES, sample_files


def writable_samples() -> list[Path]:
    """Samples the archive accepts and pydicom can write back (no transfer syntax it cannot
    write), without documents or burned-in annotation (refused by the engine, tested apart)."""
    chosen = []
    for path in sample_files():
        data = path.read_bytes()
        try:
            parse_instance(data)  # what the archive would refuse is never exported
            dataset = pydicom.dcmread(io.BytesIO(data))
            dataset.save_as(io.BytesIO(), enforce_file_format=True)
        except Exception:
            continue
        if "EncapsulatedDocument" in dataset or dataset.get("BurnedInAnnotation") == "YES":
            continue
        chosen.append(path)
    assert len(chosen) > 40
    return chosen


SAMPLES_TO_DEIDENTIFY = writable_samples()
RULES = {tag: (basic, options) for tag, basic, options in ATTRIBUTES}


def deidentified(path: Path, deidentifier: Deidentifier) -> Dataset:
    return pydicom.dcmread(io.BytesIO(deidentifier.part10(path.read_bytes())))


def identifying_values(dataset: Dataset) -> dict[int, object]:
    """Every Table E.1-1 attribute with a non-empty value, anywhere in the data set."""
    found: dict[int, object] = {}
    for element in dataset.iterall():
        if element.tag in RULES and element.VR != "SQ" and element.value not in (None, "", b""):
            found.setdefault(element.tag, element.value)
    return found


@pytest.mark.parametrize("path", SAMPLES_TO_DEIDENTIFY, ids=lambda p: p.name)
def test_basic_profile_changes_every_identifying_attribute_and_drops_private_ones(
    path: Path,
) -> None:
    original = pydicom.dcmread(path)
    result = deidentified(path, Deidentifier(options=()))
    before = identifying_values(original)
    after = {e.tag: e.value for e in result.iterall() if e.VR != "SQ"}
    kept = [
        f"{pydicom.datadict.keyword_for_tag(tag) or hex(tag)}={value!r}"
        for tag, value in before.items()
        if after.get(tag) == value
    ]
    assert kept == []
    assert not any(element.tag.is_private for element in result.iterall())
    assert result.PatientIdentityRemoved == "YES"
    assert result.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID
    assert pydicom.uid.UID(result.SOPInstanceUID).is_valid


def test_the_options_retain_dates_shifted_descriptors_cleaned_and_patient_characteristics() -> None:
    path = SAMPLES / "generated" / "cyrillic_iso_ir_192_utf8.dcm"
    original = pydicom.dcmread(path)
    original.StudyDescription = f"CT chest of {original.PatientName.family_name} follow-up"
    original.PatientAge = "054Y"
    buffer = io.BytesIO()
    original.save_as(buffer)
    deidentifier = Deidentifier()
    result = pydicom.dcmread(io.BytesIO(deidentifier.part10(buffer.getvalue())))

    offset = deidentifier.date_offset_days
    for keyword in ("StudyDate", "SeriesDate", "ContentDate"):
        before, after = (pydicom.valuerep.DA(d[keyword].value) for d in (original, result))
        assert (before - after).days == offset, keyword
    assert result.StudyTime == original.StudyTime  # times stay with modified dates
    assert result.LongitudinalTemporalInformationModified == "MODIFIED"
    assert result.StudyDescription == "CT chest of follow-up"
    assert original.PatientName.family_name not in str(result.StudyDescription)
    assert result.PatientSex == original.PatientSex and result.PatientAge == "054Y"
    assert result.PatientBirthDate in ("", None)
    assert [c.CodeValue for c in result.DeidentificationMethodCodeSequence] == [
        "113100",
        "113107",
        "113105",
        "113108",
    ]


def test_uids_and_pseudonyms_are_consistent_within_an_export_and_differ_between_exports() -> None:
    series = sorted((SAMPLES / "dcmqi" / "ct-3slice").glob("*.dcm"))
    one, other = Deidentifier(), Deidentifier()
    first = [deidentified(path, one) for path in series]
    assert len({d.StudyInstanceUID for d in first}) == 1
    assert len({d.SeriesInstanceUID for d in first}) == 1
    assert len({d.SOPInstanceUID for d in first}) == len(series)
    assert len({d.PatientID for d in first}) == 1 and first[0].PatientName == first[0].PatientID
    again = deidentified(series[0], other)
    assert again.StudyInstanceUID != first[0].StudyInstanceUID
    assert again.PatientID != first[0].PatientID


def test_references_between_instances_follow_the_new_uids() -> None:
    """A SEG referencing its source CT slices points at the slices' new UIDs."""
    segmentation = SAMPLES / "highdicom" / "seg_image_ct_binary.dcm"
    sources = sorted((PYDICOM_DATA / "dicomdirtests" / "77654033" / "CT2").glob("*"))
    deidentifier = Deidentifier()
    new_slices = {deidentified(path, deidentifier).SOPInstanceUID for path in sources}
    seg = deidentified(segmentation, deidentifier)
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced and referenced <= new_slices


def test_instances_it_cannot_make_safe_are_refused() -> None:
    pdf = SAMPLES / "generated" / "encapsulated_pdf.dcm"
    with pytest.raises(NotDeidentifiable):
        Deidentifier().part10(pdf.read_bytes())
    burned = pydicom.dcmread(PYDICOM_DATA / "CT_small.dcm")
    burned.BurnedInAnnotation = "YES"
    with pytest.raises(NotDeidentifiable, match="burned-in"):
        Deidentifier().dataset(burned)


def dciodvfy_errors(path: Path) -> set[str]:
    """dciodvfy's Error lines, with values (which de-identification changes) masked."""
    assert shutil.which("dciodvfy"), "dciodvfy is missing: apt-get install dicom3tools"
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    values = re.compile(r"\"[^\"]*\"|0x[0-9a-fA-F]+|[0-9][0-9.]*")
    return {values.sub("…", line) for line in lines if "Error" in line}


@pytest.mark.parametrize("path", SAMPLES_TO_DEIDENTIFY, ids=lambda p: p.name)
def test_a_deidentified_object_has_no_dciodvfy_error_its_original_had_not(
    path: Path, tmp_path: Path
) -> None:
    original, out = tmp_path / "original.dcm", tmp_path / "deidentified.dcm"
    original.write_bytes(path.read_bytes())
    out.write_bytes(Deidentifier(options=set(Option)).part10(path.read_bytes()))
    if pydicom.dcmread(path).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        for copy in (original, out):  # dciodvfy misreads deflated data sets: inflate both
            dataset = pydicom.dcmread(copy)
            dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            dataset.save_as(copy, implicit_vr=False, little_endian=True)
    new_errors = dciodvfy_errors(out) - dciodvfy_errors(original)
    assert new_errors == set()
