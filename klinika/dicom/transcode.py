"""Transfer syntaxes on the way out: the one transcoding room (DIMSE retrieve and WADO-RS).

Stored bytes are never changed; these functions produce what a peer or client accepts when it
is not what we hold. :func:`transcode` turns a Part-10 instance of any transfer syntax we can
decode into Explicit or Implicit VR Little Endian, with the Image Pixel module made right for
native pixel data; :func:`can_transcode` says beforehand whether that will work.

pydicom's ``Dataset.decompress`` does the decoding. What it leaves wrong, fixed here:

- 1-bit pixel data (SEG) is written one byte per pixel: packed again (PS3.5 §8.1.1).
- ``YBR_FULL_422`` decoded without colour conversion keeps its name although the data is no
  longer subsampled: JPEG colour data is converted to RGB instead, as DCMTK's ``dcmdjpeg`` does.
- Lossy sources are not flagged: Lossy Image Compression (and its method and ratio) are set
  (PS3.3 C.7.6.1.1.5), read from the code stream where the syntax may be lossless or lossy.
- Explicit VR Big Endian cannot be re-encoded as little endian by ``save_as``: the word-sized
  binary values (OW, OF, OL, OD, OV) are byte-swapped here and the pixel data re-serialised.

References
----------
PS3.5 §8 (native and encapsulated pixel data), §10 and Annex A (transfer syntaxes),
PS3.3 C.7.6.3 (Image Pixel module), C.7.6.1.1.5 (lossy image compression),
PS3.18 §8.7.3 (acceptable media types and transfer syntaxes for DICOMweb),
PS3.18 Table 8.7.3-2/3 (media types of compressed frames).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pack_bits, pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from klinika.errors import NotAcceptable

UNCOMPRESSED = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
)
#: What :func:`transcode` can produce.
TARGETS = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

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

_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57")
_JPEG_LOSSLESS = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
#: Lossy Image Compression Method (0028,2114) of syntaxes that can be lossy (PS3.3 C.7.6.1.1.5.1).
_LOSSY_METHODS = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",
}
#: Byte size of the words of binary VRs whose byte order follows the transfer syntax (PS3.5 §7.3).
_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
#: Explicit VRs with a reserved field and a 4-byte length (PS3.5 Table 7.1-1).
_LONG_VRS = {str(vr).encode() for vr in EXPLICIT_VR_LENGTH_32}


class CannotTranscode(NotAcceptable):
    """The instance cannot be produced in the asked transfer syntax (undecodable pixel data,
    an unsupported target); the message says which and why."""


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


def can_transcode(source: str, target: str) -> bool:
    """Whether :func:`transcode` can turn ``source`` into ``target`` (by transfer syntax).

    A particular instance may still fail (a broken code stream, a bit depth the decoder does
    not take): :func:`transcode` then raises :class:`CannotTranscode`.
    """
    if source == target:
        return True
    return target in TARGETS and can_decode(source)


def transcode(part10: bytes, target: str) -> bytes:
    """The Part-10 instance in ``target`` (Explicit or Implicit VR Little Endian).

    Compressed pixel data is decoded and the Image Pixel module updated; the SOP Instance UID
    is kept (a change of transfer syntax is not a new instance, PS3.5 §10). ``part10`` is
    returned as it is when it already is in ``target``.

    Raises
    ------
    CannotTranscode
        When ``target`` is not one we produce, or the pixel data cannot be decoded.
    """
    if target not in TARGETS:
        raise CannotTranscode(f"transcoding to {target} is not supported")
    try:
        dataset = dcmread(io.BytesIO(part10), force=True)
    except Exception as exc:  # pydicom raises many types on broken files
        raise CannotTranscode(f"the stored instance cannot be read: {exc}") from exc
    source = str(dataset.file_meta.get("TransferSyntaxUID", ""))
    if source == target:
        return part10
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if source == ExplicitVRBigEndian:
                _to_little_endian(dataset)
            elif not is_native(source) and "PixelData" in dataset:
                _decompress(dataset, source)
    except CannotTranscode:
        raise
    except Exception as exc:  # decoders raise many types
        raise CannotTranscode(f"cannot decode the {UID(source).name} pixel data: {exc}") from exc
    try:
        return _encoded(dataset, target, force=source == ExplicitVRBigEndian)
    except Exception as exc:  # an element pydicom cannot write in the target encoding
        raise CannotTranscode(f"cannot encode the instance as {UID(target).name}: {exc}") from exc


def to_explicit_little_endian(part10: bytes) -> bytes:
    """The instance as Explicit VR Little Endian (see :func:`transcode`)."""
    return transcode(part10, ExplicitVRLittleEndian)


def data_set_offset(part10: bytes) -> int:
    """Where the data set starts in a Part-10 file: after the preamble, ``DICM`` and the File
    Meta Information (group 0002, always Explicit VR Little Endian; PS3.10 §7.1).

    Raises
    ------
    CannotTranscode
        When ``part10`` has no preamble and ``DICM`` prefix.
    """
    if part10[128:132] != b"DICM":
        raise CannotTranscode("not a DICOM Part-10 file (no DICM prefix)")
    offset = 132
    while offset + 8 <= len(part10) and part10[offset : offset + 2] == b"\x02\x00":
        if part10[offset + 4 : offset + 6] in _LONG_VRS:
            offset += 12 + int.from_bytes(part10[offset + 8 : offset + 12], "little")
        else:
            offset += 8 + int.from_bytes(part10[offset + 6 : offset + 8], "little")
    return offset


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


# ---------------------------------------------------------------------------- internals
def _encoded(dataset: FileDataset, target: str, *, force: bool) -> bytes:
    """Part-10 bytes in ``target``; ``force`` writes a data set read in another byte order
    (its values already converted by :func:`_to_little_endian`)."""
    meta = dataset.file_meta
    meta.TransferSyntaxUID = UID(target)
    if "SOPClassUID" in dataset and not meta.get("MediaStorageSOPClassUID"):
        meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    if "SOPInstanceUID" in dataset and not meta.get("MediaStorageSOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    for _ in dataset.iterall():  # raw elements get their VRs (a file read as implicit VR)
        pass
    out = io.BytesIO()
    implicit = target == ImplicitVRLittleEndian
    if force:
        dcmwrite(out, dataset, implicit_vr=implicit, little_endian=True, force_encoding=True)
    else:
        dcmwrite(out, dataset, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    return out.getvalue()


def _decompress(dataset: FileDataset, source: str) -> None:
    """Decode encapsulated pixel data in place, then fix what pydicom leaves wrong."""
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    lossy_method = _lossy_method(dataset, source)
    compressed_size = sum(len(f) for f in _fragments(dataset))
    # JPEG colour is converted to RGB (the decoder's own conversion, as pydicom's pixel_array
    # gives it); J2K's ICT/RCT are undone by the decoder. Other YBR data keeps its values.
    as_rgb = photometric.startswith("YBR") and (
        source in _JPEG + _JPEG_LOSSLESS or photometric in ("YBR_FULL_422", "YBR_ICT", "YBR_RCT")
    )
    dataset.decompress(generate_instance_uid=False, as_rgb=as_rgb)
    if str(dataset.get("PhotometricInterpretation", "")) in ("YBR_FULL_422", "YBR_ICT", "YBR_RCT"):
        dataset.PhotometricInterpretation = "RGB" if as_rgb else "YBR_FULL"
    if int(dataset.BitsAllocated) == 1:
        _pack_one_bit(dataset)
    if int(dataset.get("SamplesPerPixel", 1)) > 1:
        dataset.PlanarConfiguration = 0
    if lossy_method is not None:
        _flag_lossy(dataset, lossy_method, compressed_size)


def _pack_one_bit(dataset: Dataset) -> None:
    """Re-pack pixel data written one byte per pixel into bits, frames contiguous (PS3.5 §8.1.1)."""
    pixels = int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("NumberOfFrames", 1) or 1)
    pixels *= int(dataset.get("SamplesPerPixel", 1))
    data = bytes(dataset.PixelData)
    if len(data) >= pixels:  # unpacked: one byte per pixel
        dataset.PixelData = pack_bits(np.frombuffer(data[:pixels], dtype=np.uint8), pad=True)
    dataset["PixelData"].VR = "OB"


def _flag_lossy(dataset: Dataset, method: str, compressed_size: int) -> None:
    """Lossy Image Compression and its method and ratio (PS3.3 C.7.6.1.1.5)."""
    dataset.LossyImageCompression = "01"
    if "LossyImageCompressionMethod" in dataset or "LossyImageCompressionRatio" in dataset:
        return  # an earlier lossy step is already described; ours is the same one
    dataset.LossyImageCompressionMethod = method
    if compressed_size:
        ratio = len(bytes(dataset.PixelData)) / compressed_size
        dataset.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]


def _fragments(dataset: Dataset) -> list[bytes]:
    from pydicom.encaps import generate_fragments

    try:
        return list(generate_fragments(dataset.PixelData))
    except Exception:  # a broken encapsulation: the decoder will say so
        return []


def _lossy_method(dataset: Dataset, source: str) -> str | None:
    """The lossy method if the encapsulated pixel data was lossy compressed, else None.

    JPEG baseline/extended are always lossy; JPEG-LS near-lossless, JPEG 2000 and HTJ2K may be
    either: the data set's own flag is believed, else the code stream says (JPEG-LS ``NEAR``
    in the scan header, JPEG 2000 wavelet: 9-7 irreversible is lossy; ITU-T T.87 / T.800).
    """
    method = _LOSSY_METHODS.get(source)
    if method is None:
        return None
    flag = str(dataset.get("LossyImageCompression", ""))
    if flag == "01" or source in _JPEG[:2]:
        return method
    if flag == "00":
        return None
    first = next(iter(_fragments(dataset)), b"")
    if source == "1.2.840.10008.1.2.4.81":
        sos = first.find(b"\xff\xda")
        if sos < 0 or len(first) < sos + 5:
            return method
        components = first[sos + 4]
        near = sos + 5 + 2 * components
        return method if near < len(first) and first[near] != 0 else None
    cod = first.find(b"\xff\x52")
    transform = cod + 13  # marker, Lcod, Scod, SGcod(4), levels, cb w/h, cb style, transform
    if cod < 0 or transform >= len(first):
        return method
    return method if first[transform] == 0 else None


def _to_little_endian(dataset: FileDataset) -> None:
    """Prepare a big-endian data set for little-endian writing: every value converted from
    its big-endian bytes, word-sized binary values swapped, pixel data re-serialised."""
    pixels = None
    if "PixelData" in dataset:
        pixels = pixel_array(dataset, raw=True)
    for element in dataset.iterall():  # parses every raw element with the old byte order
        size = _WORD_SIZES.get(str(element.VR))
        if size and element.tag != 0x7FE00010 and isinstance(element.value, bytes):
            swapped = np.frombuffer(element.value, dtype=f">u{size}").astype(f"<u{size}")
            element.value = swapped.tobytes()
    if pixels is not None:
        if int(dataset.BitsAllocated) == 1:
            dataset.PixelData = pack_bits(pixels.ravel().astype(np.uint8), pad=True)
            dataset["PixelData"].VR = "OB"
        else:
            data = np.ascontiguousarray(pixels)
            raw = data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()
            dataset.PixelData = raw + (b"\x00" if len(raw) % 2 else b"")
            dataset["PixelData"].VR = "OB" if int(dataset.BitsAllocated) <= 8 else "OW"
        if int(dataset.get("SamplesPerPixel", 1)) > 1:
            dataset.PlanarConfiguration = 0
