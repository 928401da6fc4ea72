"""WADO-RS transcoding (PS3.18 §8.7.3): instances and frames in the transfer syntax and media
type a client asks for, through dicomweb-client; 406 with the reason for what we cannot make."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import jpeg_ls
import numpy as np
import openjpeg
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tests.conftest import PYDICOM_DATA, LiveServer, start_server
from tests.dicomweb.conftest import client_for, stow
from tests.factories import make_instance
from tests.observability.conftest import METRICS_TOKEN, bearer, scrape, value

CT = PYDICOM_DATA / "CT_small.dcm"  # 16-bit signed grey, Explicit VR LE
RGB = PYDICOM_DATA / "SC_rgb_rle.dcm"  # 8-bit RGB, RLE
LOSSLESS = (
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.5",
    ExplicitVRLittleEndian,
)


@dataclass
class Stored:
    server: LiveServer
    client: DICOMwebClient

    def uids(self, path) -> tuple[str, str, str]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    server = start_server(
        tmp_path_factory.mktemp("transcoding") / "data",
        {"KLINIKA_METRICS_TOKEN": METRICS_TOKEN},
    )
    response = stow(server, [CT.read_bytes(), RGB.read_bytes()])
    assert response.status_code in (200, 202), response.text
    yield Stored(server, client_for(server))
    server.stop()


def pixels(ds: pydicom.Dataset) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ds.pixel_array


@pytest.mark.parametrize("syntax", LOSSLESS)
@pytest.mark.parametrize("path", [CT, RGB], ids=lambda p: p.name)
def test_instances_are_transcoded_losslessly(stored: Stored, path, syntax: str) -> None:
    ds = stored.client.retrieve_instance(
        *stored.uids(path), media_types=(("application/dicom", syntax),)
    )
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(pixels(ds), pixels(pydicom.dcmread(path)))
    assert ds.get("LossyImageCompression") in (None, "00")


def test_implicit_vr_little_endian_is_sent_when_asked(stored: Stored) -> None:
    """dicomweb-client refuses to ask for Implicit VR LE (PS3.18 lists it for DIMSE only), so
    the request is sent as curl would."""
    study, series, sop = stored.uids(RGB)
    response = get(
        stored,
        f"/studies/{study}/series/{series}/instances/{sop}",
        f'multipart/related; type="application/dicom"; transfer-syntax={ImplicitVRLittleEndian}',
    )
    assert response.status_code == 200
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0]
    part = response.content.split(b"--" + boundary.encode())[1]
    headers, payload = part.split(b"\r\n\r\n", 1)
    assert f"transfer-syntax={ImplicitVRLittleEndian}".encode() in headers
    ds = pydicom.dcmread(io.BytesIO(payload[:-2]))
    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert np.array_equal(pixels(ds), pixels(pydicom.dcmread(RGB)))


def test_jpeg_baseline_for_eight_bit_colour_is_flagged_lossy(stored: Stored) -> None:
    ds = stored.client.retrieve_instance(
        *stored.uids(RGB), media_types=(("application/dicom", "1.2.840.10008.1.2.4.50"),)
    )
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert ds.LossyImageCompression == "01"
    assert pixels(ds).shape == pixels(pydicom.dcmread(RGB)).shape


def get(stored: Stored, path: str, accept: str) -> requests.Response:
    return requests.get(
        stored.server.dicomweb + path,
        headers={"Accept": accept, **stored.server.headers},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("syntax", "reason"),
    [
        ("1.2.840.10008.1.2.4.50", "8-bit"),
        ("1.2.840.10008.1.2.4.202", "TLM"),
        ("1.2.840.10008.1.2.4.100", "not supported"),
    ],
)
def test_what_cannot_be_made_is_406_with_the_reason(
    stored: Stored, syntax: str, reason: str
) -> None:
    study, series, sop = stored.uids(CT)
    response = get(
        stored,
        f"/studies/{study}/series/{series}/instances/{sop}",
        f'multipart/related; type="application/dicom"; transfer-syntax={syntax}',
    )
    assert response.status_code == 406
    assert reason in response.text


def test_frames_in_jpeg_ls_and_jpeg_2000_decode_to_the_stored_pixels(stored: Stored) -> None:
    original = pixels(pydicom.dcmread(CT)).astype(np.int16)
    study, series, sop = stored.uids(CT)
    (jls,) = stored.client.retrieve_instance_frames(
        study, series, sop, [1], media_types=(("image/jls", "1.2.840.10008.1.2.4.80"),)
    )
    assert np.array_equal(jpeg_ls.decode(np.frombuffer(jls, np.uint8)).view(np.int16), original)
    (j2k,) = stored.client.retrieve_instance_frames(
        study, series, sop, [1], media_types=(("image/jp2", "1.2.840.10008.1.2.4.90"),)
    )
    assert np.array_equal(openjpeg.decode(j2k).astype(np.int16), original)


def test_htj2k_frames_for_a_viewer_decode_to_the_stored_pixels(stored: Stored) -> None:
    """OHIF asks for image/jphc; HTJ2K lossless (RPCL order) of the 8-bit RGB image."""
    study, series, sop = stored.uids(RGB)
    response = get(
        stored,
        f"/studies/{study}/series/{series}/instances/{sop}/frames/1",
        'multipart/related; type="image/jphc"; transfer-syntax=1.2.840.10008.1.2.4.201',
    )
    assert response.status_code == 200, response.text
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0]
    part = response.content.split(b"--" + boundary.encode())[1]
    headers, payload = part.split(b"\r\n\r\n", 1)
    assert b"image/jphc; transfer-syntax=1.2.840.10008.1.2.4.201" in headers
    assert np.array_equal(openjpeg.decode(payload[:-2]), pixels(pydicom.dcmread(RGB)))


def test_htj2k_frames_of_a_signed_ct_decode_to_the_stored_pixels(stored: Stored) -> None:
    """Pixel Representation 1 as HTJ2K lossless: signed samples back exactly."""
    study, series, sop = stored.uids(CT)
    response = get(
        stored,
        f"/studies/{study}/series/{series}/instances/{sop}/frames/1",
        'multipart/related; type="image/jphc"; transfer-syntax=1.2.840.10008.1.2.4.201',
    )
    assert response.status_code == 200, response.text
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0]
    payload = response.content.split(b"--" + boundary.encode())[1].split(b"\r\n\r\n", 1)[1]
    decoded = openjpeg.decode(payload[:-2])
    assert decoded.dtype == np.int16  # the code stream says signed
    assert np.array_equal(decoded, pixels(pydicom.dcmread(CT)))


def test_a_frame_part_names_its_media_type_and_transfer_syntax(stored: Stored) -> None:
    study, series, sop = stored.uids(RGB)
    response = get(
        stored,
        f"/studies/{study}/series/{series}/instances/{sop}/frames/1",
        'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50',
    )
    assert response.status_code == 200, response.text
    assert b"Content-Type: image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50" in response.content
    assert b"\xff\xd8\xff" in response.content  # a JPEG code stream
    # image/jpeg without transfer-syntax means JPEG lossless SV1 (PS3.18 Table 8.7.3-5)
    refused = get(
        stored,
        f"/studies/{study}/series/{series}/instances/{sop}/frames/1",
        'multipart/related; type="image/jpeg"',
    )
    assert refused.status_code == 406
    assert "1.2.840.10008.1.2.4.70" in refused.text


def test_transcoded_instance_passes_dciodvfy(stored: Stored, tmp_path) -> None:
    import subprocess

    ds = stored.client.retrieve_instance(
        *stored.uids(CT), media_types=(("application/dicom", "1.2.840.10008.1.2.4.90"),)
    )
    path = tmp_path / "j2k.dcm"
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    source = subprocess.run(["dciodvfy", str(CT)], capture_output=True, text=True, timeout=60)
    errors = {line for line in run.stderr.splitlines() if line.startswith("Error")}
    before = {line for line in source.stderr.splitlines() if line.startswith("Error")}
    assert errors <= before, errors - before
    assert io.BytesIO(path.read_bytes()).getvalue()[128:132] == b"DICM"


def test_wado_uri_transfer_syntax_uses_the_same_transcoder(stored: Stored) -> None:
    study, series, sop = stored.uids(CT)
    params = {
        "requestType": "WADO",
        "studyUID": study,
        "seriesUID": series,
        "objectUID": sop,
        "contentType": "application/dicom",
    }
    url = stored.server.url + "/wado"
    jls = requests.get(
        url,
        params={**params, "transferSyntax": "1.2.840.10008.1.2.4.80"},
        headers=stored.server.headers,
        timeout=60,
    )
    assert jls.status_code == 200
    ds = pydicom.dcmread(io.BytesIO(jls.content))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    assert np.array_equal(pixels(ds), pixels(pydicom.dcmread(CT)))
    refused = requests.get(
        url,
        params={**params, "transferSyntax": "1.2.840.10008.1.2.4.50"},
        headers=stored.server.headers,
        timeout=60,
    )
    assert refused.status_code == 406 and "8-bit" in refused.text


def transcodes(stored: Stored) -> dict[str, float]:
    """The server's WADO-RS transcoding counter, by outcome."""
    samples = scrape(stored.server.url + "/metrics", bearer())
    return {
        outcome: value(samples, "klinika_wado_transcodes_total", outcome=outcome)
        for outcome in ("encoded", "cached")
    }


def frame_payloads(response: requests.Response) -> list[bytes]:
    """The bodies of a multipart answer's parts."""
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0]
    parts = response.content.split(b"--" + boundary.encode())[1:-1]
    return [part.split(b"\r\n\r\n", 1)[1][:-2] for part in parts]


def test_a_repeated_transcoding_is_served_from_the_cache(stored: Stored) -> None:
    """The same frames, then the whole instance, in the same target: encoded once (the
    counter Prometheus scrapes says so); the answers are the same bytes."""
    data = make_instance(rows=64, columns=48, frames=3)
    assert stow(stored.server, [data]).status_code == 200
    ds = pydicom.dcmread(io.BytesIO(data))
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    path = f"/studies/{study}/series/{series}/instances/{sop}"
    jls = 'multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80'
    before = transcodes(stored)
    first = get(stored, path + "/frames/1,3", jls)
    second = get(stored, path + "/frames/2", jls)
    whole = get(
        stored,
        path,
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80',
    )
    again = get(stored, path + "/frames/1,3", jls)
    assert [r.status_code for r in (first, second, whole, again)] == [200] * 4
    assert len(frame_payloads(first)) == 2 and frame_payloads(again) == frame_payloads(first)
    after = transcodes(stored)
    assert after["encoded"] - before["encoded"] == 1
    assert after["cached"] - before["cached"] == 3
    (frame,) = stored.client.retrieve_instance_frames(
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPInstanceUID),
        [2],
        media_types=(("image/jls", "1.2.840.10008.1.2.4.80"),),
    )
    expected = pixels(ds)[1]
    assert np.array_equal(jpeg_ls.decode(np.frombuffer(frame, np.uint8)), expected)
