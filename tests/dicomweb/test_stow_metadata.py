"""STOW-RS of metadata with bulk data (PS3.18 §10.5.1.2): DICOM JSON and PS3.19 XML become
Part-10 instances through the one ingest path. XML comes from DCMTK's dcm2xml (a real peer);
requests are sent with httpx (dicomweb-client sends Part-10 only)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.conftest import LiveServer, start_server
from tests.dicomweb.conftest import client_for
from tests.factories import make_instance

BOUNDARY = "stowmeta42"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("stow-meta") / "data")
    yield live
    live.stop()


def body_of(parts: list[tuple[dict[str, str], bytes]]) -> bytes:
    out = b""
    for headers, payload in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out += f"--{BOUNDARY}\r\n{head}\r\n".encode() + payload + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def post(server: LiveServer, root_type: str, parts: list[tuple[dict[str, str], bytes]]):
    headers = {
        **server.headers,
        "Content-Type": f'multipart/related; type="{root_type}"; boundary={BOUNDARY}',
        "Accept": "application/dicom+json",
    }
    return httpx.post(
        server.dicomweb + "/studies", content=body_of(parts), headers=headers, timeout=120
    )


def json_with_bulk(part10: bytes, uri: str = "pixels-1") -> tuple[dict, bytes, Dataset]:
    """The instance's DICOM JSON with its pixel data as a BulkDataURI, and the pixel bytes."""
    dataset = pydicom.dcmread(io.BytesIO(part10))
    pixels = bytes(dataset.PixelData)
    document = dataset.to_json_dict(bulk_data_threshold=1 << 30)
    document["7FE00010"] = {"vr": "OW", "BulkDataURI": uri}
    return document, pixels, dataset


def retrieved(server: LiveServer, dataset: Dataset) -> Dataset:
    return client_for(server).retrieve_instance(
        str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID), str(dataset.SOPInstanceUID)
    )


@pytest.mark.parametrize("side", [16, 512], ids=["in-memory", "spooled"])
def test_json_metadata_with_a_bulk_data_part_is_stored(server: LiveServer, side: int) -> None:
    """Three data sets, each with its pixel data in a part of its own: small parts wait for
    their metadata in memory, large ones (512² × 16 bits) in a temporary file."""
    study = pydicom.uid.generate_uid()
    instances = [
        json_with_bulk(make_instance(study_uid=study, rows=side, columns=side), f"pixels-{n}")
        for n in range(3)
    ]
    response = post(
        server,
        "application/dicom+json",
        [
            (
                {"Content-Type": "application/dicom+json"},
                json.dumps([document for document, _, _ in instances]).encode(),
            ),
            *(
                (
                    {"Content-Type": "application/octet-stream", "Content-Location": f"pixels-{n}"},
                    pixels,
                )
                for n, (_, pixels, _) in enumerate(instances)
            ),
        ],
    )
    assert response.status_code == 200, response.text
    stored = [item["00081155"]["Value"][0] for item in response.json()["00081199"]["Value"]]
    assert stored == [original.SOPInstanceUID for _, _, original in instances]
    for _, _, original in instances:
        back = retrieved(server, original)
        assert back.PatientName == original.PatientName
        assert np.array_equal(back.pixel_array, original.pixel_array)


def test_json_metadata_with_inline_binary_is_stored(server: LiveServer) -> None:
    original = pydicom.dcmread(io.BytesIO(make_instance()))
    document = original.to_json_dict(bulk_data_threshold=1 << 30)
    assert "InlineBinary" in document["7FE00010"]
    response = post(
        server,
        "application/dicom+json",
        [({"Content-Type": "application/dicom+json"}, json.dumps(document).encode())],
    )
    assert response.status_code == 200, response.text
    assert np.array_equal(retrieved(server, original).pixel_array, original.pixel_array)


def test_missing_bulk_data_is_a_failure_with_its_reason(server: LiveServer) -> None:
    document, _, original = json_with_bulk(make_instance(), uri="nowhere")
    response = post(
        server,
        "application/dicom+json",
        [({"Content-Type": "application/dicom+json"}, json.dumps([document]).encode())],
    )
    assert response.status_code == 409
    body = response.json()
    (item,) = body["00081198"]["Value"]
    assert item["00081197"]["Value"] == [0xA900]
    assert item["00081155"]["Value"] == [original.SOPInstanceUID]
    assert "nowhere" in body["00000902"]["Value"][0]


def test_compressed_pixel_data_part_keeps_its_transfer_syntax(server: LiveServer) -> None:
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    source = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    source.StudyInstanceUID = pydicom.uid.generate_uid()
    source.SOPInstanceUID = pydicom.uid.generate_uid()
    frame = next(generate_frames(source.PixelData, number_of_frames=1))
    document = source.to_json_dict(bulk_data_threshold=1 << 30)
    document["7FE00010"] = {"vr": "OB", "BulkDataURI": "frame-1"}
    syntax = str(source.file_meta.TransferSyntaxUID)
    response = post(
        server,
        "application/dicom+json",
        [
            ({"Content-Type": "application/dicom+json"}, json.dumps(document).encode()),
            (
                {
                    "Content-Type": f"image/jpeg; transfer-syntax={syntax}",
                    "Content-Location": "frame-1",
                },
                frame,
            ),
        ],
    )
    assert response.status_code in (200, 202), response.text
    back = retrieved(server, source)  # dicomweb-client asks for transfer-syntax=*: as stored
    assert str(back.file_meta.TransferSyntaxUID) == syntax
    assert np.array_equal(back.pixel_array, source.pixel_array)


def dcm2xml(path: Path, *options: str) -> bytes:
    return subprocess.run(
        ["dcm2xml", "-nat", "+Xn", "+M", *options, str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout


def test_native_dicom_model_xml_from_dcmtk_is_stored(server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "ct.dcm"
    path.write_bytes(make_instance(rows=12, columns=10, PatientName="Иванов^Пётр"))
    original = pydicom.dcmread(path)
    xml = dcm2xml(path, "+Eb")  # binary values as InlineBinary
    assert b"NativeDicomModel" in xml and b"InlineBinary" in xml
    response = post(
        server, "application/dicom+xml", [({"Content-Type": "application/dicom+xml"}, xml)]
    )
    assert response.status_code == 200, response.text
    back = retrieved(server, original)
    assert str(back.PatientName) == "Иванов^Пётр"
    assert back.Rows == 12 and back.Columns == 10
    # DCMTK 3.6.7 writes OW InlineBinary big-endian (its Base64 encoder swaps first); we read
    # binary values little-endian as PS3.18 F.2.7 says, so only the length is compared here
    # (the BulkData test below compares the pixels).
    assert len(back.PixelData) == len(original.PixelData)


def test_native_dicom_model_xml_with_bulk_data_parts(server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "ct.dcm"
    path.write_bytes(make_instance(rows=8, columns=8))
    original = pydicom.dcmread(path)
    xml = dcm2xml(path, "+Eu").decode()  # binary values as BulkData uuid=…
    assert "<BulkData" in xml
    uuid = xml.split('<BulkData uuid="', 1)[1].split('"', 1)[0]
    response = post(
        server,
        "application/dicom+xml",
        [
            ({"Content-Type": "application/dicom+xml"}, xml.encode()),
            (
                {
                    "Content-Type": "application/octet-stream",
                    "Content-Location": f"urn:uuid:{uuid}",
                },
                bytes(original.PixelData),
            ),
        ],
    )
    assert response.status_code == 200, response.text
    assert np.array_equal(retrieved(server, original).pixel_array, original.pixel_array)


@pytest.mark.parametrize(
    "xml",
    [
        b"<NativeDicomModel><DicomAttribute tag='0010' vr='PN'/></NativeDicomModel>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><NativeDicomModel/>',
        b"<Other/>",
        b"<NativeDicomModel><DicomAttribute",
        b'<NativeDicomModel xmlns="http://example.org/other"/>',
    ],
    ids=["bad-tag", "dtd", "wrong-root", "not-well-formed", "other-namespace"],
)
def test_malformed_xml_is_refused_with_a_reason(server: LiveServer, xml: bytes) -> None:
    response = post(
        server, "application/dicom+xml", [({"Content-Type": "application/dicom+xml"}, xml)]
    )
    assert response.status_code == 409
    body = response.json()
    assert body["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert body["00000902"]["Value"][0]


def test_json_metadata_that_is_not_json_is_refused(server: LiveServer) -> None:
    response = post(
        server,
        "application/dicom+json",
        [({"Content-Type": "application/dicom+json"}, base64.b64encode(b"not json"))],
    )
    assert response.status_code == 409
    assert "not JSON" in response.json()["00000902"]["Value"][0]


def test_a_uid_with_a_leading_zero_is_accepted_with_a_warning(server: LiveServer) -> None:
    """As DCMTK and Orthanc do for Varian RT objects (PS3.5 §9.1 forbids the leading zero)."""
    from tests.dicomweb.conftest import stow

    sop = "1.2.246.352.71.3.0123456789.1"
    response = stow(server, [make_instance(sop_uid=sop)])
    assert response.status_code == 202
    (item,) = response.json()["00081199"]["Value"]
    assert item["00081155"]["Value"] == [sop]
    assert item["00081196"]["Value"] == [0xB000]
    assert "leading zero" in response.headers["warning"]
    found = httpx.get(
        server.dicomweb + "/instances",
        params={"SOPInstanceUID": sop},
        headers={**server.headers, "Accept": "application/dicom+json"},
        timeout=60,
    )
    assert [i["00080018"]["Value"][0] for i in found.json()] == [sop]


def test_malformed_uids_are_still_refused(server: LiveServer) -> None:
    from tests.dicomweb.conftest import stow

    for bad in ("1.2.abc", "1..2", "1.2." + "3" * 70):
        response = stow(server, [make_instance(sop_uid=bad)])
        assert response.status_code == 409, bad
        assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
