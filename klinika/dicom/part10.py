"""The DICOM File Format wrapper (preamble, prefix, File Meta Information) as plain bytes.

Building the File Meta group through a pydicom ``FileMetaDataset`` costs more than the rest of
receiving a small instance; its six elements are encoded here directly.

References
----------
PS3.10 §7.1 (DICOM File Meta Information), PS3.5 §7.1.2 (explicit VR little endian
elements), PS3.5 §6.2 (UI values padded with NUL, other text with a space).
"""

from __future__ import annotations

import struct

_PREFIX = b"\x00" * 128 + b"DICM"
_VERSION = struct.pack("<HH2sHL", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"


def _short(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _uid(element: int, uid: str) -> bytes:
    value = uid.encode("ascii")
    return _short(element, b"UI", value + b"\x00" * (len(value) % 2))


def file_meta_prefix(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    implementation_class_uid: str,
    implementation_version_name: str | None = None,
) -> bytes:
    """Preamble, ``DICM`` and the File Meta Information group of a Part-10 file whose data
    set (encoded in ``transfer_syntax``) follows.

    References
    ----------
    PS3.10 §7.1, Table 7.1-1.
    """
    body = b"".join(
        (
            _VERSION,
            _uid(0x0002, sop_class_uid),
            _uid(0x0003, sop_instance_uid),
            _uid(0x0010, transfer_syntax),
            _uid(0x0012, implementation_class_uid),
        )
    )
    if implementation_version_name:
        name = implementation_version_name.encode("ascii")
        body += _short(0x0013, b"SH", name + b" " * (len(name) % 2))
    length = struct.pack("<HH2sHL", 0x0002, 0x0000, b"UL", 4, len(body))
    return _PREFIX + length + body
