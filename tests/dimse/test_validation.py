"""What C-STORE accepts: every storage SOP class (retired ones too, unknown ones when
configured), validated by the one validator STOW-RS uses, whatever the transfer syntax."""

from __future__ import annotations

import io
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, _config

from klinika.dicom.header import part10_from_dataset_bytes
from klinika.dimse.sop_classes import storage_sop_classes
from tests.conftest import LiveServer, start_server
from tests.dicomweb.conftest import stow
from tests.dimse.conftest import DCMTK_ENV, local_dimse
from tests.factories import make_instance

US_RETIRED = "1.2.840.10008.5.1.4.1.1.6"  # Ultrasound Image Storage (Retired)
US_MULTIFRAME_RETIRED = "1.2.840.10008.5.1.4.1.1.3"
NM_RETIRED = "1.2.840.10008.5.1.4.1.1.5"
PRIVATE_STORAGE = "1.2.826.0.1.3680043.10.1391.77.1"  # a vendor's private SOP class


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("validation") / "data")
    yield server
    server.stop()


def dimse_port(server: LiveServer) -> int:
    return int(server.env["KLINIKA_DIMSE_PORT"])


def holds(server: LiveServer, sop_instance_uid: str) -> bool:
    """Whether the archive answers QIDO-RS for this instance."""
    response = requests.get(
        f"{server.dicomweb}/instances",
        params={"SOPInstanceUID": sop_instance_uid},
        headers=server.headers,
        timeout=30,
    )
    response.raise_for_status()
    return response.status_code == 200 and bool(response.content and response.json())


def c_store_file(port: int, path: Path, sop_class: str, transfer_syntax: str) -> pydicom.Dataset:
    """C-STORE a file as it is: pynetdicom's chunked sending streams the encoded data set
    after the File Meta Information, never decoding it."""
    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title="MODALITY")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(sop_class, [transfer_syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="KLINIKA")
    assert assoc.is_established
    try:
        return assoc.send_c_store(path)
    finally:
        assoc.release()


def utf8_under_latin1(transfer_syntax: str) -> bytes:
    """An instance whose PatientName is UTF-8 Cyrillic labelled ISO_IR 100 (Latin-1): bytes
    0x80-0x9F are C1 controls, impossible in ISO_IR 100 text."""
    data = make_instance(transfer_syntax=transfer_syntax, PatientName="Иванов^Иван")
    return data.replace(b"ISO_IR 192", b"ISO_IR 100")


# ----------------------------------------------------------------------- SOP classes
def test_the_storage_table_holds_every_retired_storage_class_of_the_uid_dictionary() -> None:
    from pydicom._uid_dict import UID_dictionary

    retired = {
        uid
        for uid, (name, kind, _, status, _) in UID_dictionary.items()
        if kind == "SOP Class" and status == "Retired" and name.endswith("Storage")
    }
    assert {US_RETIRED, US_MULTIFRAME_RETIRED, NM_RETIRED} <= retired
    assert retired <= set(storage_sop_classes())


@pytest.mark.parametrize("sop_class", [US_RETIRED, US_MULTIFRAME_RETIRED, NM_RETIRED])
def test_storescu_stores_an_instance_of_a_retired_sop_class(
    live: LiveServer, tmp_path: Path, sop_class: str
) -> None:
    path = tmp_path / "old-modality.dcm"
    path.write_bytes(make_instance(SOPClassUID=sop_class, Modality="US"))
    sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    sent = subprocess.run(
        # -R: propose the files' own SOP classes (storescu's default list has no retired ones)
        ["storescu", "-R", "-aet", "OLDUS", "-aec", "KLINIKA", "127.0.0.1", str(dimse_port(live)),
         str(path)],
        capture_output=True, text=True, env=DCMTK_ENV, timeout=60,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert holds(live, sop)


def test_a_private_sop_class_is_refused_unless_configured(tmp_path: Path) -> None:
    path = tmp_path / "private.dcm"
    path.write_bytes(make_instance(SOPClassUID=PRIVATE_STORAGE))
    sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    with local_dimse(tmp_path / "default") as server:
        ae = AE(ae_title="VENDOR")
        ae.add_requested_context(PRIVATE_STORAGE, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", server.port, ae_title="KLINIKA")
        try:
            assert not assoc.accepted_contexts, "the private SOP class is not ours by default"
        finally:
            if assoc.is_established:
                assoc.release()
    with local_dimse(tmp_path / "open", dimse_accept_unknown_sop_classes=True) as server:
        answer = c_store_file(server.port, path, PRIVATE_STORAGE, ExplicitVRLittleEndian)
        assert answer.Status == 0x0000
        assert server.holds(sop)
        original = path.read_bytes()
        body = original[132 + 12 + int.from_bytes(original[140:144], "little") :]
        assert server.stored(original).endswith(body), "the data set is stored as it arrived"


# ------------------------------------------------------------------ character sets
@pytest.mark.parametrize("transfer_syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_c_store_refuses_utf8_labelled_latin1_in_either_vr_encoding(
    live: LiveServer, tmp_path: Path, transfer_syntax: str
) -> None:
    path = tmp_path / "mislabelled.dcm"
    path.write_bytes(utf8_under_latin1(transfer_syntax))
    sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    answer = c_store_file(dimse_port(live), path, "1.2.840.10008.5.1.4.1.1.2", transfer_syntax)
    assert answer.Status == 0xA900
    assert "SpecificCharacterSet" in answer.ErrorComment or "C1" in answer.ErrorComment
    assert not holds(live, sop)


def test_stow_refuses_implicit_vr_utf8_labelled_latin1(live: LiveServer) -> None:
    data = utf8_under_latin1(ImplicitVRLittleEndian)
    response = stow(live, [data])
    assert response.status_code == 409
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA900]
    assert not holds(live, str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID))


def test_implicit_vr_with_correct_latin1_text_is_stored(live: LiveServer, tmp_path: Path) -> None:
    data = make_instance(
        transfer_syntax=ImplicitVRLittleEndian, charset="ISO_IR 100", PatientName="Müller^Jürgen"
    )
    path = tmp_path / "latin1.dcm"
    path.write_bytes(data)
    answer = c_store_file(
        dimse_port(live), path, "1.2.840.10008.5.1.4.1.1.2", ImplicitVRLittleEndian
    )
    assert answer.Status == 0x0000
    assert holds(live, str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID))


# ------------------------------------------------------------------- deflate bombs
def _full_flush_block(data: bytes) -> bytes:
    """Raw deflate of ``data`` ending on a full flush: byte-aligned and independent of what
    precedes it, so identical blocks can be concatenated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def deflate_bomb(inflated_megabytes: int = 256) -> tuple[bytes, str]:
    """A Part-10 Deflated Explicit VR LE instance whose ~260 KB inflate to hundreds of MB
    (a valid header, then Pixel Data of zeros); and its SOP Instance UID."""
    header = pydicom.dcmread(io.BytesIO(make_instance()), stop_before_pixels=True)
    del header.file_meta
    buffer = io.BytesIO()
    header.save_as(buffer, implicit_vr=False, little_endian=True)
    pixel_bytes = inflated_megabytes << 20
    pixel_header = b"\xe0\x7f\x10\x00OW\x00\x00" + pixel_bytes.to_bytes(4, "little")
    zeros = _full_flush_block(bytes(1 << 22))
    body = (
        _full_flush_block(buffer.getvalue() + pixel_header)
        + zeros * (pixel_bytes >> 22)
        + b"\x03\x00"  # an empty final block
    )
    part10 = part10_from_dataset_bytes(
        body, DeflatedExplicitVRLittleEndian, header.SOPClassUID, header.SOPInstanceUID
    )
    return part10, str(header.SOPInstanceUID)


def test_the_bomb_really_inflates_to_hundreds_of_megabytes() -> None:
    part10, _ = deflate_bomb()
    assert len(part10) < 300_000
    meta_end = 132 + 12 + int.from_bytes(part10[140:144], "little")
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated, pending = 0, part10[meta_end:]
    while pending:
        inflated += len(inflater.decompress(pending, 1 << 24))
        pending = inflater.unconsumed_tail
    assert inflated > 256 << 20


def test_c_store_refuses_a_deflate_bomb_within_a_second(live: LiveServer, tmp_path: Path) -> None:
    part10, sop = deflate_bomb()
    path = tmp_path / "bomb.dcm"
    path.write_bytes(part10)
    started = time.monotonic()
    answer = c_store_file(
        dimse_port(live), path, "1.2.840.10008.5.1.4.1.1.2", DeflatedExplicitVRLittleEndian
    )
    elapsed = time.monotonic() - started
    assert answer.Status == 0xA700
    assert "inflates" in answer.ErrorComment
    assert elapsed < 1.0, f"the bomb kept the server busy for {elapsed:.1f} s"
    assert not holds(live, sop)


def test_stow_refuses_a_deflate_bomb(live: LiveServer) -> None:
    part10, sop = deflate_bomb()
    response = stow(live, [part10])
    assert response.status_code == 409
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA700]
    assert "inflates" in response.json()["00000902"]["Value"][0]
    assert not holds(live, sop)


def test_a_truncated_deflated_instance_is_refused_as_unreadable(live: LiveServer) -> None:
    part10, sop = deflate_bomb(8)
    response = stow(live, [part10[: len(part10) // 2]])
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert not holds(live, sop)


def test_an_honest_deflated_instance_is_stored(live: LiveServer, tmp_path: Path) -> None:
    source = Path(str(get_testdata_file("image_dfl.dcm")))
    dataset = pydicom.dcmread(source)
    answer = c_store_file(
        dimse_port(live), source, dataset.SOPClassUID, DeflatedExplicitVRLittleEndian
    )
    assert answer.Status == 0x0000
    assert holds(live, str(dataset.SOPInstanceUID))
