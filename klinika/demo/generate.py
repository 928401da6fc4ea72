"""Write the demo data set: CT chest/abdomen, MR brain, CR chest and a US echo cine.

Deterministic and network-free: the same ``seed`` gives byte-identical files. The generator
only writes Part-10 files; storing them is the caller's job (``klinika demo`` hands each
file's bytes to the archive).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    MRImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from klinika.demo import mr_phantom
from klinika.demo.ct_phantom import PIXEL_SPACING_MM, SIZE, CtPhantom
from klinika.demo.headers import STUDIES, Series, Study, base_dataset, demo_uid
from klinika.demo.projection_phantoms import CR_SPACING_MM, chest_radiograph, echo_cine

CT_SLICE_THICKNESS_MM = 1.25
MR_SLICES = 24
MR_SIZE = 256
MR_FOV_MM = 230.0
US_FRAMES = 20
US_FRAME_TIME_MS = 40.0


def demo_file_count(ct_slices: int = 300) -> int:
    """Return how many files :func:`generate_demo` writes for ``ct_slices``."""
    return ct_slices + 2 * MR_SLICES + 1 + 1


def generate_demo(
    out_dir: pathlib.Path,
    *,
    ct_slices: int = 300,
    seed: int = 2026,
    progress: Callable[[int], None] | None = None,
) -> list[pathlib.Path]:
    """Write the demo Part-10 files under ``out_dir`` and return their paths.

    Parameters
    ----------
    out_dir
        Directory to write into (created if missing); files go to
        ``<study>/<series>/<instance>.dcm``. Existing files of the same name are replaced.
    ct_slices
        Number of axial CT slices (the anatomy always spans the whole trunk).
    seed
        Seed for pixel noise and UIDs; the same seed gives byte-identical files.
    progress
        Called after each file with the number of files written so far
        (out of :func:`demo_file_count`).

    References
    ----------
    PS3.10 7.1 (file meta), PS3.3 A.3 (CT), A.4 (MR), A.2 (CR), A.7 (US multi-frame).
    """
    if ct_slices < 2:
        raise ValueError(f"ct_slices must be at least 2, got {ct_slices}")
    paths: list[pathlib.Path] = []
    writers = (
        _ct_instances(seed, ct_slices),
        _mr_instances(seed),
        _cr_instances(seed),
        _us_instances(seed),
    )
    for writer in writers:
        for relative, ds in writer:
            path = out_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
            if progress is not None:
                progress(len(paths))
    return paths


def _relative(study: Study, series: Series, instance_number: int) -> pathlib.Path:
    return pathlib.Path(
        study.key, f"{series.number:03d}-{series.key}", f"{instance_number:04d}.dcm"
    )


def _ct_instances(seed: int, ct_slices: int) -> Iterator[tuple[pathlib.Path, Dataset]]:
    """Axial CT slices, feet first in file order: z grows with InstanceNumber."""
    study = STUDIES["ct"]
    series = Series("axial", 2, "CT", "Chest Abdomen 1.25mm Venous", "094105")
    frame_of_reference = demo_uid(seed, study.key, "frame-of-reference")
    phantom = CtPhantom(seed)
    corner = -(SIZE - 1) / 2 * PIXEL_SPACING_MM
    z_top = -100.0
    z_bottom = z_top - (ct_slices - 1) * CT_SLICE_THICKNESS_MM
    for index in range(ct_slices):
        number = index + 1
        z = z_bottom + index * CT_SLICE_THICKNESS_MM
        ds = base_dataset(seed, study, series, CTImageStorage, number)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = frame_of_reference
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [corner, corner, round(z, 4)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [PIXEL_SPACING_MM, PIXEL_SPACING_MM]
        ds.SliceThickness = CT_SLICE_THICKNESS_MM
        ds.SpacingBetweenSlices = CT_SLICE_THICKNESS_MM
        ds.SliceLocation = round(z, 4)
        ds.AcquisitionNumber = 1
        ds.KVP = 120
        ds.XRayTubeCurrent = 250
        ds.ExposureTime = 500
        ds.ConvolutionKernel = "STANDARD"
        ds.ContrastBolusAgent = "Iohexol 350"
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.WindowCenterWidthExplanation = "SOFT TISSUE"
        hu = phantom.slice_hu(index / (ct_slices - 1), index)
        stored = np.clip(np.rint(hu) + 1024, 0, 4095).astype(np.int16)
        _set_pixels(ds, stored, "MONOCHROME2", 16)
        yield _relative(study, series, number), ds


def _mr_instances(seed: int) -> Iterator[tuple[pathlib.Path, Dataset]]:
    """T2 axial and T1 sagittal brain series sharing one frame of reference."""
    study = STUDIES["mr"]
    frame_of_reference = demo_uid(seed, study.key, "frame-of-reference")
    spacing = MR_FOV_MM / MR_SIZE
    grid = (np.arange(MR_SIZE, dtype=np.float32) - (MR_SIZE - 1) / 2) * np.float32(spacing)
    across, down = np.meshgrid(grid, grid)
    corner = float(grid[0])
    plans: tuple[tuple[Series, mr_phantom.Weighting, list[int], float, float], ...] = (
        (Series("t2-axial", 1, "MR", "T2 TSE AX", "141530"), "T2", [1, 0, 0, 0, 1, 0], 4000, 95),
        (Series("t1-sagittal", 2, "MR", "T1 SE SAG", "142210"), "T1", [0, 1, 0, 0, 0, -1], 500, 12),
    )  # fmt: skip
    for series, weighting, orientation, repetition, echo in plans:
        rng = np.random.default_rng([seed, 7201, series.number])
        for index in range(MR_SLICES):
            number = index + 1
            offset = -69.0 + index * 6.0 if weighting == "T2" else -57.5 + index * 5.0
            if weighting == "T2":
                x, y, z = across, down, np.full_like(across, offset)
                position = [corner, corner, offset]
            else:
                x, y, z = np.full_like(across, offset), across, -down
                position = [offset, corner, -corner]
            pixels = mr_phantom.sample_plane(x, y, z, weighting, rng)
            ds = base_dataset(seed, study, series, MRImageStorage, number)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
            ds.PatientPosition = "HFS"
            ds.FrameOfReferenceUID = frame_of_reference
            ds.PositionReferenceIndicator = ""
            ds.ImagePositionPatient = position
            ds.ImageOrientationPatient = orientation
            ds.PixelSpacing = [spacing, spacing]
            ds.SliceThickness = 5.0
            ds.SpacingBetweenSlices = 6.0 if weighting == "T2" else 5.0
            ds.SliceLocation = offset
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "SK" if weighting == "T2" else "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
            ds.RepetitionTime = repetition
            ds.EchoTime = echo
            ds.EchoTrainLength = 16 if weighting == "T2" else 1
            ds.MagneticFieldStrength = 1.5
            ds.ImagingFrequency = 63.87
            ds.ImagedNucleus = "1H"
            ds.AcquisitionNumber = 1
            ds.WindowCenter = 1300 if weighting == "T2" else 800
            ds.WindowWidth = 2600 if weighting == "T2" else 1600
            _set_pixels(ds, pixels, "MONOCHROME2", 12)
            yield _relative(study, series, number), ds


def _cr_instances(seed: int) -> Iterator[tuple[pathlib.Path, Dataset]]:
    """One PA chest radiograph, 2048 x 2048, 12 bits."""
    study = STUDIES["cr"]
    series = Series("pa", 1, "CR", "Chest PA", "081712")
    ds = base_dataset(seed, study, series, ComputedRadiographyImageStorage, 1)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImagerPixelSpacing = [CR_SPACING_MM, CR_SPACING_MM]
    ds.PixelSpacing = [CR_SPACING_MM, CR_SPACING_MM]
    ds.KVP = 125
    ds.DistanceSourceToDetector = 1800
    ds.ExposureInuAs = 3200
    ds.WindowCenter = 1700
    ds.WindowWidth = 3200
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    _set_pixels(ds, chest_radiograph(seed), "MONOCHROME2", 12)
    yield _relative(study, series, 1), ds


def _us_instances(seed: int) -> Iterator[tuple[pathlib.Path, Dataset]]:
    """One apical four-chamber cine: RGB, interleaved, ``US_FRAMES`` frames at 25 fps."""
    study = STUDIES["us"]
    series = Series("a4c", 1, "US", "Apical 4 chamber", "110512")
    ds = base_dataset(seed, study, series, UltrasoundMultiFrameImageStorage, 1)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.FrameTime = US_FRAME_TIME_MS
    ds.CineRate = round(1000 / US_FRAME_TIME_MS)
    ds.RecommendedDisplayFrameRate = ds.CineRate
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.StartTrim = 1
    ds.StopTrim = US_FRAMES
    ds.HeartRate = 75
    ds.TransducerData = "S5-1"
    _set_pixels(ds, echo_cine(seed, US_FRAMES), "RGB", 8)
    yield _relative(study, series, 1), ds


def _set_pixels(ds: Dataset, pixels: np.ndarray, photometric: str, bits_stored: int) -> None:
    """Set Pixel Data and the Image Pixel module (PS3.3 C.7.6.3) from an array."""
    ds.set_pixel_data(pixels, photometric, bits_stored, generate_instance_uid=False)
