"""Single-part WADO-RS answers and HTTP Range on them (RFC 9110 §14): frames, bulk data and
instances asked with a bare media type; 206, 416 and Accept-Ranges."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pydicom
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from klinika.dicomweb.ranges import RangeNotSatisfiable, byte_range
from tests.conftest import PYDICOM_DATA, LiveServer, start_server
from tests.dicomweb.conftest import stow

CT = PYDICOM_DATA / "CT_small.dcm"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("ranges") / "data")
    assert stow(live, [CT.read_bytes()]).status_code == 200
    yield live
    live.stop()


def instance_url(server: LiveServer) -> str:
    ds = pydicom.dcmread(CT, stop_before_pixels=True)
    return (
        f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def get(server: LiveServer, url: str, accept: str, **headers: str) -> requests.Response:
    return requests.get(url, headers={"Accept": accept, **headers, **server.headers}, timeout=60)


def test_one_frame_asked_bare_is_a_single_part_with_ranges(server: LiveServer) -> None:
    url = instance_url(server) + "/frames/1"
    whole = get(server, url, "application/octet-stream")
    assert whole.status_code == 200
    assert whole.headers["content-type"].startswith("application/octet-stream")
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.content == pydicom.dcmread(CT).PixelData
    part = get(server, url, "application/octet-stream", Range="bytes=100-199")
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert part.content == whole.content[100:200]
    tail = get(server, url, "application/octet-stream", Range="bytes=-10")
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    beyond = get(server, url, "application/octet-stream", Range=f"bytes={len(whole.content)}-")
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(whole.content)}"


def test_several_ranges_get_the_whole_payload(server: LiveServer) -> None:
    url = instance_url(server) + "/frames/1"
    answer = get(server, url, "application/octet-stream", Range="bytes=0-1,5-6")
    assert answer.status_code == 200
    assert len(answer.content) == len(pydicom.dcmread(CT).PixelData)


def test_multipart_frames_are_unchanged(server: LiveServer) -> None:
    accept = "multipart/related; type=application/octet-stream"
    answer = get(server, instance_url(server) + "/frames/1", accept)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("multipart/related")


def test_bulk_data_by_range(server: LiveServer) -> None:
    url = instance_url(server) + "/bulk/pixeldata"
    part = get(server, url, "application/octet-stream", Range="bytes=0-15")
    assert part.status_code == 206
    assert part.content == pydicom.dcmread(CT).PixelData[:16]
    assert part.headers["content-disposition"] == "attachment"  # bulk data stays sandboxed


def test_an_instance_asked_bare_is_a_part10_body_with_ranges(server: LiveServer) -> None:
    url = instance_url(server)
    whole = get(server, url, "application/dicom; transfer-syntax=*")
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    assert pydicom.dcmread(io.BytesIO(whole.content)).SOPInstanceUID
    head = get(server, url, "application/dicom; transfer-syntax=*", Range="bytes=128-131")
    assert head.status_code == 206 and head.content == b"DICM"


@given(size=st.integers(1, 10_000), start=st.integers(0, 20_000), length=st.integers(1, 5000))
def test_byte_range_stays_inside_the_payload(size: int, start: int, length: int) -> None:
    header = f"bytes={start}-{start + length - 1}"
    if start >= size:
        with pytest.raises(RangeNotSatisfiable):
            byte_range(header, size)
        return
    first, last = byte_range(header, size) or (0, size - 1)
    assert first == start and last == min(start + length - 1, size - 1)


@pytest.mark.parametrize(
    "header", ["items=0-1", "bytes=5-2", "bytes=a-b", "bytes=-", "bytes=0-1,3-4"]
)
def test_ranges_we_ignore(header: str) -> None:
    assert byte_range(header, 100) is None
