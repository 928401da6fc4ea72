"""Rendering one frame to an 8-bit JPEG / PNG / GIF: WADO-RS rendered resources, thumbnails,
image export.

Grayscale goes through the Modality LUT (rescale), then the VOI: the requested window, else the
data set's first window, else its VOI LUT, else the frame's min/max; MONOCHROME1 is inverted.
For integer pixels of up to 16 bits the whole chain is one 8-bit lookup table indexed by the
stored values, so a 2048×2048 radiograph costs a table lookup, not float math per pixel.
Colour is converted to RGB; PALETTE COLOR goes through its LUT. Non-square pixel aspect ratios
are not corrected.

References
----------
PS3.18 §8.3.5 (rendered media types and the window, viewport and quality parameters);
PS3.3 C.11.1 (Modality LUT), C.11.2.1.2 (window center/width, linear and sigmoid),
C.7.6.3.1.2 (photometric interpretation).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_voi_lut, convert_color_space, pixel_array
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from klinika.dicom.frames import number_of_frames

SUPPORTED_MEDIA_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif")
_WINDOW_FUNCTIONS = ("linear", "linear-exact", "sigmoid")
#: Image Pixel, Modality LUT and VOI LUT attributes: all that rendering one frame reads.
_RENDER_TAGS = (
    "00280002",
    "00280004",
    "00280006",
    "00280010",
    "00280011",
    "00280100",
    "00280101",
    "00280102",
    "00280103",
    "00281050",
    "00281051",
    "00281052",
    "00281053",
    "00281056",
    "00283010",
    "00281101",
    "00281102",
    "00281103",
    "00281201",
    "00281202",
    "00281203",
)


class RenderError(Exception):
    """A frame that cannot be rendered; the message says why."""


@dataclass(frozen=True)
class RenderOptions:
    """What the client asked for (PS3.18 §8.3.5.1)."""

    media_type: str = "image/jpeg"
    quality: int | None = None
    window: tuple[float, float, str] | None = None
    #: (rows, columns) the image is scaled to fit, keeping its aspect ratio
    viewport: tuple[int, int] | None = None
    #: the output is exactly ``viewport``, the image centred on black (PS3.18 §8.3.5.1.3)
    letterbox: bool = False
    #: the source region (sx, sy, sw, sh) to render; a negative sw or sh flips that axis
    region: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.media_type not in SUPPORTED_MEDIA_TYPES:
            raise RenderError(
                f"{self.media_type} is not offered; use one of {SUPPORTED_MEDIA_TYPES}"
            )
        if self.window is not None and self.window[2] not in _WINDOW_FUNCTIONS:
            raise RenderError(f"window function must be one of {_WINDOW_FUNCTIONS}")


def dataset_for_frame(metadata_json: str, frame: bytes, transfer_syntax: str) -> Dataset:
    """A single-frame data set made of an instance's stored DICOM JSON and one frame's bytes.

    Lets a frame be rendered from what the index holds and a byte-range read, without parsing
    the whole file. Bulk data references in the JSON are dropped.
    """
    document: dict[str, Any] = json.loads(metadata_json)
    kept = {tag: document[tag] for tag in _RENDER_TAGS if tag in document}
    if any("BulkDataURI" in value for value in kept.values()):
        raise RenderError("a LUT needed for rendering is bulk data; render from the file")
    dataset = Dataset.from_json(kept)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    compressed = transfer_syntax not in (
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
    )
    dataset.PixelData = encapsulate([frame]) if compressed else frame
    dataset["PixelData"].VR = "OB" if compressed or dataset.get("BitsAllocated", 8) <= 8 else "OW"
    dataset.set_original_encoding(transfer_syntax == ImplicitVRLittleEndian, True)
    return dataset


def render_frame(dataset: Dataset, frame_index: int, options: RenderOptions) -> bytes:
    """One frame (0-based) of ``dataset`` as an encoded 8-bit image.

    Raises
    ------
    RenderError
        No pixel data, no such frame, or pixel data that cannot be decoded here.
    """
    if not any(k in dataset for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise RenderError("the instance has no pixel data")
    frames = number_of_frames(dataset)
    if not 0 <= frame_index < frames:
        raise RenderError(f"frame {frame_index + 1} does not exist (the instance has {frames})")
    try:
        frame = pixel_array(dataset, index=frame_index, raw=True)
    except Exception as exc:  # decoders raise many types
        raise RenderError(f"the pixel data cannot be decoded: {exc}") from exc
    image = _to_display(dataset, frame, options.window)
    picture = Image.fromarray(np.ascontiguousarray(image))
    if options.region is not None:
        picture = _region(picture, options.region)
    if options.viewport:
        rows, columns = (max(v, 1) for v in options.viewport)
        if options.letterbox:
            scale = min(columns / picture.width, rows / picture.height)
            size = (max(round(picture.width * scale), 1), max(round(picture.height * scale), 1))
            scaled = picture.resize(size, Image.Resampling.BILINEAR)
            picture = Image.new(scaled.mode, (columns, rows))
            picture.paste(scaled, ((columns - size[0]) // 2, (rows - size[1]) // 2))
        else:
            picture.thumbnail((columns, rows), Image.Resampling.BILINEAR)
    return _encode(picture, options)


def _region(picture: Image.Image, region: tuple[int, int, int, int]) -> Image.Image:
    """The source region ``sx, sy, sw, sh`` (PS3.18 §8.3.5.1.3; sw or sh 0: to the edge),
    flipped where sw or sh is negative; raises RenderError when it lies outside the image."""
    sx, sy, sw, sh = region
    sw, sh = sw or picture.width - sx, sh or picture.height - sy
    left, right = sorted((sx, sx + sw))
    top, bottom = sorted((sy, sy + sh))
    if left < 0 or top < 0 or right > picture.width or bottom > picture.height or not sw or not sh:
        size = f"{picture.width}x{picture.height}"
        raise RenderError(f"the region {region} is not inside the {size} image")
    picture = picture.crop((left, top, right, bottom))
    if sw < 0:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if sh < 0:
        picture = picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return picture


def _to_display(
    dataset: Dataset, frame: np.ndarray, window: tuple[float, float, str] | None
) -> np.ndarray:
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":
        rgb = np.asarray(apply_color_lut(frame, dataset))
        return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[-1] == 3:
        if photometric.startswith("YBR") and photometric not in ("YBR_ICT", "YBR_RCT"):
            frame = convert_color_space(frame, photometric, "RGB")
        if frame.dtype != np.uint8:
            frame = _stretch(frame.astype(np.float32), float(frame.min()), float(frame.max()))
        return frame
    if frame.dtype == bool or int(dataset.get("BitsAllocated", 16)) == 1:
        return frame.astype(np.uint8) * 255
    image = _grayscale(dataset, frame, window)
    return 255 - image if photometric == "MONOCHROME1" else image


def _grayscale(
    dataset: Dataset, frame: np.ndarray, window: tuple[float, float, str] | None
) -> np.ndarray:
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    window = window or _dataset_window(dataset)
    if frame.dtype.kind in "iu" and frame.dtype.itemsize <= 2:
        # One lookup table over every possible stored value (PS3.3 C.11.1, C.11.2), indexed
        # by the raw 16 bits (signed values through their unsigned view: no copy of the frame).
        stored = np.arange(65536, dtype=np.uint32).astype(np.uint16)
        if frame.dtype.kind == "i":
            stored = stored.view(np.int16)
        domain = stored.astype(np.float32) * slope + intercept
        lut = _voi(dataset, domain, window, lambda: _modality_range(frame, slope, intercept))
        shown: np.ndarray = lut[frame.view(np.uint16) if frame.dtype.itemsize == 2 else frame]
        return shown
    values = frame.astype(np.float32) * slope + intercept
    return _voi(dataset, values, window, lambda: (float(values.min()), float(values.max())))


def _modality_range(frame: np.ndarray, slope: float, intercept: float) -> tuple[float, float]:
    ends = (float(frame.min()) * slope + intercept, float(frame.max()) * slope + intercept)
    return min(ends), max(ends)


def _voi(
    dataset: Dataset,
    values: np.ndarray,
    window: tuple[float, float, str] | None,
    value_range: Callable[[], tuple[float, float]],
) -> np.ndarray:
    """Modality values to 8 bits through the chosen VOI (``value_range`` only when needed)."""
    if window is not None:
        center, width, function = window
        width = max(width, 1.0)
        if function == "sigmoid":
            return (255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))).astype(np.uint8)
        if function == "linear-exact":
            return _stretch(values, center - width / 2, center + width / 2)
        return _stretch(values, center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2)
    if "VOILUTSequence" in dataset:
        mapped = np.asarray(apply_voi_lut(values.astype(np.int64), dataset), dtype=np.float32)
        return _stretch(mapped, float(mapped.min()), float(mapped.max()))
    return _stretch(values, *value_range())


def _dataset_window(dataset: Dataset) -> tuple[float, float, str] | None:
    """The data set's first window (PS3.3 C.11.2.1.2), if it has one that can be read."""
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center in (None, "") or width in (None, ""):
        return None
    try:
        first_center = float(center[0] if isinstance(center, MultiValue | list) else center)
        first_width = float(width[0] if isinstance(width, MultiValue | list) else width)
    except (TypeError, ValueError, IndexError):
        return None
    function = str(dataset.get("VOILUTFunction", "LINEAR")).lower().replace("_", "-")
    return first_center, first_width, function if function in _WINDOW_FUNCTIONS else "linear"


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        high = low + 1.0
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _encode(picture: Image.Image, options: RenderOptions) -> bytes:
    out = io.BytesIO()
    if options.media_type == "image/png":
        picture.save(out, format="PNG", compress_level=1)
    elif options.media_type == "image/gif":
        picture.save(out, format="GIF")
    else:
        picture.save(out, format="JPEG", quality=options.quality or 90)
    return out.getvalue()
