"""Transfer syntaxes on the way out: frame media types, decoding frames, re-encoding instances.

Stored bytes are never changed; these functions produce what a client asked for when it is
not what we hold.

References
----------
PS3.18 §8.7.3 (acceptable media types and transfer syntaxes for DICOMweb),
PS3.18 Table 8.7.3-2/3 (media types of compressed frames), PS3.5 §10 (transfer syntaxes).
"""

from __future__ import annotations

import io

import numpy as np
from pydicom import dcmread
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from klinika.errors import NotAcceptable

UNCOMPRESSED = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
)

#: Media type of a single compressed frame, by transfer syntax (PS3.18 Table 8.7.3-2).
FRAME_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.100": "video/mpeg",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
}


def is_native(transfer_syntax: str) -> bool:
    """Pixel data not encapsulated (PS3.5 §8.2)."""
    return transfer_syntax in UNCOMPRESSED


def can_decode(transfer_syntax: str) -> bool:
    """Whether pydicom with the installed plugins can decode this transfer syntax."""
    if is_native(transfer_syntax):
        return True
    try:
        return bool(get_decoder(UID(transfer_syntax)).is_available)
    except (NotImplementedError, ValueError, KeyError):
        return False


def decode_frame(part10: bytes, frame_index: int) -> bytes:
    """One frame as uncompressed little-endian pixel bytes (stored values, no colour change).

    Raises
    ------
    NotAcceptable
        When the frame cannot be decoded with the installed decoders.
    """
    try:
        array = pixel_array(io.BytesIO(part10), index=frame_index, raw=True)
    except Exception as exc:  # decoders raise many types
        raise NotAcceptable(f"the frame cannot be decoded to native pixels: {exc}") from exc
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def to_explicit_little_endian(part10: bytes) -> bytes:
    """The instance re-encoded as Explicit VR Little Endian, decompressed if needed.

    The SOP Instance UID is kept: lossless decompression does not change the instance.

    Raises
    ------
    NotAcceptable
        When the pixel data cannot be decoded.
    """
    dataset = dcmread(io.BytesIO(part10))
    transfer_syntax = str(dataset.file_meta.TransferSyntaxUID)
    if transfer_syntax == ExplicitVRLittleEndian:
        return part10
    try:
        if not is_native(transfer_syntax) and "PixelData" in dataset:
            dataset.decompress(generate_instance_uid=False, as_rgb=False)
    except Exception as exc:
        raise NotAcceptable(f"cannot decompress {transfer_syntax}: {exc}") from exc
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    dataset.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return out.getvalue()
