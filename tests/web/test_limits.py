"""Bounded work per request (issue 14, finding 4): each limit answers a clear 413 or 400,
never 500, and where memory was the problem the server's RSS is measured
(``/proc/PID/status`` VmRSS of the ``klinika serve`` process)."""

from __future__ import annotations

import io
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from klinika.dicomweb.negotiation import split_outside_quotes
from tests.conftest import PYDICOM_DATA, LiveServer, start_server
from tests.dicomweb.conftest import multipart_body, stow

CT = PYDICOM_DATA / "CT_small.dcm"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Default limits: 4 GiB a body, 256 MiB an instance, 256 frames, ZIP ratio 200:1."""
    live = start_server(tmp_path_factory.mktemp("limits") / "data")
    assert stow(live, [CT.read_bytes()]).status_code == 200
    yield live
    live.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Small limits, to check each one without sending gigabytes."""
    live = start_server(
        tmp_path_factory.mktemp("small") / "data",
        extra_env={
            "KLINIKA_MAX_REQUEST_BYTES": str(2 * MIB),
            "KLINIKA_MAX_INSTANCE_BYTES": str(MIB),
            "KLINIKA_ZIP_MAX_MEMBERS": "3",
            "KLINIKA_ZIP_MAX_TOTAL_BYTES": str(MIB + MIB // 2),
        },
    )
    yield live
    live.stop()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def peak_growth_mib(server: LiveServer, work: Callable[[], object]) -> tuple[float, object]:
    """Run ``work`` while sampling the server's RSS; (growth of the peak in MiB, result)."""
    pid = server.process.pid
    before = peak = rss_kib(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    return (peak - before) / 1024, result


def zeros_part(size: int, boundary: str = "b0undary") -> Iterator[bytes]:
    yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    piece = 256 * 1024
    chunk = bytes(piece)
    for _ in range(size // piece):
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def post_stream(server: LiveServer, body: Iterator[bytes]) -> requests.Response:
    headers = {
        **server.headers,
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b0undary',
    }
    return requests.post(server.dicomweb + "/studies", data=body, headers=headers, timeout=300)


def test_a_400_mb_stow_part_is_refused_without_taking_400_mb(server: LiveServer) -> None:
    grown, answer = peak_growth_mib(server, lambda: post_stream(server, zeros_part(400 * MIB)))
    assert isinstance(answer, requests.Response)
    assert answer.status_code == 413, answer.text
    assert "max_instance_bytes" in answer.json()["error"]
    assert grown < 150, f"RSS grew {grown:.0f} MiB"


def test_stow_body_and_part_limits_answer_413(small: LiveServer) -> None:
    part = post_stream(small, zeros_part(MIB + MIB // 2))
    assert part.status_code == 413 and "max_instance_bytes" in part.json()["error"]
    body, content_type = multipart_body([bytes(MIB - 1024)] * 3, boundary="b0undary")
    headers = {**small.headers, "Content-Type": content_type}
    whole = requests.post(small.dicomweb + "/studies", data=body, headers=headers, timeout=60)
    assert whole.status_code == 413 and "bytes" in whole.json()["error"]
    streamed = post_stream(small, iter([body]))  # chunked: no Content-Length to refuse early
    assert streamed.status_code == 413, streamed.text
    assert stow(small, [CT.read_bytes()]).status_code == 200  # a normal instance still goes in


def test_a_5000_character_boundary_is_a_400(server: LiveServer) -> None:
    body, content_type = multipart_body([CT.read_bytes()], boundary="b" * 5000)
    headers = {**server.headers, "Content-Type": content_type}
    answer = requests.post(server.dicomweb + "/studies", data=body, headers=headers, timeout=60)
    assert answer.status_code == 400
    assert "boundary" in answer.json()["error"]


def instance_path(server: LiveServer) -> str:
    found = requests.get(server.dicomweb + "/instances", headers=server.headers, timeout=30)
    item = found.json()[0]
    study, series, sop = (item[t]["Value"][0] for t in ("0020000D", "0020000E", "00080018"))
    return f"{server.dicomweb}/studies/{study}/series/{series}/instances/{sop}"


def test_frames_per_request_are_bounded(server: LiveServer) -> None:
    base = instance_path(server)
    accept = {**server.headers, "Accept": 'multipart/related; type="application/octet-stream"'}
    many = requests.get(base + "/frames/" + ",".join(["1"] * 400), headers=accept, timeout=60)
    assert many.status_code == 400
    assert "max_frames_per_request" in many.json()["error"]
    one = requests.get(base + "/frames/1", headers=accept, timeout=60)
    assert one.status_code == 200


def zipped(members: dict[str, int | bytes]) -> bytes:
    """A ZIP; an int member is that many zero bytes, written in pieces (never held whole)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, content in members.items():
            with bundle.open(name, "w", force_zip64=True) as member:
                if isinstance(content, bytes):
                    member.write(content)
                else:
                    chunk = bytes(MIB)
                    for _ in range(content // MIB):
                        member.write(chunk)
    return buffer.getvalue()


def upload(server: LiveServer, name: str, body: bytes) -> requests.Response:
    headers = {**server.headers, "X-Filename": name}
    return requests.post(server.url + "/upload/files", data=body, headers=headers, timeout=300)


def test_a_zip_of_a_gibibyte_of_zeros_is_refused_unread(server: LiveServer) -> None:
    bomb = zipped({"bomb.dcm": 1024 * MIB, "ct.dcm": CT.read_bytes()})
    assert len(bomb) < 4 * MIB
    grown, answer = peak_growth_mib(server, lambda: upload(server, "bomb.zip", bomb))
    assert isinstance(answer, requests.Response) and answer.status_code == 200, answer.text
    results = {r["name"]: r for r in answer.json()["results"]}
    assert results["bomb.zip/bomb.dcm"]["reason"] == "too-large"
    assert results["bomb.zip/ct.dcm"]["status"] in ("stored", "duplicate")
    assert grown < 150, f"RSS grew {grown:.0f} MiB"


def test_a_member_compressed_beyond_the_ratio_is_refused(server: LiveServer) -> None:
    answer = upload(server, "ratio.zip", zipped({"zeros.dcm": 64 * MIB}))
    assert answer.status_code == 200
    (result,) = answer.json()["results"]
    assert result["status"] == "rejected" and "zip_max_ratio" in result["message"]


def test_zip_members_total_size_and_upload_body_limits_answer_413(small: LiveServer) -> None:
    members = upload(small, "many.zip", zipped({f"{n}.dcm": b"x" for n in range(4)}))
    assert members.status_code == 413 and "zip_max_members" in members.json()["error"]
    total = upload(small, "big.zip", zipped({"a.dcm": bytes(MIB), "b.dcm": bytes(MIB)}))
    assert total.status_code == 413 and "zip_max_total_bytes" in total.json()["error"]
    body = upload(small, "huge.dcm", bytes(3 * MIB))
    assert body.status_code == 413


def qido(server: LiveServer, **params: str) -> requests.Response:
    return requests.get(
        server.dicomweb + "/studies", params=params, headers=server.headers, timeout=60
    )


def test_a_huge_offset_is_a_400(server: LiveServer) -> None:
    assert qido(server, offset=str(10**30)).status_code == 400
    assert qido(server, offset="10000001").status_code == 400
    assert qido(server, offset="1").status_code == 200
    assert qido(server, limit="9" * 5000).status_code == 400


def test_a_fuzzy_name_of_333_words_is_a_400(server: LiveServer) -> None:
    words = " ".join(f"w{n}" for n in range(333))
    answer = qido(server, PatientName=words, fuzzymatching="true")
    assert answer.status_code == 400 and "qido_max_fuzzy_words" in answer.json()["error"]
    assert qido(server, PatientName="ct small", fuzzymatching="true").status_code == 200


def test_a_nul_byte_in_a_path_or_query_is_a_400(server: LiveServer) -> None:
    for path in ("/viewer/%00", "/dicom-web/studies/1.2%003/metadata", "/worklist?q=%00"):
        answer = requests.get(server.url + path, headers=server.headers, timeout=30)
        assert answer.status_code == 400, path
        assert "NUL" in answer.json()["error"]


def test_an_oversized_accept_header_is_a_400(server: LiveServer) -> None:
    accept = "application/dicom+json;" + '"' * 20_000
    answer = requests.get(
        server.dicomweb + "/studies", headers={**server.headers, "Accept": accept}, timeout=60
    )
    assert answer.status_code == 400


_OLD_SPLIT = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')


@given(st.text(alphabet='ab,;"= ', max_size=40))
def test_the_linear_splitter_agrees_with_the_old_expression(text: str) -> None:
    """Where quotes are balanced the old (quadratic) expression was right: same answer."""
    if text.count('"') % 2 == 0:
        assert split_outside_quotes(text, ",") == _OLD_SPLIT.split(text)
