"""Parse and validate the header of one DICOM instance, without decoding pixel data.

This is the trust boundary for every instance that arrives (DIMSE, STOW-RS, upload, import):
the bytes are untrusted and every check that decides accept / reject lives here.

References
----------
PS3.10 §7.1 (File Meta Information), PS3.5 §6.1 (character repertoires), PS3.5 §9.1 (UIDs),
PS3.5 §A.4 (encapsulated pixel data), PS3.5 §A.5 (Deflated Explicit VR Little Endian),
PS3.5 §7.1.3 (Implicit VR: the VR comes from the data dictionary).
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom import dcmread
from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    UID,
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from klinika.dicom.frames import PixelLocation, locate_pixel_data
from klinika.dicom.warned import recorded, silenced
from klinika.errors import InvalidInstance, RejectReason

_UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
#: Digits and dots only, but a component may start with 0 (``1.2.840.0113``): not a valid
#: UID (PS3.5 §9.1), yet real devices (Varian RT) write them, and DCMTK and Orthanc accept
#: them. Accepted with a warning; anything else malformed is still refused.
_LENIENT_UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_TEXT_VRS = {"SH", "LO", "ST", "LT", "UT", "PN", "UC"}


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


_SOP_CLASS_UID, _SOP_INSTANCE_UID, _STUDY_UID, _SERIES_UID = _REQUIRED_TAGS = tuple(
    _tag(k) for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_INFLATE_CHUNK = 1 << 20


@dataclass(frozen=True)
class InflateLimit:
    """How far a Deflated Explicit VR Little Endian data set may inflate (PS3.5 §A.5).

    ``max_bytes`` bounds the inflated size; ``max_ratio`` (0: no ratio cap) bounds it to that
    many times the deflated size once it is past ``ratio_floor`` bytes, so that a small
    "deflate bomb" is refused after a few megabytes of work instead of hundreds.
    """

    max_bytes: int = 1 << 30
    max_ratio: int = 100
    ratio_floor: int = 16 << 20

    def bound(self, deflated_size: int) -> int:
        """The most bytes a data set of ``deflated_size`` deflated bytes may inflate to."""
        if self.max_ratio <= 0:
            return self.max_bytes
        return min(self.max_bytes, max(self.ratio_floor, self.max_ratio * deflated_size))


DEFAULT_INFLATE_LIMIT = InflateLimit()


@dataclass
class ParsedInstance:
    """An instance that passed validation: the bytes to store and what to index.

    ``elements`` holds the data set's top-level elements by tag (a plain ``int``), each
    converted once by validation: the index and the archive read values there instead of
    looking each one up through the data set again.
    """

    part10: bytes
    dataset: Dataset
    elements: dict[int, DataElement]
    transfer_syntax: str
    pixel_location: PixelLocation | None
    warnings: list[str] = field(default_factory=list)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.elements[_SOP_INSTANCE_UID].value)

    @property
    def sop_class_uid(self) -> str:
        return str(self.elements[_SOP_CLASS_UID].value)

    @property
    def study_uid(self) -> str:
        return str(self.elements[_STUDY_UID].value)

    @property
    def series_uid(self) -> str:
        return str(self.elements[_SERIES_UID].value)


def is_valid_uid(value: Any) -> bool:
    """A UID per PS3.5 §9.1: at most 64 characters, dot-separated numbers without leading 0s."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(_UID_PATTERN.match(value))


def has_leading_zero_only(value: Any) -> bool:
    """A UID that breaks PS3.5 §9.1 only by a component with a leading zero (``1.2.03``)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and bool(_LENIENT_UID_PATTERN.match(value))
        and not _UID_PATTERN.match(value)
    )


def part10_from_dataset_bytes(
    dataset_bytes: bytes, transfer_syntax: str, sop_class_uid: str, sop_instance_uid: str
) -> bytes:
    """Prefix an encoded data set (as DIMSE hands it) with a preamble and File Meta Information.

    References
    ----------
    PS3.10 §7.1.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.10.1391.1")
    meta.ImplementationVersionName = "KLINIKA_010"
    buffer = io.BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)  # type: ignore[arg-type]
    buffer.write(dataset_bytes)
    return buffer.getvalue()


#: VRs of PS3.5 §6.2, to tell Explicit from Implicit VR Little Endian in a bare data set.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)
BARE_DATASET_WARNING = (
    "the file has no preamble and File Meta Information (a bare data set, as older systems "
    "write them); they were added, as DCMTK and Orthanc read such files"
)


def bare_dataset_syntax(data: bytes) -> str | None:
    """The transfer syntax of a data set written without preamble and File Meta Information
    (Implicit or Explicit VR Little Endian, told apart as DCMTK does: by whether a VR follows
    the first tag), or None when ``data`` does not start like a data set (an even group from
    0008 on, elements in ascending order).

    References
    ----------
    PS3.5 §7.1.2 (Explicit VR), §7.1.3 (Implicit VR), §A.1 (the default transfer syntax).
    """
    if len(data) < 16:
        return None
    group, element = struct.unpack_from("<HH", data, 0)
    if group < 0x0008 or group % 2 or group > 0x7FE0 or (group == 0x0008 and element > 0x0100):
        return None
    if data[4:6] in _VRS:
        return ExplicitVRLittleEndian
    length = struct.unpack_from("<L", data, 4)[0]
    if length == 0xFFFFFFFF or 8 + length <= len(data):
        return ImplicitVRLittleEndian
    return None


def _as_part10(data: bytes, transfer_syntax: str) -> bytes:
    """A bare data set with the preamble and File Meta Information it lacks."""
    try:
        with silenced():
            dataset = dcmread(
                io.BytesIO(data),
                force=True,
                stop_before_pixels=True,
                specific_tags=["SOPClassUID", "SOPInstanceUID"],
            )
        sop_class, sop_instance = str(dataset.SOPClassUID), str(dataset.SOPInstanceUID)
    except (AttributeError, InvalidDicomError, EOFError, ValueError, struct.error, KeyError) as exc:
        raise InvalidInstance(
            f"a data set without File Meta Information, and without readable SOP Class and "
            f"SOP Instance UIDs: {exc}",
            RejectReason.UNREADABLE,
        ) from exc
    for keyword, value in (("SOPClassUID", sop_class), ("SOPInstanceUID", sop_instance)):
        if not is_valid_uid(value):
            raise InvalidInstance(
                f"{keyword} {value!r} is not a valid UID", RejectReason.INVALID_UID
            )
    return part10_from_dataset_bytes(data, transfer_syntax, sop_class, sop_instance)


def parse_instance(
    data: bytes,
    inflate_limit: InflateLimit = DEFAULT_INFLATE_LIMIT,
    *,
    bare_dataset: bool = False,
) -> ParsedInstance:
    """Read and validate a Part-10 file's header; pixel data is located, not decoded.

    The one validator of every instance that arrives (DIMSE, STOW-RS, upload, import),
    whatever its transfer syntax. A deflated data set is inflated within ``inflate_limit``.
    With ``bare_dataset`` (files people bring: the upload page, ``klinika import``), a data
    set without preamble and File Meta Information is accepted with a warning and stored as
    the Part-10 file it would have been (:func:`bare_dataset_syntax`); DIMSE and STOW-RS never
    ask for it.

    Raises
    ------
    InvalidInstance
        With a reason code and a message naming the broken attribute or structure.
    """
    if len(data) < 132 or data[128:132] != b"DICM":
        syntax = bare_dataset_syntax(data) if bare_dataset else None
        if syntax is None:
            raise InvalidInstance(
                "not a DICOM Part-10 file: the 128-byte preamble and 'DICM' prefix are missing",
                RejectReason.UNREADABLE,
            )
        parsed = parse_instance(_as_part10(data, syntax), inflate_limit)
        parsed.warnings.insert(0, BARE_DATASET_WARNING)
        return parsed
    if _declares_deflate(data):
        _check_inflated_size(data, 132 + 12 + _meta_group_length(data), inflate_limit)
    fp = io.BytesIO(data)
    collected: list[str] = []
    try:
        with recorded() as caught:
            dataset = dcmread(fp, stop_before_pixels=True)
            stop = fp.tell()
        collected = [str(w.message) for w in caught]
    except (InvalidDicomError, EOFError, ValueError, struct.error, OSError, KeyError) as exc:
        raise InvalidInstance(f"unreadable DICOM data: {exc}", RejectReason.UNREADABLE) from exc

    meta = dataset.file_meta
    transfer_syntax = str(meta.get("TransferSyntaxUID", ""))
    _check_meta(data, meta, transfer_syntax)
    if stop < len(data) and transfer_syntax != DeflatedExplicitVRLittleEndian:
        tag = _peek_tag(data, stop, transfer_syntax)
        if tag not in _PIXEL_TAGS:
            raise InvalidInstance(
                f"the data set ends in the middle of an element at byte {stop}",
                RejectReason.UNREADABLE,
            )
    elements = _check_elements(dataset)
    collected += _check_required(elements)
    collected += _meta_warnings(dataset, elements)

    location = None
    if stop < len(data) and transfer_syntax != DeflatedExplicitVRLittleEndian:
        location = locate_pixel_data(data, stop, dataset, transfer_syntax)
    return ParsedInstance(data, dataset, elements, transfer_syntax, location, collected)


def _check_meta(data: bytes, meta: FileMetaDataset, transfer_syntax: str) -> None:
    if not transfer_syntax:
        raise InvalidInstance(
            "File Meta Information has no TransferSyntaxUID", RejectReason.UNREADABLE
        )
    if transfer_syntax not in AllTransferSyntaxes and not (
        is_valid_uid(transfer_syntax) and transfer_syntax.startswith("1.2.840.10008.1.2.")
    ):
        raise InvalidInstance(
            f"unknown transfer syntax {transfer_syntax!r}", RejectReason.UNSUPPORTED_TRANSFER_SYNTAX
        )
    declared = meta.get("FileMetaInformationGroupLength")
    if declared is not None:
        actual = _meta_group_length(data)
        if actual != declared:
            raise InvalidInstance(
                f"FileMetaInformationGroupLength says {declared} bytes but the group has {actual}",
                RejectReason.UNREADABLE,
            )


def _declares_deflate(data: bytes) -> bool:
    """Whether the File Meta Information names Deflated Explicit VR Little Endian: looked up
    before pydicom reads the file, since pydicom inflates the whole data set in one call."""
    value = _meta_element(data, 0x00020010)
    return value is not None and value.rstrip(b"\0 ") == DeflatedExplicitVRLittleEndian.encode()


def _check_inflated_size(data: bytes, start: int, limit: InflateLimit) -> None:
    """Inflate the data set in bounded steps, keeping nothing, and refuse it once it passes
    the limit (PS3.5 §A.5: raw deflate of everything after the File Meta Information)."""
    deflated = memoryview(data)[start:]
    bound = limit.bound(len(deflated))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    pending: bytes | memoryview = deflated
    try:
        while not inflater.eof:
            produced = len(inflater.decompress(pending, _INFLATE_CHUNK))
            if not produced and not inflater.unconsumed_tail:
                raise zlib.error("the deflate stream ends before its last block")
            total += produced
            if total > bound:
                raise InvalidInstance(
                    f"the deflated data set ({len(deflated)} bytes) inflates to more than "
                    f"{bound} bytes, the limit here (KLINIKA_MAX_INFLATED_BYTES / "
                    "KLINIKA_MAX_INFLATE_RATIO)",
                    RejectReason.TOO_LARGE,
                )
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise InvalidInstance(
            f"the deflated data set cannot be inflated: {exc}", RejectReason.UNREADABLE
        ) from exc


def _meta_walk(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(tag, value offset, value length) of each group 0002 element after the group length
    (always Explicit VR Little Endian, PS3.10 §7.1); the last item is (0, end offset, 0)."""
    offset = 132 + 12
    while offset + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            break
        vr = data[offset + 4 : offset + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            length = struct.unpack_from("<L", data, offset + 8)[0]
            value_offset = offset + 12
        else:
            length = struct.unpack_from("<H", data, offset + 6)[0]
            value_offset = offset + 8
        yield group << 16 | elem, value_offset, length
        offset = value_offset + length
    yield 0, offset, 0


def _meta_element(data: bytes, tag: int) -> bytes | None:
    for found, offset, length in _meta_walk(data):
        if found == tag:
            return data[offset : offset + length]
    return None


def _meta_group_length(data: bytes) -> int:
    """Bytes of group 0002 after the group length element."""
    *_, (_, end, _) = _meta_walk(data)
    return end - (132 + 12)


def _peek_tag(data: bytes, offset: int, transfer_syntax: str) -> int | None:
    if offset + 4 > len(data):
        return None
    endian = ">" if transfer_syntax == ExplicitVRBigEndian else "<"
    group, elem = struct.unpack_from(f"{endian}HH", data, offset)
    return int(group) << 16 | int(elem)


def _check_elements(dataset: Dataset) -> dict[int, DataElement]:
    """Convert every top-level element so that truncated or garbled values surface now;
    returns them by tag, in the data set's order."""
    charset = dataset.get("SpecificCharacterSet")
    charsets = [charset] if isinstance(charset, str) else list(charset or [])
    elements: dict[int, DataElement] = {}
    for tag in list(dataset.keys()):
        raw = dataset.get_item(tag)  # converting one element may convert others (VR fixes)
        if isinstance(raw, RawDataElement):
            value_length = len(raw.value or b"") if isinstance(raw.value, bytes) else None
            if value_length is not None and raw.length not in (0xFFFFFFFF, value_length):
                raise InvalidInstance(
                    f"element {tag} declares {raw.length} bytes but the data ends after "
                    f"{value_length}: the file is truncated",
                    RejectReason.UNREADABLE,
                )
            if _text_vr(raw) and raw.value:
                _check_text_bytes(raw, charsets)
        try:
            elements[int(tag)] = dataset[tag]
        except Exception as exc:  # pydicom raises many types for garbled values
            raise InvalidInstance(
                f"element {tag} cannot be read: {exc}", RejectReason.UNREADABLE
            ) from exc
    return elements


def _text_vr(raw: RawDataElement) -> bool:
    """Whether an element holds text: its explicit VR, or in Implicit VR (where the raw
    element has no VR) the data dictionary's (PS3.5 §7.1.3, PS3.6)."""
    if raw.VR is not None:
        return raw.VR in _TEXT_VRS
    return dictionary_has_tag(raw.tag) and dictionary_VR(raw.tag) in _TEXT_VRS


def _check_text_bytes(raw: RawDataElement, charsets: list[str]) -> None:
    """Refuse text whose bytes are impossible in the declared repertoire (PS3.5 §6.1)."""
    value = bytes(raw.value or b"")
    primary = (charsets[0] if charsets else "").strip()
    if not charsets or (primary in ("", "ISO_IR 6") and len(charsets) == 1):
        if any(b > 0x7F for b in value):
            raise InvalidInstance(
                f"element {raw.tag} has non-ASCII bytes but SpecificCharacterSet declares "
                "the default repertoire (ISO_IR 6)",
                RejectReason.INVALID_CHARSET,
            )
    elif primary.startswith("ISO_IR") and primary != "ISO_IR 192" and len(charsets) == 1:
        if any(0x80 <= b <= 0x9F for b in value):
            raise InvalidInstance(
                f"element {raw.tag} has C1 control bytes, impossible in {primary}: "
                "the text is probably UTF-8 labelled with the wrong SpecificCharacterSet",
                RejectReason.INVALID_CHARSET,
            )
    elif primary == "ISO_IR 192":
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInstance(
                f"element {raw.tag} is not valid UTF-8 (ISO_IR 192)", RejectReason.INVALID_CHARSET
            ) from exc


def _check_required(elements: dict[int, DataElement]) -> list[str]:
    """Refuse missing or malformed required UIDs; return warnings for the ones accepted
    although a component has a leading zero (PS3.5 §9.1)."""
    found: list[str] = []
    for tag in _REQUIRED_TAGS:
        keyword, element = keyword_for_tag(tag), elements.get(tag)
        value = None if element is None else element.value
        if value in (None, ""):
            raise InvalidInstance(
                f"required attribute {keyword} is missing", RejectReason.MISSING_ATTRIBUTE
            )
        if has_leading_zero_only(str(value)):
            found.append(
                f"{keyword} {str(value)!r} has a component with a leading zero, which PS3.5 "
                "§9.1 does not allow; accepted as it is"
            )
        elif not is_valid_uid(str(value)):
            raise InvalidInstance(
                f"{keyword} {str(value)!r} is not a valid UID", RejectReason.INVALID_UID
            )
    return found


def _meta_warnings(dataset: Dataset, elements: dict[int, DataElement]) -> list[str]:
    """Inconsistencies we accept (the data set wins) but report to the sender."""
    media_uid = dataset.file_meta.get("MediaStorageSOPInstanceUID")
    if media_uid and str(media_uid) != str(elements[_SOP_INSTANCE_UID].value):
        return [
            "MediaStorageSOPInstanceUID in the File Meta Information differs from "
            "SOPInstanceUID in the data set; the data set's value is used"
        ]
    return []
