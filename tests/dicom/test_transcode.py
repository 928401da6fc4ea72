"""The transcoding room: what pydicom's decompress gets wrong is fixed, the rest is kept."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from klinika.dicom.transcode import (
    CannotTranscode,
    can_transcode,
    data_set_offset,
    to_explicit_little_endian,
    transcode,
)
from tests.conftest import PYDICOM_DATA, SAMPLES

SEG_J2K = SAMPLES / "pydicom-data" / "liver_j2k.dcm"
SEG_RLE = SAMPLES / "pydicom-data" / "liver_rle.dcm"
SEG_DEFLATE = SAMPLES / "pydicom-data" / "liver_deflate.dcm"


def decoded(part10: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(part10))


def pixels(source: Path | bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(source if isinstance(source, Path) else io.BytesIO(source))
        return ds.pixel_array


def test_one_bit_seg_is_bit_packed_after_decoding() -> None:
    """pydicom writes one byte per pixel; PS3.5 8.1.1 packs 8 pixels a byte, frames
    contiguous: 3 frames of 512x512 are 98,304 bytes."""
    out = decoded(transcode(SEG_J2K.read_bytes(), ExplicitVRLittleEndian))
    assert out.BitsAllocated == 1
    assert len(out.PixelData) == 3 * 512 * 512 // 8
    assert out["PixelData"].VR == "OB"
    assert np.array_equal(out.pixel_array, pixels(SEG_J2K))


def test_jpeg_ybr_full_422_becomes_rgb_with_the_lossy_flags() -> None:
    source = PYDICOM_DATA / "examples_ybr_color.dcm"  # 30 frames JPEG baseline YBR_FULL_422
    out = decoded(transcode(source.read_bytes(), ImplicitVRLittleEndian))
    assert out.PhotometricInterpretation == "RGB"
    assert out.PlanarConfiguration == 0
    assert out.NumberOfFrames == 30
    assert out.LossyImageCompression == "01"
    assert np.array_equal(out.pixel_array, pixels(source))


def test_near_lossless_jpeg_ls_is_flagged_lossy_from_its_code_stream() -> None:
    source = PYDICOM_DATA / "JPEGLSNearLossless_08.dcm"  # carries no lossy flag itself
    assert "LossyImageCompression" not in pydicom.dcmread(source, stop_before_pixels=True)
    out = decoded(transcode(source.read_bytes(), ExplicitVRLittleEndian))
    assert (out.LossyImageCompression, out.LossyImageCompressionMethod) == ("01", "ISO_14495_1")
    assert float(out.LossyImageCompressionRatio) > 1


def test_lossless_sources_are_not_flagged_lossy() -> None:
    for source in (
        PYDICOM_DATA / "MR_small_jp2klossless.dcm",
        PYDICOM_DATA / "MR_small_jpeg_ls_lossless.dcm",
        SAMPLES / "pydicom-data" / "HTJ2KLossless_08_RGB.dcm",
    ):
        out = decoded(transcode(source.read_bytes(), ExplicitVRLittleEndian))
        assert out.get("LossyImageCompression") in (None, "00"), source.name
        assert np.array_equal(out.pixel_array, pixels(source)), source.name


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "ExplVR_BigEnd.dcm", "rtdose_expb.dcm"])
def test_big_endian_becomes_little_endian_with_the_same_values(name: str) -> None:
    source = PYDICOM_DATA / name
    for target in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        out = decoded(transcode(source.read_bytes(), target))
        original = pydicom.dcmread(source)
        assert out.file_meta.TransferSyntaxUID == target
        assert np.array_equal(out.pixel_array, pixels(source))
        assert out.Rows == original.Rows and out.get("PatientName") == original.get("PatientName")


def test_the_stored_syntax_is_returned_unchanged() -> None:
    data = (PYDICOM_DATA / "CT_small.dcm").read_bytes()
    assert transcode(data, ExplicitVRLittleEndian) is data
    assert to_explicit_little_endian(data) is data


def test_what_cannot_be_decoded_or_produced_is_refused() -> None:
    assert not can_transcode("1.2.840.10008.1.2.8.1", ExplicitVRLittleEndian)
    assert not can_transcode(ExplicitVRLittleEndian, "1.2.840.10008.1.2.4.50")
    assert can_transcode("1.2.840.10008.1.2.4.90", ImplicitVRLittleEndian)
    assert can_transcode(ExplicitVRBigEndian, ExplicitVRLittleEndian)
    with pytest.raises(CannotTranscode):
        transcode(SEG_RLE.read_bytes(), ExplicitVRLittleEndian)  # pydicom 3.0 cannot decode
    with pytest.raises(CannotTranscode):
        transcode(SEG_DEFLATE.read_bytes(), ExplicitVRLittleEndian)
    with pytest.raises(CannotTranscode):
        transcode(SEG_J2K.read_bytes(), "1.2.840.10008.1.2.4.50")


def test_data_set_offset_is_the_end_of_the_file_meta() -> None:
    data = (PYDICOM_DATA / "CT_small.dcm").read_bytes()
    offset = data_set_offset(data)
    assert data[offset : offset + 2] == b"\x08\x00"  # group 0008 starts the data set
    with pytest.raises(CannotTranscode):
        data_set_offset(b"not dicom")
