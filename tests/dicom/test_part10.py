"""The Part-10 wrapper of received data sets, byte for byte as pynetdicom (and pydicom) make it."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from klinika.dicom.part10 import file_meta_prefix


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "syntax"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.55", "1.2.840.10008.1.2.1"),  # odd lengths
        ("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4", "1.2.840.10008.1.2"),
        ("1.2.840.10008.5.1.4.1.1.4", "2.25.1234567890123456789", "1.2.840.10008.1.2.4.90"),
    ],
)
def test_file_meta_prefix_is_pynetdicoms_encoding(
    sop_class: str, sop_instance: str, syntax: str
) -> None:
    meta = create_file_meta(
        sop_class_uid=UID(sop_class),
        sop_instance_uid=UID(sop_instance),
        transfer_syntax=UID(syntax),
    )
    expected = b"\x00" * 128 + b"DICM" + encode_file_meta(meta)
    built = file_meta_prefix(
        sop_class,
        sop_instance,
        syntax,
        PYNETDICOM_IMPLEMENTATION_UID,
        PYNETDICOM_IMPLEMENTATION_VERSION,
    )
    assert built == expected
    read = pydicom.dcmread(io.BytesIO(built), force=True).file_meta
    assert read.MediaStorageSOPInstanceUID == sop_instance
    assert read.TransferSyntaxUID == syntax
    assert read.FileMetaInformationGroupLength == len(built) - 132 - 12
