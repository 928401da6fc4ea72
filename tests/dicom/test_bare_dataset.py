"""Files without preamble and File Meta Information (bare data sets, as older systems write
them): the upload and import read them as DCMTK and Orthanc do; DIMSE and STOW-RS do not."""

from __future__ import annotations

import io
import subprocess

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from klinika.dicom.header import (
    BARE_DATASET_WARNING,
    _meta_group_length,
    bare_dataset_syntax,
    parse_instance,
)
from klinika.errors import InvalidInstance
from tests.factories import make_instance


def bare(part10: bytes) -> bytes:
    """The data set of a Part-10 file, without its preamble and File Meta Information."""
    return part10[132 + 12 + _meta_group_length(part10) :]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_bare_data_set_is_read_with_the_flag_and_refused_without(syntax: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    part10 = make_instance(transfer_syntax=syntax, PatientName="Bare^Dataset")
    data = bare(part10)
    (tmp_path / "bare.dcm").write_bytes(data)
    # DCMTK reads it (it guesses the transfer syntax the same way)
    dump = subprocess.run(["dcmdump", str(tmp_path / "bare.dcm")], capture_output=True)
    assert dump.returncode == 0 and b"Bare^Dataset" in dump.stdout
    assert bare_dataset_syntax(data) == syntax
    parsed = parse_instance(data, bare_dataset=True)
    assert parsed.transfer_syntax == syntax
    assert parsed.warnings[0] == BARE_DATASET_WARNING
    assert parsed.pixel_location is not None
    stored = pydicom.dcmread(io.BytesIO(parsed.part10))
    assert stored.file_meta.TransferSyntaxUID == syntax
    assert stored.SOPInstanceUID == pydicom.dcmread(io.BytesIO(part10)).SOPInstanceUID
    assert stored.PatientName == "Bare^Dataset"
    with pytest.raises(InvalidInstance, match="preamble"):  # DIMSE and STOW-RS: as before
        parse_instance(data)


@pytest.mark.parametrize("junk", [b"not DICOM at all " * 20, b"\x08\x00\x16\x00" + b"\xff" * 64])
def test_what_is_not_a_data_set_stays_refused(junk: bytes) -> None:
    with pytest.raises(InvalidInstance) as refused:
        parse_instance(junk, bare_dataset=True)
    assert refused.value.reason in ("unreadable", "invalid-uid")


def test_the_archive_reads_bare_data_sets_only_when_asked(archive) -> None:  # type: ignore[no-untyped-def]
    data = bare(make_instance())
    assert archive.store(data).status == "rejected"
    stored = archive.store(data, bare_datasets=True)
    assert stored.status == "stored" and BARE_DATASET_WARNING in stored.warnings
