"""Where each frame's bytes lie inside a stored Part-10 file, found once at ingest.

With these offsets WADO-RS serves frames by reading byte ranges, without parsing or decoding
the file. Layouts that cannot be mapped cheaply (bit-packed frames, ambiguous fragments, big
endian, deflate) get no location and are served through pydicom instead.

References
----------
PS3.5 §8.2 (native pixel data), PS3.5 §A.4 (encapsulation, Basic Offset Table),
PS3.3 C.7.6.3.1.8 (Extended Offset Table).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets, parse_fragments
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import VR as VR_ALL

from klinika.errors import InvalidInstance, NotFound, RejectReason

_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR")
_ALL_VRS = {vr.encode() for vr in VR_ALL}
NATIVE_LITTLE_ENDIAN = (ImplicitVRLittleEndian, ExplicitVRLittleEndian)


@dataclass(frozen=True)
class PixelLocation:
    """Byte ranges of each frame: ``frames[i]`` lists the (offset, length) of its fragments."""

    encapsulated: bool
    frames: tuple[tuple[tuple[int, int], ...], ...] | None
    value_offset: int
    value_length: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "encapsulated": self.encapsulated,
            "frames": self.frames,
            "value_offset": self.value_offset,
            "value_length": self.value_length,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PixelLocation:
        frames = data.get("frames")
        return cls(
            encapsulated=bool(data["encapsulated"]),
            frames=None
            if frames is None
            else tuple(tuple((int(o), int(n)) for o, n in f) for f in frames),
            value_offset=int(data["value_offset"]),
            value_length=data.get("value_length"),
        )


def number_of_frames(dataset: Dataset) -> int:
    """NumberOfFrames, 1 when absent or unreadable (PS3.3 C.7.6.6)."""
    try:
        return max(int(dataset.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def native_frame_length(dataset: Dataset) -> int | None:
    """Bytes in one uncompressed frame, or None when frames are not byte-aligned."""
    try:
        rows, cols = int(dataset.Rows), int(dataset.Columns)
        samples = int(dataset.get("SamplesPerPixel", 1))
        bits = int(dataset.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    if bits % 8:
        return None
    return rows * cols * samples * bits // 8


def locate_pixel_data(
    data: bytes, offset: int, dataset: Dataset, transfer_syntax: str
) -> PixelLocation | None:
    """Map the frames of the pixel data element that starts at ``offset``.

    Raises
    ------
    InvalidInstance
        When the element is cut short (its declared length runs past the end of the file).
    """
    if transfer_syntax == ExplicitVRBigEndian:
        return None
    # Decide per element: some files mix encodings despite their transfer syntax.
    implicit = data[offset + 4 : offset + 6] not in _ALL_VRS
    if implicit:
        length = struct.unpack_from("<L", data, offset + 4)[0]
        value_offset = offset + 8
    else:
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            length = struct.unpack_from("<L", data, offset + 8)[0]
            value_offset = offset + 12
        else:
            length = struct.unpack_from("<H", data, offset + 6)[0]
            value_offset = offset + 8
    tag = struct.unpack_from("<HH", data, offset)
    is_pixel_data = tag == (0x7FE0, 0x0010)
    frames_count = number_of_frames(dataset)

    if length != 0xFFFFFFFF:
        if value_offset + length > len(data):
            raise InvalidInstance(
                f"pixel data declares {length} bytes but only {len(data) - value_offset} follow",
                RejectReason.UNREADABLE,
            )
        frame_length = native_frame_length(dataset)
        frames = None
        if is_pixel_data and frame_length and frame_length * frames_count <= length:
            frames = tuple(
                ((value_offset + i * frame_length, frame_length),) for i in range(frames_count)
            )
        return PixelLocation(False, frames, value_offset, length)

    if UID(transfer_syntax) in NATIVE_LITTLE_ENDIAN:
        raise InvalidInstance(
            "pixel data has an undefined length but the transfer syntax is not encapsulated",
            RejectReason.UNREADABLE,
        )
    return PixelLocation(
        True, _encapsulated_frames(data, value_offset, frames_count, dataset), value_offset, None
    )


def _encapsulated_frames(
    data: bytes, value_offset: int, frames_count: int, dataset: Dataset
) -> tuple[tuple[tuple[int, int], ...], ...] | None:
    view = data
    try:
        basic = parse_basic_offsets(io.BytesIO(view[value_offset:]))
        bot_item_length = struct.unpack_from("<L", data, value_offset + 4)[0]
        first = value_offset + 8 + bot_item_length
        count, positions = parse_fragments(io.BytesIO(view[first:]))
    except (ValueError, struct.error) as exc:
        raise InvalidInstance(
            f"encapsulated pixel data is malformed: {exc}", RejectReason.UNREADABLE
        ) from exc
    fragments = []
    for pos in positions:
        absolute = first + pos
        length = struct.unpack_from("<L", data, absolute + 4)[0]
        if absolute + 8 + length > len(data):
            raise InvalidInstance(
                "a pixel data fragment runs past the end of the file", RejectReason.UNREADABLE
            )
        fragments.append((absolute + 8, length))
    if count == 0:
        raise InvalidInstance("encapsulated pixel data has no fragments", RejectReason.UNREADABLE)
    if frames_count == 1:
        return (tuple(fragments),)
    if count == frames_count:
        return tuple((f,) for f in fragments)
    if basic and len(basic) == frames_count:
        starts = [first + b for b in basic]
        grouped: list[list[tuple[int, int]]] = [[] for _ in basic]
        for off, length in fragments:
            index = max(i for i, s in enumerate(starts) if s <= off - 8)
            grouped[index].append((off, length))
        return tuple(tuple(g) for g in grouped)
    return None


def frame_from_part10(part10: bytes, frame_index: int) -> bytes:
    """One frame's bytes as stored (compressed frames stay compressed), the slow way.

    Used when ingest could not map the frames (bit-packed pixels, big endian, deflate,
    fragments without an offset table).
    """
    import io as _io

    from pydicom import dcmread
    from pydicom.encaps import get_frame

    from klinika.dicom.transcode import decode_frame, is_native

    dataset = dcmread(_io.BytesIO(part10))
    if "PixelData" not in dataset:
        raise NotFound("the instance has no pixel data")
    transfer_syntax = str(dataset.file_meta.TransferSyntaxUID)
    if is_native(transfer_syntax):
        return decode_frame(part10, frame_index)
    return bytes(
        get_frame(dataset.PixelData, frame_index, number_of_frames=number_of_frames(dataset))
    )
