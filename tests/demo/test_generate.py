"""The demo generator writes valid, deterministic Part-10 files with sensible anatomy."""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from klinika.demo import demo_file_count, generate_demo

CT_SLICES = 20
REQUIRED = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID",
    "PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "AccessionNumber", "StudyID", "StudyDescription", "ReferringPhysicianName", "Modality",
    "SeriesNumber", "SeriesDescription", "InstanceNumber", "BodyPartExamined", "Manufacturer",
    "InstitutionName",
)  # fmt: skip


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo_paths(demo_dir: pathlib.Path) -> list[pathlib.Path]:
    seen: list[int] = []
    paths = generate_demo(demo_dir, ct_slices=CT_SLICES, progress=seen.append)
    assert seen == list(range(1, len(paths) + 1))
    return paths


@pytest.fixture(scope="module")
def datasets(demo_paths: list[pathlib.Path]) -> list[FileDataset]:
    return [pydicom.dcmread(path) for path in demo_paths]


def _by_class(datasets: list[FileDataset], sop_class: str) -> list[FileDataset]:
    return [ds for ds in datasets if ds.SOPClassUID == sop_class]


def test_file_count_matches_prediction(demo_paths: list[pathlib.Path]) -> None:
    assert len(demo_paths) == demo_file_count(CT_SLICES)
    assert all(path.is_file() for path in demo_paths)


def test_every_file_is_part10_explicit_little_endian(demo_paths: list[pathlib.Path]) -> None:
    for path in demo_paths:
        raw = path.read_bytes()
        assert raw[128:132] == b"DICM"
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID


def test_every_dataset_has_the_attributes_a_pacs_needs(datasets: list[FileDataset]) -> None:
    for ds in datasets:
        missing = [kw for kw in REQUIRED if str(ds.get(kw, "")) == ""]
        assert not missing, f"{ds.SOPInstanceUID}: missing {missing}"
        assert ds.Manufacturer == "Klinika Demo"


def test_pixel_arrays_decode_with_expected_shape_and_dtype(datasets: list[FileDataset]) -> None:
    expected = {
        CTImageStorage: ((512, 512), np.int16),
        MRImageStorage: ((256, 256), np.uint16),
        ComputedRadiographyImageStorage: ((2048, 2048), np.uint16),
        UltrasoundMultiFrameImageStorage: ((20, 480, 640, 3), np.uint8),
    }
    for ds in datasets:
        shape, dtype = expected[ds.SOPClassUID]
        pixels = ds.pixel_array
        assert pixels.shape == shape
        assert pixels.dtype == dtype
    assert {ds.SOPClassUID for ds in datasets} == set(expected)


def test_same_seed_gives_identical_bytes(
    demo_paths: list[pathlib.Path], demo_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    again = generate_demo(tmp_path, ct_slices=CT_SLICES)
    assert [p.relative_to(tmp_path) for p in again] == [p.relative_to(demo_dir) for p in demo_paths]
    for first, second in zip(demo_paths, again, strict=True):
        assert (
            hashlib.sha256(first.read_bytes()).digest()
            == hashlib.sha256(second.read_bytes()).digest()
        ), first


def test_other_seed_gives_other_uids(datasets: list[FileDataset], tmp_path: pathlib.Path) -> None:
    other = [pydicom.dcmread(p) for p in generate_demo(tmp_path, ct_slices=CT_SLICES, seed=7)]
    assert {ds.SOPInstanceUID for ds in other}.isdisjoint(ds.SOPInstanceUID for ds in datasets)


def test_sop_instance_uids_are_unique_and_valid(datasets: list[FileDataset]) -> None:
    uids = [ds.SOPInstanceUID for ds in datasets]
    assert len(set(uids)) == len(uids)
    for ds in datasets:
        for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
            assert UID(ds[keyword].value).is_valid, (keyword, ds[keyword].value)


def test_ct_geometry_is_one_consistent_volume(datasets: list[FileDataset]) -> None:
    ct = sorted(_by_class(datasets, CTImageStorage), key=lambda ds: ds.InstanceNumber)
    assert len(ct) == CT_SLICES
    assert [ds.InstanceNumber for ds in ct] == list(range(1, CT_SLICES + 1))
    assert len({ds.SeriesInstanceUID for ds in ct}) == 1
    assert len({ds.FrameOfReferenceUID for ds in ct}) == 1
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in ct])
    thickness = float(ct[0].SliceThickness)
    assert thickness == pytest.approx(1.25)
    assert np.allclose(np.diff(z), thickness)
    assert np.allclose([float(ds.SliceLocation) for ds in ct], z)
    for ds in ct:
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert list(ds.ImagePositionPatient[:2]) == list(ct[0].ImagePositionPatient[:2])
        assert float(ds.SpacingBetweenSlices) == thickness
        assert ds.PixelRepresentation == 1
        assert (ds.RescaleIntercept, ds.RescaleSlope) == (-1024, 1)
        assert (ds.WindowCenter, ds.WindowWidth) == (40, 400)


def test_ct_hounsfield_values_show_lungs_and_bone(datasets: list[FileDataset]) -> None:
    volume = np.stack(
        [ds.pixel_array.astype(np.float32) + float(ds.RescaleIntercept)
         for ds in _by_class(datasets, CTImageStorage)]
    )  # fmt: skip
    body = volume > -900
    assert (volume[body] < -500).any()
    lung_like = (volume > -950) & (volume < -700)
    assert lung_like.sum() > 10_000
    assert (volume > 300).sum() > 1_000
    assert volume.max() > 600


def test_cyrillic_patient_name_round_trips(demo_paths: list[pathlib.Path]) -> None:
    ct_path = next(p for p in demo_paths if p.parts[-3] == "ct-chest-abdomen")
    ds = pydicom.dcmread(ct_path)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Иванов^Иван"
    assert ds.PatientName.family_name == "Иванов"
    assert "Иванов".encode() in ct_path.read_bytes()


def test_latin1_patient_name_round_trips(datasets: list[FileDataset]) -> None:
    mr = _by_class(datasets, MRImageStorage)
    assert {ds.SpecificCharacterSet for ds in mr} == {"ISO_IR 100"}
    assert {str(ds.PatientName) for ds in mr} == {"Müller^Jürgen"}


def test_patients_have_distinct_ids_and_accession_numbers(datasets: list[FileDataset]) -> None:
    per_study = {ds.StudyInstanceUID: (ds.PatientID, ds.AccessionNumber) for ds in datasets}
    assert len(per_study) == 4
    assert len({pid for pid, _ in per_study.values()}) == 4
    assert len({acc for _, acc in per_study.values()}) == 4


def test_mr_has_two_series_with_geometry(datasets: list[FileDataset]) -> None:
    mr = _by_class(datasets, MRImageStorage)
    series = {ds.SeriesInstanceUID for ds in mr}
    assert len(series) == 2
    assert len({ds.StudyInstanceUID for ds in mr}) == 1
    for ds in mr:
        assert len(ds.ImagePositionPatient) == 3
        assert len(ds.ImageOrientationPatient) == 6
        assert ds.pixel_array.max() > 500


def test_cr_is_monochrome_with_window(datasets: list[FileDataset]) -> None:
    (cr,) = _by_class(datasets, ComputedRadiographyImageStorage)
    assert cr.PhotometricInterpretation == "MONOCHROME2"
    assert cr.BitsStored == 12
    assert "WindowCenter" in cr and "WindowWidth" in cr
    assert cr.pixel_array.max() <= 4095


def test_us_is_rgb_multiframe_cine(datasets: list[FileDataset]) -> None:
    (us,) = _by_class(datasets, UltrasoundMultiFrameImageStorage)
    assert us.PhotometricInterpretation == "RGB"
    assert us.SamplesPerPixel == 3
    assert us.PlanarConfiguration == 0
    frames = us.pixel_array
    assert frames.shape[0] == us.NumberOfFrames == 20
    assert float(us.FrameTime) > 0 and int(us.CineRate) > 0
    assert us.FrameIncrementPointer == 0x00181063
    assert not np.array_equal(frames[0], frames[10])
    colour = (frames[..., 0] != frames[..., 2]).any()
    assert colour


def test_rejects_too_few_ct_slices(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="ct_slices"):
        generate_demo(tmp_path, ct_slices=1)
