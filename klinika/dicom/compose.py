"""Part-10 instances built from metadata and bulk data: DICOM JSON (PS3.18 Annex F) and the
Native DICOM Model XML (PS3.19 Annex A), as STOW-RS receives them.

The result is ordinary Part-10 bytes that go through the one ingest path
(``Archive.store_many``), which validates them like any other instance. Trust boundary: the
metadata and bulk data are untrusted; a document that cannot be turned into a data set
raises :class:`~klinika.errors.InvalidInstance` with a reason, never anything else.

No maintained library reads PS3.19 XML into a pydicom data set (pydicom reads and writes
JSON only; DCMTK's ``xml2dcm`` reads its own format), so :func:`native_xml_to_json` is a small
strict reader that turns the XML into the DICOM JSON model, and both forms then go through
pydicom's ``Dataset.from_json``. A document with a DTD is refused (no entity expansion).

References
----------
PS3.18 §10.5.1.2 (STOW-RS request payloads: metadata and bulk data), §8.6.1.2 (bulk data
parts, Content-Location), Annex F.2 (DICOM JSON: Value, InlineBinary, BulkDataURI),
PS3.19 Annex A.1 (Native DICOM Model), PS3.10 §7.1 (File Meta Information).
"""

from __future__ import annotations

import base64
import io
import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian

from klinika.dicom.transcode import MEDIA_TYPE_DEFAULT_SYNTAX
from klinika.dicom.warned import silenced
from klinika.errors import InvalidInstance, RejectReason

IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.10.1391.1"
IMPLEMENTATION_VERSION_NAME = "KLINIKA_010"
NATIVE_NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"

_NATIVE_PARTS = ("application/octet-stream", "application/dicom+octet-stream")
_PIXEL_DATA = "7FE00010"
_NUMBER_VRS = {"FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"}
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


@dataclass(frozen=True)
class BulkPart:
    """One bulk data part of a request: its media type, transfer syntax parameter and bytes,
    held in memory or in a (temporary) file that the request's owner closes."""

    media_type: str
    source: bytes | IO[bytes]
    transfer_syntax: str | None = None

    @property
    def data(self) -> bytes:
        if isinstance(self.source, bytes):
            return self.source
        self.source.seek(0)
        return self.source.read()


def parse_json_metadata(payload: bytes) -> list[dict[str, Any]]:
    """The data sets of an ``application/dicom+json`` part: an array of objects, or one object.

    Raises
    ------
    InvalidInstance
        When the part is not JSON or not DICOM JSON data sets (reason ``unreadable``).
    """
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInstance(
            f"the metadata part is not JSON: {exc}", RejectReason.UNREADABLE
        ) from exc
    items = document if isinstance(document, list) else [document]
    if not items or not all(isinstance(item, dict) for item in items):
        raise InvalidInstance(
            "the metadata part must hold DICOM JSON data sets (PS3.18 F.2)", RejectReason.UNREADABLE
        )
    return items


def native_xml_to_json(payload: bytes) -> dict[str, Any]:
    """The DICOM JSON model (PS3.18 F.2) of one Native DICOM Model document (PS3.19 A.1).

    Raises
    ------
    InvalidInstance
        When the document is not well-formed XML, declares a DTD, or does not follow the
        Native DICOM Model (reason ``unreadable``); the message names the element.
    """
    if b"<!DOCTYPE" in payload or b"<!ENTITY" in payload:
        raise InvalidInstance(
            "the XML metadata declares a DTD or entities, which PS3.19 documents do not use",
            RejectReason.UNREADABLE,
        )
    try:
        root = ElementTree.fromstring(payload)
    except ElementTree.ParseError as exc:
        raise InvalidInstance(
            f"the XML metadata is not well-formed: {exc}", RejectReason.UNREADABLE
        ) from exc
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else None
    if namespace not in (None, NATIVE_NAMESPACE):
        raise InvalidInstance(
            f"the XML root is in namespace {namespace!r}, not the Native DICOM Model's",
            RejectReason.UNREADABLE,
        )
    if _local(root.tag) != "NativeDicomModel":
        raise InvalidInstance(
            f"the XML root is <{_local(root.tag)}>, not <NativeDicomModel> (PS3.19 A.1)",
            RejectReason.UNREADABLE,
        )
    return _xml_data_set(root)


def part10_from_json(metadata: Mapping[str, Any], bulk: Mapping[str, list[BulkPart]]) -> bytes:
    """A Part-10 instance from one DICOM JSON data set and the request's bulk data parts.

    ``bulk`` maps each part's Content-Location to its parts (several parts at one location
    are the frames of compressed pixel data). InlineBinary values are decoded by pydicom.
    The transfer syntax is the pixel data part's (its ``transfer-syntax`` parameter, else its
    media type's default); Explicit VR Little Endian when the pixel data is native or absent.

    Raises
    ------
    InvalidInstance
        A BulkDataURI names no part of the request (``missing-attribute``), or the metadata
        is not a data set pydicom can build (``unreadable``).
    """
    document = dict(metadata)
    meta_json = {k: document.pop(k) for k in list(document) if k.upper().startswith("0002")}
    transfer_syntax = _pixel_transfer_syntax(document, bulk)
    missing: list[str] = []

    def bulk_data(tag: str, vr: str, uri: str) -> bytes:
        parts = _bulk_parts(bulk, uri)
        if not parts:
            missing.append(f"{tag} ({uri})")
            return b""
        if tag.upper() == _PIXEL_DATA and transfer_syntax != ExplicitVRLittleEndian:
            return bytes(encapsulate([p.data for p in parts]))
        data = b"".join(p.data for p in parts)
        return data + (b"\x00" if len(data) % 2 else b"")

    try:
        with silenced():
            dataset = Dataset.from_json(document, bulk_data)
            file_meta = Dataset.from_json(meta_json) if meta_json else None
    except Exception as exc:  # pydicom raises many types for malformed JSON data sets
        raise InvalidInstance(f"the metadata is not a valid DICOM JSON data set: {exc}") from exc
    if missing:
        raise InvalidInstance(
            "bulk data referenced by BulkDataURI is not in the request: " + ", ".join(missing),
            RejectReason.MISSING_ATTRIBUTE,
        )
    return _part10(dataset, transfer_syntax, file_meta)


# ---------------------------------------------------------------------------- internals
def _pixel_transfer_syntax(document: Mapping[str, Any], bulk: Mapping[str, list[BulkPart]]) -> str:
    element = document.get(_PIXEL_DATA) or document.get(_PIXEL_DATA.lower())
    uri = element.get("BulkDataURI") if isinstance(element, dict) else None
    parts = _bulk_parts(bulk, uri) if isinstance(uri, str) else None
    if not parts:
        return ExplicitVRLittleEndian
    part = parts[0]
    if part.media_type in _NATIVE_PARTS:
        if part.transfer_syntax not in (None, "", ExplicitVRLittleEndian):
            raise InvalidInstance(
                f"native pixel data is accepted as {ExplicitVRLittleEndian} only, not "
                f"{part.transfer_syntax}",
                RejectReason.UNSUPPORTED_TRANSFER_SYNTAX,
            )
        return ExplicitVRLittleEndian
    syntax = part.transfer_syntax or MEDIA_TYPE_DEFAULT_SYNTAX.get(part.media_type)
    if not syntax:
        raise InvalidInstance(
            f"pixel data of media type {part.media_type} names no transfer syntax",
            RejectReason.UNSUPPORTED_TRANSFER_SYNTAX,
        )
    return syntax


def _bulk_parts(bulk: Mapping[str, list[BulkPart]], uri: str) -> list[BulkPart] | None:
    """The parts at ``uri``; a PS3.19 ``uuid`` also matches ``urn:uuid:<uuid>`` (RFC 4122)."""
    bare = uri.removeprefix("urn:uuid:")
    return bulk.get(uri) or bulk.get(bare) or bulk.get(f"urn:uuid:{bare}")


def _part10(dataset: Dataset, transfer_syntax: str, given: Dataset | None) -> bytes:
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if keyword not in dataset:
            raise InvalidInstance(
                f"required attribute {keyword} is missing", RejectReason.MISSING_ATTRIBUTE
            )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(str(dataset.SOPClassUID))
    meta.MediaStorageSOPInstanceUID = UID(str(dataset.SOPInstanceUID))
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if given is not None and "SourceApplicationEntityTitle" in given:
        meta.SourceApplicationEntityTitle = given.SourceApplicationEntityTitle
    dataset.file_meta = meta
    if "PixelData" in dataset and transfer_syntax == ExplicitVRLittleEndian:
        bits = int(dataset.get("BitsAllocated", 16) or 16)
        dataset["PixelData"].VR = "OB" if bits <= 8 else "OW"
    out = io.BytesIO()
    try:
        dcmwrite(out, dataset, enforce_file_format=True)
    except Exception as exc:  # a value pydicom cannot encode
        raise InvalidInstance(f"the data set cannot be encoded: {exc}") from exc
    return out.getvalue()


def _local(tag: str) -> str:
    """An element's name without its namespace (``{uri}name`` → ``name``)."""
    return tag.rsplit("}", 1)[-1]


def _xml_data_set(parent: ElementTree.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute in parent:
        if _local(attribute.tag) != "DicomAttribute":
            raise InvalidInstance(
                f"<{_local(attribute.tag)}> where PS3.19 allows only <DicomAttribute>",
                RejectReason.UNREADABLE,
            )
        tag = (attribute.get("tag") or "").upper()
        vr = attribute.get("vr") or ""
        if len(tag) != 8 or any(c not in "0123456789ABCDEF" for c in tag):
            raise InvalidInstance(
                f"DicomAttribute tag {tag!r} is not 8 hex digits", RejectReason.UNREADABLE
            )
        if len(vr) != 2 or not vr.isalpha() or not vr.isupper():
            raise InvalidInstance(f"DicomAttribute {tag} has no valid vr", RejectReason.UNREADABLE)
        out[tag] = _xml_element(attribute, tag, vr)
    return out


def _xml_element(attribute: ElementTree.Element, tag: str, vr: str) -> dict[str, Any]:
    element: dict[str, Any] = {"vr": vr}
    children = list(attribute)
    kinds = {_local(c.tag) for c in children}
    if not children:
        return element
    if kinds == {"BulkData"}:
        uri = children[0].get("uri") or children[0].get("uuid")
        if not uri or len(children) != 1:
            raise InvalidInstance(
                f"DicomAttribute {tag}: one BulkData with a uri", RejectReason.UNREADABLE
            )
        element["BulkDataURI"] = uri
        return element
    if kinds == {"InlineBinary"}:
        text = "".join((children[0].text or "").split())
        try:
            base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise InvalidInstance(f"DicomAttribute {tag}: InlineBinary is not base64") from exc
        element["InlineBinary"] = text
        return element
    expected = {"SQ": "Item", "PN": "PersonName"}.get(vr, "Value")
    if kinds != {expected}:
        raise InvalidInstance(
            f"DicomAttribute {tag} ({vr}) holds {sorted(kinds)}, PS3.19 wants {expected}",
            RejectReason.UNREADABLE,
        )
    ordered = sorted(children, key=lambda c: _number(c, tag))
    element["Value"] = [_xml_value(child, tag, vr) for child in ordered]
    return element


def _number(child: ElementTree.Element, tag: str) -> int:
    try:
        return int(child.get("number") or "")
    except ValueError as exc:
        raise InvalidInstance(f"DicomAttribute {tag}: a value without its number") from exc


def _xml_value(child: ElementTree.Element, tag: str, vr: str) -> Any:
    if vr == "SQ":
        return _xml_data_set(child)
    if vr == "PN":
        name: dict[str, str] = {}
        for group in child:
            kind = _local(group.tag)
            if kind not in _PN_GROUPS:
                raise InvalidInstance(f"DicomAttribute {tag}: <{kind}> in a PersonName")
            components = {_local(c.tag): (c.text or "") for c in group}
            text = "^".join(components.get(c, "") for c in _PN_COMPONENTS).rstrip("^")
            name[kind] = text
        return name
    text = child.text or ""
    if vr in _NUMBER_VRS:
        try:
            return float(text) if vr in ("FL", "FD") else int(text)
        except ValueError as exc:
            raise InvalidInstance(f"DicomAttribute {tag}: {text!r} is not a {vr} number") from exc
    return text


@dataclass
class Composed:
    """What became of one metadata data set: the Part-10 bytes, or why there are none (with
    the SOP Class and Instance UIDs the metadata named, for the STOW-RS failure item)."""

    part10: bytes | None
    error: InvalidInstance | None = None
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None


def compose_instances(
    documents: list[dict[str, Any]], bulk: Mapping[str, list[BulkPart]]
) -> Iterator[Composed]:
    """Each DICOM JSON data set (from JSON or converted XML metadata) as a Part-10 instance,
    or the reason it cannot be one, one at a time; see :func:`part10_from_json`."""
    for document in documents:
        try:
            yield Composed(part10_from_json(document, bulk))
        except InvalidInstance as exc:
            yield Composed(None, exc, _first(document, "00080016"), _first(document, "00080018"))


JSON_METADATA = "application/dicom+json"
XML_METADATA = "application/dicom+xml"


def compose_metadata_parts(
    parts: list[tuple[str, bytes]], bulk: Mapping[str, list[BulkPart]]
) -> Iterator[Composed]:
    """The instances of a STOW-RS request's metadata parts, ``(media type, bytes)`` each:
    an ``application/dicom+json`` part holds one data set or an array of them, an
    ``application/dicom+xml`` part one PS3.19 document. A part that cannot be read is one
    failure; each of its data sets otherwise succeeds or fails on its own. The instances
    come one at a time, so that a request never holds more than one composed instance."""
    for media_type, payload in parts:
        try:
            if media_type == JSON_METADATA:
                documents = parse_json_metadata(payload)
            else:
                documents = [native_xml_to_json(payload)]
        except InvalidInstance as exc:
            yield Composed(None, exc)
            continue
        yield from compose_instances(documents, bulk)


def _first(document: Mapping[str, Any], tag: str) -> str | None:
    element = document.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if isinstance(values, list) and values else None
