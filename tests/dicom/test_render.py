"""Rendering frames to 8-bit images (PS3.18 §8.3.5, PS3.3 C.11)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array

from klinika.dicom.header import parse_instance
from klinika.dicom.json import metadata_json
from klinika.dicom.render import RenderError, RenderOptions, dataset_for_frame, render_frame
from tests.conftest import sample_files
from tests.factories import make_instance


def decodable(path) -> bool:  # type: ignore[no-untyped-def]
    try:
        pixel_array(pydicom.dcmread(path, force=True), index=0)
        return True
    except Exception:
        return False


SAMPLES = [p for p in sample_files() if not p.name.startswith("malformed_")]
DECODABLE = [p for p in SAMPLES if decodable(p)]


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def dataset(**attributes) -> pydicom.Dataset:  # type: ignore[no-untyped-def]
    return pydicom.dcmread(io.BytesIO(make_instance(rows=16, columns=16, **attributes)))


@pytest.mark.parametrize("path", DECODABLE, ids=lambda p: p.name)
def test_every_decodable_sample_renders_to_an_image_of_its_size(path) -> None:
    ds = pydicom.dcmread(path, force=True)
    image = Image.open(io.BytesIO(render_frame(ds, 0, RenderOptions())))
    assert image.format == "JPEG"
    assert image.size == (int(ds.Columns), int(ds.Rows))


# the undecodable samples are also malformed in ways pydicom warns about (VR, values) while
# reading them; what this test checks is the RenderError
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_undecodable_pixel_data_raises_a_render_error() -> None:
    undecodable = [
        p for p in SAMPLES if not decodable(p) and "PixelData" in pydicom.dcmread(p, force=True)
    ]
    assert undecodable
    for path in undecodable:
        with pytest.raises(RenderError):
            render_frame(pydicom.dcmread(path, force=True), 0, RenderOptions())


def test_missing_frame_and_missing_pixels_are_render_errors() -> None:
    with pytest.raises(RenderError, match="frame 2 does not exist"):
        render_frame(dataset(), 1, RenderOptions())
    sr = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    with pytest.raises(RenderError, match="no pixel data"):
        render_frame(sr, 0, RenderOptions())


def test_explicit_window_maps_values_linearly() -> None:
    ds = dataset(RescaleSlope=1, RescaleIntercept=0)
    pixels = ds.pixel_array
    center, width = float(np.median(pixels)), 200.0
    out = png(render_frame(ds, 0, RenderOptions("image/png", window=(center, width, "linear"))))
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    expected = np.clip((pixels - low) * 255 / (high - low), 0, 255).astype(np.uint8)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_a_narrower_window_saturates_more_pixels() -> None:
    ds = dataset()
    center = float(np.median(ds.pixel_array))
    wide = png(render_frame(ds, 0, RenderOptions("image/png", window=(center, 4000, "linear"))))
    narrow = png(render_frame(ds, 0, RenderOptions("image/png", window=(center, 50, "linear"))))
    saturated = lambda image: int(((image == 0) | (image == 255)).sum())  # noqa: E731
    assert saturated(narrow) > saturated(wide)


def test_monochrome1_is_the_inverse_of_monochrome2() -> None:
    plain = png(render_frame(dataset(), 0, RenderOptions("image/png")))
    inverted_ds = dataset(PhotometricInterpretation="MONOCHROME1")
    inverted = png(render_frame(inverted_ds, 0, RenderOptions("image/png")))
    assert np.array_equal(inverted, 255 - plain)


def test_rescale_is_applied_before_the_window() -> None:
    base = dataset(RescaleSlope=1, RescaleIntercept=0)
    shifted = dataset(RescaleSlope=1, RescaleIntercept=-1000)
    window = (float(np.median(base.pixel_array)), 300.0, "linear")
    a = png(render_frame(base, 0, RenderOptions("image/png", window=window)))
    b = png(render_frame(shifted, 0, RenderOptions("image/png", window=window)))
    assert not np.array_equal(a, b) and b.mean() < a.mean()


def test_viewport_keeps_the_aspect_ratio() -> None:
    ds = pydicom.dcmread(io.BytesIO(make_instance(rows=64, columns=128)))
    image = Image.open(io.BytesIO(render_frame(ds, 0, RenderOptions(viewport=(32, 32)))))
    assert image.size == (32, 16)


def test_multi_frame_renders_the_requested_frame() -> None:
    ds = pydicom.dcmread(io.BytesIO(make_instance(rows=16, columns=16, frames=3)))
    images = [png(render_frame(ds, i, RenderOptions("image/png"))) for i in range(3)]
    assert not np.array_equal(images[0], images[2])


def test_color_samples_come_out_rgb() -> None:
    for name in (
        "examples_rgb_color.dcm",
        "SC_rgb_rle.dcm",
        "examples_ybr_color.dcm",
        "examples_palette.dcm",
    ):
        ds = pydicom.dcmread(get_testdata_file(name))
        image = Image.open(io.BytesIO(render_frame(ds, 0, RenderOptions("image/png"))))
        assert image.mode == "RGB", name


def test_rendering_from_index_json_and_frame_bytes_equals_rendering_the_file() -> None:
    for name in ("CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm"):
        data = Path(get_testdata_file(name)).read_bytes()  # type: ignore[arg-type]
        parsed = parse_instance(data)
        location = parsed.pixel_location
        assert location is not None and location.frames is not None
        frame = b"".join(data[o : o + n] for o, n in location.frames[0])
        single = dataset_for_frame(
            metadata_json(parsed.dataset, "OB"), frame, parsed.transfer_syntax
        )
        options = RenderOptions("image/png")
        assert (
            png(render_frame(single, 0, options)).tolist()
            == png(render_frame(pydicom.dcmread(io.BytesIO(data)), 0, options)).tolist()
        ), name
