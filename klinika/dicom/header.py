"""Parse and validate the header of one DICOM instance, without decoding pixel data.

This is the trust boundary for every instance that arrives (DIMSE, STOW-RS, upload, import):
the bytes are untrusted and every check that decides accept / reject lives here.

References
----------
PS3.10 §7.1 (File Meta Information), PS3.5 §6.1 (character repertoires), PS3.5 §9.1 (UIDs),
PS3.5 §A.4 (encapsulated pixel data).
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import AllTransferSyntaxes, DeflatedExplicitVRLittleEndian

from klinika.dicom.frames import PixelLocation, locate_pixel_data
from klinika.errors import InvalidInstance

_UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_TEXT_VRS = {"SH", "LO", "ST", "LT", "UT", "PN", "UC"}
_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


@dataclass
class ParsedInstance:
    """An instance that passed validation: the bytes to store and what to index."""

    part10: bytes
    dataset: Dataset
    transfer_syntax: str
    pixel_location: PixelLocation | None
    warnings: list[str] = field(default_factory=list)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def sop_class_uid(self) -> str:
        return str(self.dataset.SOPClassUID)

    @property
    def study_uid(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def series_uid(self) -> str:
        return str(self.dataset.SeriesInstanceUID)


def is_valid_uid(value: Any) -> bool:
    """A UID per PS3.5 §9.1: at most 64 characters, dot-separated numbers without leading 0s."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(_UID_PATTERN.match(value))


def part10_from_dataset_bytes(
    dataset_bytes: bytes, transfer_syntax: str, sop_class_uid: str, sop_instance_uid: str
) -> bytes:
    """Prefix an encoded data set (as DIMSE hands it) with a preamble and File Meta Information.

    References
    ----------
    PS3.10 §7.1.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.1391.1"
    meta.ImplementationVersionName = "KLINIKA_010"
    buffer = io.BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)  # type: ignore[arg-type]
    buffer.write(dataset_bytes)
    return buffer.getvalue()


def parse_instance(data: bytes) -> ParsedInstance:
    """Read and validate a Part-10 file's header; pixel data is located, not decoded.

    Raises
    ------
    InvalidInstance
        With a reason code and a message naming the broken attribute or structure.
    """
    if len(data) < 132 or data[128:132] != b"DICM":
        raise InvalidInstance(
            "not a DICOM Part-10 file: the 128-byte preamble and 'DICM' prefix are missing",
            "unreadable",
        )
    fp = io.BytesIO(data)
    collected: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = dcmread(fp, stop_before_pixels=True)
            stop = fp.tell()
        collected = [str(w.message) for w in caught]
    except (InvalidDicomError, EOFError, ValueError, struct.error, OSError, KeyError) as exc:
        raise InvalidInstance(f"unreadable DICOM data: {exc}", "unreadable") from exc

    meta = dataset.file_meta
    transfer_syntax = str(meta.get("TransferSyntaxUID", ""))
    _check_meta(data, meta, transfer_syntax)
    if stop < len(data) and transfer_syntax != DeflatedExplicitVRLittleEndian:
        tag = _peek_tag(data, stop, transfer_syntax)
        if tag not in _PIXEL_TAGS:
            raise InvalidInstance(
                f"the data set ends in the middle of an element at byte {stop}",
                "unreadable",
            )
    _check_elements(dataset)
    _check_required(dataset)
    collected += _meta_warnings(dataset)

    location = None
    if stop < len(data) and transfer_syntax != DeflatedExplicitVRLittleEndian:
        location = locate_pixel_data(data, stop, dataset, transfer_syntax)
    return ParsedInstance(data, dataset, transfer_syntax, location, collected)


def _check_meta(data: bytes, meta: FileMetaDataset, transfer_syntax: str) -> None:
    if not transfer_syntax:
        raise InvalidInstance("File Meta Information has no TransferSyntaxUID", "unreadable")
    if transfer_syntax not in AllTransferSyntaxes and not (
        is_valid_uid(transfer_syntax) and transfer_syntax.startswith("1.2.840.10008.1.2.")
    ):
        raise InvalidInstance(
            f"unknown transfer syntax {transfer_syntax!r}", "unsupported-transfer-syntax"
        )
    declared = meta.get("FileMetaInformationGroupLength")
    if declared is not None:
        actual = _meta_group_length(data)
        if actual != declared:
            raise InvalidInstance(
                f"FileMetaInformationGroupLength says {declared} bytes but the group has {actual}",
                "unreadable",
            )


def _meta_group_length(data: bytes) -> int:
    """Bytes of group 0002 after the group length element (always explicit VR LE)."""
    start = offset = 132 + 12
    while offset + 8 <= len(data):
        group, _elem = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            break
        vr = data[offset + 4 : offset + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            length = struct.unpack_from("<L", data, offset + 8)[0]
            offset += 12 + length
        else:
            length = struct.unpack_from("<H", data, offset + 6)[0]
            offset += 8 + length
    return offset - start


def _peek_tag(data: bytes, offset: int, transfer_syntax: str) -> int | None:
    if offset + 4 > len(data):
        return None
    endian = ">" if transfer_syntax == "1.2.840.10008.1.2.2" else "<"
    group, elem = struct.unpack_from(f"{endian}HH", data, offset)
    return group << 16 | elem


def _check_elements(dataset: Dataset) -> None:
    """Convert every top-level element so that truncated or garbled values surface now."""
    charset = dataset.get("SpecificCharacterSet")
    charsets = [charset] if isinstance(charset, str) else list(charset or [])
    for tag in list(dataset.keys()):
        raw = dataset.get_item(tag)
        if isinstance(raw, RawDataElement):
            value_length = len(raw.value or b"") if isinstance(raw.value, bytes) else None
            if value_length is not None and raw.length not in (0xFFFFFFFF, value_length):
                raise InvalidInstance(
                    f"element {tag} declares {raw.length} bytes but the data ends after "
                    f"{value_length}: the file is truncated",
                    "unreadable",
                )
            if raw.VR in _TEXT_VRS and raw.value:
                _check_text_bytes(raw, charsets)
        try:
            dataset[tag]
        except Exception as exc:  # pydicom raises many types for garbled values
            raise InvalidInstance(f"element {tag} cannot be read: {exc}", "unreadable") from exc


def _check_text_bytes(raw: RawDataElement, charsets: list[str]) -> None:
    """Refuse text whose bytes are impossible in the declared repertoire (PS3.5 §6.1)."""
    value = bytes(raw.value)
    primary = (charsets[0] if charsets else "").strip()
    if not charsets or (primary in ("", "ISO_IR 6") and len(charsets) == 1):
        if any(b > 0x7F for b in value):
            raise InvalidInstance(
                f"element {raw.tag} has non-ASCII bytes but SpecificCharacterSet declares "
                "the default repertoire (ISO_IR 6)",
                "invalid-charset",
            )
    elif primary.startswith("ISO_IR") and primary != "ISO_IR 192" and len(charsets) == 1:
        if any(0x80 <= b <= 0x9F for b in value):
            raise InvalidInstance(
                f"element {raw.tag} has C1 control bytes, impossible in {primary}: "
                "the text is probably UTF-8 labelled with the wrong SpecificCharacterSet",
                "invalid-charset",
            )
    elif primary == "ISO_IR 192":
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInstance(
                f"element {raw.tag} is not valid UTF-8 (ISO_IR 192)", "invalid-charset"
            ) from exc


def _check_required(dataset: Dataset) -> None:
    for keyword in _REQUIRED_UIDS:
        value = dataset.get(keyword)
        if value in (None, ""):
            raise InvalidInstance(f"required attribute {keyword} is missing", "missing-attribute")
        if not is_valid_uid(str(value)):
            raise InvalidInstance(f"{keyword} {str(value)!r} is not a valid UID", "invalid-uid")


def _meta_warnings(dataset: Dataset) -> list[str]:
    """Inconsistencies we accept (the data set wins) but report to the sender."""
    media_uid = dataset.file_meta.get("MediaStorageSOPInstanceUID")
    if media_uid and str(media_uid) != str(dataset.SOPInstanceUID):
        return [
            "MediaStorageSOPInstanceUID in the File Meta Information differs from "
            "SOPInstanceUID in the data set; the data set's value is used"
        ]
    return []
