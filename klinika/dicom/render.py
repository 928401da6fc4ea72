"""Rendering frames to JPEG/PNG for WADO-RS rendered resources and thumbnails.

References
----------
PS3.18 §8.3.5 (rendered media types, window/viewport/quality), PS3.3 C.11.2.1.2 (windowing).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut, convert_color_space, pixel_array

SUPPORTED_MEDIA_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif")


class RenderError(Exception):
    """A frame that cannot be rendered; the message says why."""


@dataclass(frozen=True)
class RenderOptions:
    media_type: str = "image/jpeg"
    quality: int | None = None
    window: tuple[float, float, str] | None = None
    viewport: tuple[int, int] | None = None


def _to_8bit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        high = low + 1
    scaled = (values.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _window_linear(values: np.ndarray, center: float, width: float) -> np.ndarray:
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    return _to_8bit(values, low, high)


def _grayscale(
    dataset: Dataset, frame: np.ndarray, window: tuple[float, float, str] | None
) -> np.ndarray:
    values = apply_modality_lut(frame, dataset) if "PixelData" in dataset else frame
    if window is not None:
        center, width, function = window
        if function == "sigmoid":
            out = 255.0 / (1 + np.exp(-4 * (values.astype(np.float32) - center) / max(width, 1)))
            image = out.astype(np.uint8)
        else:
            image = _window_linear(values, center, width)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:
        center = dataset.WindowCenter
        width = dataset.WindowWidth
        center = float(
            center[0]
            if isinstance(center, list | tuple)
            or (hasattr(center, "__getitem__") and not isinstance(center, str | float | int))
            else center
        )
        width = float(
            width[0]
            if hasattr(width, "__getitem__") and not isinstance(width, str | float | int)
            else width
        )
        image = _window_linear(values, center, width)
    elif "VOILUTSequence" in dataset:
        voi = apply_voi_lut(values, dataset)
        image = _to_8bit(voi, float(voi.min()), float(voi.max()))
    else:
        image = _to_8bit(values, float(values.min()), float(values.max()))
    if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
        image = 255 - image
    return image


def render_frame(dataset: Dataset, frame_index: int, options: RenderOptions) -> bytes:
    """One frame as an 8-bit JPEG/PNG/GIF image."""
    if (
        "PixelData" not in dataset
        and "FloatPixelData" not in dataset
        and "DoubleFloatPixelData" not in dataset
    ):
        raise RenderError("the instance has no pixel data")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if not 0 <= frame_index < frames:
        raise RenderError(f"frame {frame_index + 1} does not exist (the instance has {frames})")
    try:
        frame = pixel_array(dataset, index=frame_index) if frames > 1 else dataset.pixel_array
    except Exception as exc:
        raise RenderError(f"the pixel data cannot be decoded: {exc}") from exc
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        image = np.asarray(apply_color_lut(frame, dataset))
        image = (image >> 8).astype(np.uint8) if image.dtype != np.uint8 else image
        mode = "RGB"
    elif int(dataset.get("SamplesPerPixel", 1)) == 3:
        if (
            photometric.startswith("YBR")
            and frame.dtype == np.uint8
            and photometric != "YBR_FULL_422"
        ) or photometric == "YBR_FULL":
            frame = convert_color_space(frame, "YBR_FULL", "RGB")
        image = (
            frame
            if frame.dtype == np.uint8
            else _to_8bit(frame, float(frame.min()), float(frame.max()))
        )
        mode = "RGB"
    else:
        if frame.dtype == bool or int(dataset.get("BitsAllocated", 8)) == 1:
            image = frame.astype(np.uint8) * 255
        else:
            image = _grayscale(dataset, frame, options.window)
        mode = "L"
    picture = Image.fromarray(np.ascontiguousarray(image), mode=mode)
    if options.viewport:
        rows, cols = options.viewport
        picture.thumbnail((max(cols, 1), max(rows, 1)), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    if options.media_type == "image/png":
        picture.save(out, format="PNG", compress_level=1)
    elif options.media_type == "image/gif":
        picture.save(out, format="GIF")
    else:
        picture.save(out, format="JPEG", quality=options.quality or 90)
    return out.getvalue()


def render_thumbnail(
    dataset: Dataset, frame_index: int = 0, size: int = 128, media_type: str = "image/jpeg"
) -> bytes:
    return render_frame(
        dataset, frame_index, RenderOptions(media_type=media_type, viewport=(size, size))
    )
