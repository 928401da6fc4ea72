"""The DICOM JSON builder writes what pydicom's ``DataElement.to_json_dict`` writes.

``reference_json_dict`` is the builder as it was before it converted plain values itself
(pydicom's conversion of every element, an element it cannot convert left out). The stored
metadata must stay the same, as parsed JSON, bulk data URIs in the same order included.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_files
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from klinika.dicom.header import parse_instance
from klinika.dicom.json import BULK_DATA_THRESHOLD, json_dict, metadata_json
from klinika.errors import InvalidInstance
from tests.conftest import sample_files

FILES = sorted(
    {
        Path(f)
        for f in get_testdata_files() + get_charset_files()
        if Path(f).is_file() and not f.endswith((".txt", ".json", ".dump", ".gz"))
    }
    | set(sample_files())
)


def reference_json_dict(
    dataset: Dataset, bulk_handler: Callable[[DataElement], str]
) -> dict[str, Any]:
    """The builder before: pydicom's conversion, element by element."""
    as_dict: dict[str, Any] = {}
    for tag in dataset.keys():  # noqa: SIM118
        try:
            as_dict[f"{tag:08X}"] = dataset[tag].to_json_dict(
                bulk_data_element_handler=bulk_handler, bulk_data_threshold=BULK_DATA_THRESHOLD
            )
        except Exception:
            logging.getLogger(__name__).info("left out %s", tag)
    return as_dict


def _canonical(document: dict[str, Any]) -> Any:
    """The document as stored text parsed again, compared with the text's own types (so
    that ``1`` and ``1.0``, equal in Python, differ as they do in the stored text)."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return json.loads(text, parse_float=lambda f: ("float", f), parse_int=lambda i: ("int", i))


def both_ways(read: Callable[[], Dataset]) -> tuple[Any, Any]:
    """(new, reference) DICOM JSON of the data set ``read`` returns, each as parsed JSON
    and with the bulk elements the handler saw, in order."""
    results = []
    for build in (json_dict, reference_json_dict):
        seen: list[str] = []

        def bulk(element: DataElement, seen: list[str] = seen) -> str:
            seen.append(f"{element.tag:08X}")
            return f"uri/{len(seen)}"

        document = build(read(), bulk)
        results.append((_canonical(document), seen))
    return results[0], results[1]


def _reads(path: Path) -> bool:
    try:
        pydicom.dcmread(path, force=True)
    except Exception:  # a malformed sample pydicom cannot read: nothing to convert
        return False
    return True


def _ingests(path: Path) -> bool:
    try:
        parse_instance(path.read_bytes())
    except InvalidInstance:  # refused at ingest (tests/dicom's malformed cases say why)
        return False
    return True


#: the samples pydicom reads, and those ingest accepts (chosen at collection, not skipped)
READABLE = [path for path in FILES if _reads(path)]
INGESTED = [path for path in READABLE if _ingests(path)]


def test_the_samples_cover_what_the_builder_converts() -> None:
    """Enough of the samples reach both comparisons for them to mean something."""
    assert len(READABLE) > 100 and len(INGESTED) > 80, (len(READABLE), len(INGESTED))


@pytest.mark.parametrize("path", READABLE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_builder_matches_pydicom_on_every_sample_with_its_pixel_data(path: Path) -> None:
    new, reference = both_ways(lambda: pydicom.dcmread(path, force=True))
    assert new == reference


@pytest.mark.parametrize("path", INGESTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stored_metadata_is_unchanged_for_every_sample_ingest_accepts(path: Path) -> None:
    """What ingest stores: the header of an accepted instance, pixel data as a URI."""
    parsed = parse_instance(path.read_bytes())
    stored = json.loads(metadata_json(parsed.dataset, "OW"))
    reparsed = parse_instance(path.read_bytes()).dataset
    reference = reference_json_dict(reparsed, _stored_uri(reparsed))
    reference["7FE00010"] = stored["7FE00010"]
    assert _canonical(stored) == _canonical(reference)


def _stored_uri(dataset: Dataset) -> Callable[[DataElement], str]:
    """The bulk URIs :func:`metadata_json` writes, numbered in visiting order."""
    document = json.loads(metadata_json(dataset, None))
    base = next(
        (v["BulkDataURI"].rsplit("/", 1)[0] for v in _walk(document) if "BulkDataURI" in v),
        "",
    )
    counter = iter(range(1_000_000))
    return lambda _element: f"{base}/{next(counter)}"


def _walk(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for value in document.values():
        found.append(value)
        if value.get("vr") == "SQ":
            for item in value.get("Value", []):
                found += _walk(item)
    return found


def _every_kind() -> Dataset:
    """One data set with each shape of value the builder converts itself, and some it
    leaves to pydicom."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.4"
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.ReferringPhysicianName = ["Иванов^Пётр", "Müller^Jürgen=Мюллер"]
    ds.add_new(0x00081060, "PN", "")  # NameOfPhysiciansReadingStudy, empty
    ds.OperatorsName = "=山田"  # an ideographic group only
    ds.StudyDescription = "Исследование головного мозга"
    ds.InstitutionName = "Hôpital Saint-Étienne"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "AXIAL"]
    ds.PatientAge = ""
    ds.ImagePositionPatient = ["-125.5", "0", "1e3"]
    ds.PixelSpacing = ["0.5", "0.5"]
    ds.SliceThickness = "2.50"
    ds.add_new(0x00180088, "DS", "")  # SpacingBetweenSlices, empty
    ds.ReferencedFrameNumber = ["1", "2", "10"]
    ds.InstanceNumber = "7"
    ds.add_new(0x00200012, "IS", "")  # AcquisitionNumber, empty
    ds.Rows, ds.Columns = 4, 4
    ds.add_new(0x00280106, "US", None)  # SmallestImagePixelValue, empty
    ds.add_new(0x00189219, "FD", [1.5, -2.25])  # TagAngleSecondAxis-like multi FD
    ds.add_new(0x00186028, "FD", 0.125)
    ds.add_new(0x00209165, "AT", 0x00100010)  # DimensionIndexPointer
    ds.add_new(0x00209167, "AT", [0x00200032, 0x00209157])  # FunctionalGroupPointer
    ds.add_new(0x00420011, "OB", b"%PDF" + b"x" * 2000)  # bulk data
    ds.add_new(0x00660023, "OF", b"\x00\x00\x80\x3f" * 8)  # inline binary
    ds.add_new(0x00281201, "OW", b"")  # empty binary
    ds.ContentDate, ds.ContentTime = "20240131", "101500.123"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-A0100", "SRT", "Мозг"
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3.4.6"
    inner.ReferencedFrameNumber = ["1", "2"]
    inner.add_new(0x00660023, "OF", b"\x01" * 1200)  # bulk data inside a sequence
    item.ReferencedImageSequence = Sequence([inner])
    ds.AnatomicRegionSequence = Sequence([item, Dataset()])
    ds.ProcedureCodeSequence = Sequence([])
    block = ds.private_block(0x0009, "KLINIKA TEST", create=True)
    block.add_new(0x01, "LO", "private text")
    block.add_new(0x02, "DS", ["1.5", "2"])
    block.add_new(0x03, "UN", b"\x01\x02\x03\x04")
    ds.add_new(0x00111010, "UN", b"a" * 1000)  # private tag without a creator, as UN
    return ds


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
)
def test_builder_matches_pydicom_for_every_kind_of_value(syntax: str) -> None:
    ds = _every_kind()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    new, reference = both_ways(lambda: pydicom.dcmread(io.BytesIO(data)))
    assert new == reference
    document, bulk = new
    assert bulk == ["00660023", "00111010", "00420011"]  # the first inside a sequence
    assert document["00100010"]["Value"] == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    ]
    assert document["00280030"]["Value"] == [("float", "0.5"), ("float", "0.5")]
    assert document["00200013"]["Value"] == [("int", "7")]
    assert document["00081060"] == {"vr": "PN"}


def test_builder_matches_pydicom_on_values_set_in_code() -> None:
    """Values as a caller's code sets them, never written and read back."""
    new, reference = both_ways(_every_kind)
    assert new == reference


@pytest.mark.parametrize(
    "charset, text",
    [("ISO_IR 144", "Петров^Иван"), ("ISO_IR 100", "Dubois^Hélène"), ("ISO_IR 192", "李^明")],
)
def test_builder_matches_pydicom_for_names_in_another_charset(charset: str, text: str) -> None:
    ds = _every_kind()
    ds.SpecificCharacterSet = charset
    ds.PatientName = text
    del ds.OperatorsName, ds.ReferringPhysicianName, ds.StudyDescription
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer)
    data = buffer.getvalue()
    new, reference = both_ways(lambda: pydicom.dcmread(io.BytesIO(data), force=True))
    assert new == reference
    assert new[0]["00100010"]["Value"] == [{"Alphabetic": text}]


def test_a_sequence_with_an_unconvertible_value_is_left_out_as_pydicom_leaves_it() -> None:
    ds = _every_kind()
    ds.AnatomicRegionSequence[0].ReferencedImageSequence[0].InstanceNumber = "97531"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue().replace(b"97531 ", b"9753A ")  # IS "9753A": not a number
    new, reference = both_ways(lambda: pydicom.dcmread(io.BytesIO(data)))
    assert new == reference
    assert "00082218" not in new[0] and "00100010" in new[0]
