"""A live server loaded with the samples through STOW-RS, shared by the DICOMweb tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.conftest import LiveServer, sample_files, start_server
from tests.objectstore import s3_env


@dataclass
class Loaded:
    server: LiveServer
    client: DICOMwebClient
    sent: dict[str, Path]  # SOP Instance UID -> file sent (first file with that UID)
    response: dict
    status: int

    def referenced(self) -> set[str]:
        items = self.response.get("00081199", {}).get("Value", [])
        return {item["00081155"]["Value"][0] for item in items}


def multipart_body(files: list[bytes], boundary: str = "testboundary42") -> tuple[bytes, str]:
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + f + b"\r\n"
            for f in files
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(server: LiveServer, files: list[bytes], path: str = "/studies") -> requests.Response:
    body, content_type = multipart_body(files)
    headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
    headers.update(getattr(server, "headers", {}))
    return requests.post(server.dicomweb + path, data=body, headers=headers, timeout=120)


def client_for(server: LiveServer) -> DICOMwebClient:
    return DICOMwebClient(url=server.dicomweb, headers=dict(getattr(server, "headers", {})))


def good_samples() -> dict[str, Path]:
    """Sample files that are not deliberately malformed, by SOP Instance UID (first wins)."""
    found: dict[str, Path] = {}
    for path in sample_files():
        if path.name.startswith("malformed_"):
            continue
        try:
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        except Exception:
            continue
        found.setdefault(uid, path)
    return found


@pytest.fixture(scope="session", params=["files", "s3"])  # session: pytest-randomly interleaves
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    """The samples stored through STOW-RS into a live server, on each blob store."""
    env = {} if request.param == "files" else s3_env(request)
    server = start_server(tmp_path_factory.mktemp("dicomweb") / "data", env)
    sent = good_samples()
    response = stow(server, [p.read_bytes() for p in sent.values()])
    yield Loaded(server, client_for(server), sent, response.json(), response.status_code)
    server.stop()
