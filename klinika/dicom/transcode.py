"""Transfer syntaxes on the way out: the one transcoding room (DIMSE retrieve and WADO-RS).

Stored bytes are never changed; these functions produce what a peer or client accepts when it
is not what we hold. :func:`transcode` turns a Part-10 instance of any transfer syntax we can
decode into Explicit or Implicit VR Little Endian, with the Image Pixel module made right for
native pixel data, and from there into a compressed syntax of :data:`ENCODERS` (JPEG
baseline, JPEG-LS lossless, JPEG 2000 lossless and lossy, RLE); :func:`can_transcode` says
beforehand whether that will work for a transfer syntax, :func:`can_encode` for an instance's
pixel module. :func:`encoded_frames` gives the frames of the result (WADO-RS ``/frames``).

Encoders: pydicom's ``Dataset.compress`` with pylibjpeg-rle / pyjpegls / pylibjpeg-openjpeg
for RLE, JPEG-LS and JPEG 2000; Pillow (libjpeg) for JPEG baseline, which pydicom cannot
encode; HTJ2K (lossless ``.4.201``, lossy ``.4.203``, RPCL progression) with OpenJPH's
``ojph_compress`` (Debian ``openjph-tools``; no Python package writes HTJ2K: OpenJPEG only
decodes it). HTJ2K with RPCL Options (``.4.202``) needs TLM marker segments, which
``ojph_compress`` 0.9 does not write (it has no TLM or tile-part option): refused with that
reason, as is every target when its encoder is missing. Signed samples, which its raw reader
does not sign-extend, are given to it offset to unsigned and the code stream's components
then marked signed (see :func:`_signed_components`).

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

import functools
import io
import os
import shutil
import subprocess
import tempfile
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pack_bits, pixel_array
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    MPEG2MPML,
    MPEG4HP41,
    MPEG4HP41BD,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from klinika.dicom.warned import silenced
from klinika.errors import NotAcceptable

UNCOMPRESSED = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
)
#: The High-Throughput JPEG 2000 syntaxes (encoded with OpenJPH's ``ojph_compress``).
HTJ2K_SYNTAXES = (HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K)
#: Compressed syntaxes :func:`transcode` can encode into.
ENCODERS = (
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
    HTJ2KLossless,
    HTJ2K,
)
LOSSY_TARGETS = (JPEGBaseline8Bit, JPEG2000, HTJ2K)
#: What :func:`transcode` can produce.
TARGETS = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, *ENCODERS)
#: Lossy encodings we produce: JPEG baseline at this quality, JPEG 2000 at this ratio.
JPEG_QUALITY = 90
J2K_RATIO = 10.0

#: Media type of a single compressed frame, by transfer syntax (PS3.18 Table 8.7.3-2).
FRAME_MEDIA_TYPES: dict[str, str] = {
    JPEGBaseline8Bit: "image/jpeg",
    JPEGExtended12Bit: "image/jpeg",
    JPEGLossless: "image/jpeg",
    JPEGLosslessSV1: "image/jpeg",
    JPEGLSLossless: "image/jls",
    JPEGLSNearLossless: "image/jls",
    JPEG2000Lossless: "image/jp2",
    JPEG2000: "image/jp2",
    JPEG2000MCLossless: "image/jpx",
    JPEG2000MC: "image/jpx",
    HTJ2KLossless: "image/jphc",
    HTJ2KLosslessRPCL: "image/jphc",
    HTJ2K: "image/jphc",
    RLELossless: "image/dicom-rle",
    MPEG2MPML: "video/mpeg",
    MPEG4HP41: "video/mp4",
    MPEG4HP41BD: "video/mp4",
}

#: The transfer syntax a frame media type means when it names none (PS3.18 Table 8.7.3-5).
MEDIA_TYPE_DEFAULT_SYNTAX: dict[str, str] = {
    "image/jpeg": JPEGLosslessSV1,
    "image/jls": JPEGLSLossless,
    "image/jp2": JPEG2000Lossless,
    "image/jpx": JPEG2000MCLossless,
    "image/jphc": HTJ2KLossless,
    "image/dicom-rle": RLELossless,
    "video/mpeg": MPEG2MPML,
    "video/mp4": MPEG4HP41,
}

_JPEG = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless)
_JPEG_LOSSLESS = (JPEGLossless, JPEGLosslessSV1)
#: Lossy Image Compression Method (0028,2114) of syntaxes that can be lossy (PS3.3 C.7.6.1.1.5.1).
_LOSSY_METHODS: dict[str, str] = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEGLSNearLossless: "ISO_14495_1",
    JPEG2000: "ISO_15444_1",
    HTJ2K: "ISO_15444_15",
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
    if target in HTJ2K_SYNTAXES and can_encode(target, bits_allocated=0) is not None:
        return False  # no encoder
    return target in TARGETS and can_decode(source)


def can_encode(
    target: str, *, bits_allocated: int, pixel_representation: int = 0, samples: int = 1
) -> str | None:
    """Why an image of this pixel module cannot be encoded in ``target``, or None if it can.

    JPEG baseline takes 8-bit unsigned samples (ISO 10918-1 baseline, PS3.5 §8.2.1); JPEG-LS
    and JPEG 2000 take 2 to 16 bits; RLE any of 8, 16 and 32 bits (PS3.5 Annex G); 1-bit
    data (SEG) is only sent native. Data sets without pixel data can take any syntax.
    """
    if target == HTJ2KLosslessRPCL:
        return (
            "HTJ2K with RPCL Options needs TLM marker segments, which the installed HTJ2K "
            f"encoder does not write; ask for {HTJ2KLossless} (HTJ2K lossless, RPCL order)"
        )
    if target in HTJ2K_SYNTAXES and _ojph_compress() is None:
        return "no HTJ2K encoder is installed (ojph_compress of Debian's openjph-tools)"
    if target not in TARGETS:
        return f"transcoding to {target} is not supported"
    if target not in ENCODERS or bits_allocated == 0:
        return None
    name = UID(target).name
    if bits_allocated == 1:
        return f"1-bit pixel data is sent uncompressed only, not as {name}"
    if target == JPEGBaseline8Bit and (bits_allocated != 8 or pixel_representation != 0):
        return f"{name} takes 8-bit unsigned pixels; these have {bits_allocated} bits allocated"
    if target == RLELossless and bits_allocated not in (8, 16, 32):
        return f"{name} takes 8, 16 or 32 bits allocated, not {bits_allocated}"
    if (
        target in (JPEGLSLossless, JPEG2000Lossless, JPEG2000, *HTJ2K_SYNTAXES)
        and bits_allocated > 16
    ):
        return f"{name} takes at most 16 bits, not {bits_allocated}"
    if samples not in (1, 3):
        return f"{name} takes 1 or 3 samples per pixel, not {samples}"
    return None


def why_not(source: str, target: str, metadata: dict[str, Any]) -> str | None:
    """Why an instance stored in ``source`` with this DICOM JSON ``metadata`` (PS3.18 F.2)
    cannot be sent in ``target``, or None when :func:`transcode` will do it."""
    if source == target:
        return None
    if target not in TARGETS:
        return can_encode(target, bits_allocated=0) or f"transcoding to {target} is not supported"
    if not can_decode(source):
        return f"the stored {UID(source).name} pixel data cannot be decoded here"
    has_pixels = "7FE00010" in metadata

    def number(tag: str, default: int) -> int:
        values = metadata.get(tag, {}).get("Value") or [default]
        return int(values[0])

    return can_encode(
        target,
        bits_allocated=number("00280100", 0) if has_pixels else 0,
        pixel_representation=number("00280103", 0),
        samples=number("00280002", 1),
    )


def transcode(part10: bytes, target: str) -> bytes:
    """The Part-10 instance in ``target`` (one of :data:`TARGETS`).

    Compressed pixel data is decoded and the Image Pixel module updated, then encoded again
    when ``target`` is compressed (lossy targets set the lossy attributes); the SOP Instance UID
    is kept (a change of transfer syntax is not a new instance, PS3.5 §10). ``part10`` is
    returned as it is when it already is in ``target``.

    Raises
    ------
    CannotTranscode
        When ``target`` is not one we produce, or the pixel data cannot be decoded.
    """
    if target not in TARGETS:
        raise CannotTranscode(can_encode(target, bits_allocated=0) or target)
    try:
        dataset = dcmread(io.BytesIO(part10), force=True)
    except Exception as exc:  # pydicom raises many types on broken files
        raise CannotTranscode(f"the stored instance cannot be read: {exc}") from exc
    source = str(dataset.file_meta.get("TransferSyntaxUID", ""))
    if source == target:
        return part10
    _native(dataset, source)
    if target in ENCODERS and "PixelData" in dataset:
        _encode(dataset, target)
    try:
        return _encoded(dataset, target, force=source == ExplicitVRBigEndian)
    except Exception as exc:  # an element pydicom cannot write in the target encoding
        raise CannotTranscode(f"cannot encode the instance as {UID(target).name}: {exc}") from exc


def encoded_frames(part10: bytes, target: str) -> list[bytes]:
    """Every frame of the instance in ``target`` (a syntax of :data:`ENCODERS`): each
    frame's code stream, as WADO-RS sends compressed frames (PS3.18 §8.7.3.5.2).

    Raises
    ------
    CannotTranscode
        As :func:`transcode`.
    """
    return frames_of(transcode(part10, target))


def frames_of(part10: bytes) -> list[bytes]:
    """Every frame's code stream of an instance with encapsulated pixel data."""
    from pydicom.encaps import generate_frames

    dataset = dcmread(io.BytesIO(part10))
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    return list(generate_frames(dataset.PixelData, number_of_frames=frames))


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
def _native(dataset: FileDataset, source: str) -> None:
    """Make the data set's pixel data native little endian in place (see :func:`transcode`)."""
    try:
        with silenced():
            if source == ExplicitVRBigEndian:
                _to_little_endian(dataset)
            elif not is_native(source) and "PixelData" in dataset:
                _decompress(dataset, source)
    except CannotTranscode:
        raise
    except Exception as exc:  # decoders raise many types
        raise CannotTranscode(f"cannot decode the {UID(source).name} pixel data: {exc}") from exc


def _encode(dataset: FileDataset, target: str) -> None:
    """Compress native pixel data in place into ``target``, with the Image Pixel and lossy
    attributes it needs (PS3.3 C.7.6.3, C.7.6.1.1.5; PS3.5 §8.2)."""
    reason = can_encode(
        target,
        bits_allocated=int(dataset.get("BitsAllocated", 0) or 0),
        pixel_representation=int(dataset.get("PixelRepresentation", 0) or 0),
        samples=int(dataset.get("SamplesPerPixel", 1) or 1),
    )
    if reason:
        raise CannotTranscode(reason)
    native_size = len(dataset.PixelData)
    try:
        with silenced():
            if target == JPEGBaseline8Bit:
                _encode_jpeg_baseline(dataset)
            elif target in HTJ2K_SYNTAXES:
                _encode_htj2k(dataset, target)
            elif target == JPEG2000:
                dataset.compress(
                    target, generate_instance_uid=False, j2k_cr=[J2K_RATIO], use_mct=False
                )
            elif target == JPEG2000Lossless:
                # RGB with the reversible colour transform, named YBR_RCT (PS3.5 8.2.4; the
                # US Image module allows no RGB in JPEG 2000); pydicom applies it by that name
                rct = dataset.get("PhotometricInterpretation") == "RGB"
                if rct:
                    dataset.PhotometricInterpretation = "YBR_RCT"
                dataset.compress(target, generate_instance_uid=False, use_mct=rct)
            else:
                dataset.compress(target, generate_instance_uid=False)
    except CannotTranscode:
        raise
    except Exception as exc:  # encoders raise many types
        raise CannotTranscode(f"cannot encode the pixel data as {UID(target).name}: {exc}") from exc
    if target in LOSSY_TARGETS:
        dataset.LossyImageCompression = "01"
        method = _LOSSY_METHODS[target]
        ratio = native_size / max(1, sum(len(f) for f in _fragments(dataset)))
        methods = list(_values(dataset.get("LossyImageCompressionMethod")))
        ratios = list(_values(dataset.get("LossyImageCompressionRatio")))
        if len(methods) != len(ratios):  # an earlier step described in part: start anew
            methods, ratios = [], []
        dataset.LossyImageCompressionMethod = [*methods, method]
        dataset.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"[:16]]


def _values(value: Any) -> list[Any]:
    """A multi-valued attribute's values as a list (one value, or none)."""
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str | float | int) else list(value)


@functools.cache
def _ojph_compress() -> str | None:
    """The path of OpenJPH's encoder, looked up once (when first needed, not at import)."""
    return shutil.which("ojph_compress")


def _encode_htj2k(dataset: FileDataset, target: str) -> None:
    """Frames as HTJ2K code streams with OpenJPH's ``ojph_compress``: RPCL progression, no
    colour transform (RGB stays RGB), reversible 5-3 for lossless, 9-7 for lossy (ITU-T
    T.814; PS3.5 §8.2.14). Each frame goes through a temporary raw file (planar samples)."""
    from pydicom.encaps import encapsulate

    program = _ojph_compress()
    if program is None:
        raise CannotTranscode("no HTJ2K encoder is installed")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1))
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    bits = int(dataset.BitsStored)
    array = pixel_array(dataset, raw=True).reshape((frames, rows, columns, samples))
    signed = int(dataset.get("PixelRepresentation", 0) or 0) == 1
    if signed:  # offset to unsigned for the encoder; the components are marked signed below
        array = array.astype(np.int32) + (1 << (bits - 1))
    dtype = np.dtype("<u1") if int(dataset.BitsAllocated) <= 8 else np.dtype("<u2")
    decompositions = max(0, min(5, int(np.log2(max(1, min(rows, columns)))) - 2))
    reversible = "true" if target == HTJ2KLossless else "false"
    options = ["-num_decomps", str(decompositions), "-reversible", reversible]
    options += ["-prog_order", "RPCL"]
    encoded = []
    with tempfile.TemporaryDirectory(prefix="klinika-htj2k-") as folder:
        output = os.path.join(folder, "frame.j2c")
        for frame in array:
            if samples == 1:  # raw samples, little endian
                source = os.path.join(folder, "frame.yuv")
                payload = np.ascontiguousarray(frame[:, :, 0]).astype(dtype).tobytes()
                options_in = ["-dims", f"{{{columns},{rows}}}", "-num_comps", "1"]
                options_in += ["-signed", "false", "-bit_depth", str(bits)]
                options_in += ["-downsamp", "{1,1}"]
            else:  # RGB as a binary PPM (16-bit samples big endian), no colour transform
                source = os.path.join(folder, "frame.ppm")
                header = f"P6\n{columns} {rows}\n{(1 << bits) - 1}\n".encode()
                wide = ">u2" if bits > 8 else "u1"
                payload = header + np.ascontiguousarray(frame).astype(wide).tobytes()
                options_in = ["-colour_trans", "false"]
            with open(source, "wb") as handle:
                handle.write(payload)
            command = [program, "-i", source, "-o", output, *options_in, *options]
            run = subprocess.run(command, capture_output=True, text=True, timeout=120)
            if run.returncode != 0 or not os.path.exists(output):
                raise CannotTranscode(f"ojph_compress failed: {(run.stderr or run.stdout)[-300:]}")
            with open(output, "rb") as handle:
                code = handle.read()
            encoded.append(_signed_components(code) if signed else code)
            os.unlink(output)
    dataset.PixelData = encapsulate(encoded, has_bot=True)
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    if samples > 1:
        dataset.PlanarConfiguration = 0
    dataset.file_meta.TransferSyntaxUID = UID(target)


def _signed_components(code: bytes) -> bytes:
    """The code stream with every component marked signed in its SIZ marker segment.

    The samples were encoded offset by 2^(bits-1) as unsigned: the encoder removes exactly
    that offset (the DC level shift of T.800 G.1.2) before the transform, so the coded data
    are those of the signed samples, and only the Ssiz sign bits (T.800 A.5.1) differ."""
    siz = 2  # SOC, then SIZ (T.800 A.4.1)
    if code[siz : siz + 2] != b"\xff\x51":
        raise CannotTranscode("ojph_compress wrote a code stream that does not start SOC, SIZ")
    components = int.from_bytes(code[siz + 38 : siz + 40], "big")
    marked = bytearray(code)
    for component in range(components):
        marked[siz + 40 + 3 * component] |= 0x80
    return bytes(marked)


def _encode_jpeg_baseline(dataset: FileDataset) -> None:
    """8-bit frames as JPEG baseline with Pillow (libjpeg): grey as one component, colour as
    YCbCr 4:2:2 with PhotometricInterpretation YBR_FULL_422 (PS3.5 §8.2.1)."""
    from PIL import Image
    from pydicom.encaps import encapsulate

    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1))
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    array = pixel_array(dataset, raw=True)
    array = array.reshape((frames, int(dataset.Rows), int(dataset.Columns), samples))
    if samples == 3 and photometric != "RGB":
        raise CannotTranscode(f"JPEG baseline colour is encoded from RGB, not {photometric}")
    encoded = []
    for frame in array.astype(np.uint8):
        image = Image.fromarray(np.ascontiguousarray(frame[:, :, 0] if samples == 1 else frame))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=1, optimize=False)
        encoded.append(out.getvalue())
    dataset.PixelData = encapsulate(encoded, has_bot=True)
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    dataset.BitsStored, dataset.HighBit = 8, 7
    if samples == 3:
        dataset.PhotometricInterpretation = "YBR_FULL_422"
        dataset.PlanarConfiguration = 0
    dataset.file_meta.TransferSyntaxUID = UID(JPEGBaseline8Bit)


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
    if source == JPEGLSNearLossless:
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
    # what now reads the data set (the HTJ2K and JPEG encoders' pixel_array) sees its bytes
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
