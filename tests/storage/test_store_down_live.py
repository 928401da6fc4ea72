"""A live server on S3 whose object store dies in the middle of a STOW-RS request.

What must hold: every instance the response acknowledges is in the index and its bytes are
in the bucket; every other one is reported failed (0xA700) and is not indexed; STOW while the
store is down answers 503 and C-STORE 0xA700; after the store comes back, fsck is clean.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.uid import CTImageStorage

from tests.backup.conftest import klinika
from tests.conftest import LiveServer, start_server
from tests.dicomweb.conftest import multipart_body, stow
from tests.dimse.conftest import associate
from tests.factories import make_instance
from tests.objectstore import SeaweedFS

STUDY = "1.2.826.0.1.3680043.8.498.777"
BOUNDARY = "storedownboundary"


def indexed(server: LiveServer, study: str) -> int:
    response = requests.get(
        f"{server.dicomweb}/studies/{study}/instances", headers=server.headers, timeout=30
    )
    return 0 if response.status_code == 204 else len(response.json())


@pytest.mark.slow
def test_the_store_dying_mid_stow_loses_nothing_acknowledged_and_indexes_nothing_half(
    own_seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    env = own_seaweedfs.env("live") | {"KLINIKA_S3_RETRY_SECONDS": "2"}
    server = start_server(tmp_path / "data", env)
    try:
        page = requests.get(server.url + "/admin/system", headers=server.headers, timeout=30).text
        assert 'data-testid="health-storage">ok<' in page
        assert f"s3: {own_seaweedfs.endpoint}/klinika/live" in page  # where the blobs are

        first = [make_instance(study_uid=STUDY, rows=32, columns=32) for _ in range(32)]
        rest = [make_instance(study_uid=STUDY, rows=32, columns=32) for _ in range(12)]

        def body() -> Iterator[bytes]:
            delimiter = f"--{BOUNDARY}".encode()
            part, _ = multipart_body(first, BOUNDARY)
            # the first batch and the next part's delimiter (which ends the batch's last part)
            yield part[: -len(delimiter) - 4] + delimiter + b"\r\n"
            deadline = time.monotonic() + 60
            while indexed(server, STUDY) < len(first):
                assert time.monotonic() < deadline, "the first batch was not stored"
                time.sleep(0.2)
            own_seaweedfs.kill()  # the object store dies while the request goes on
            part, _ = multipart_body(rest, BOUNDARY)
            yield part[len(delimiter) + 2 :]

        content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
        response = requests.post(
            server.dicomweb + "/studies",
            data=body(),
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"}
            | server.headers,
            timeout=120,
        )
        assert response.status_code == 202, response.text
        answer = response.json()
        acknowledged = {i["00081155"]["Value"][0] for i in answer["00081199"]["Value"]}
        failed = answer["00081198"]["Value"]
        assert len(acknowledged) == len(first) and len(failed) == len(rest)
        assert {i["00081197"]["Value"][0] for i in failed} == {0xA700}
        assert "cannot store blob" in answer["00000902"]["Value"][0]

        down = stow(server, [make_instance(study_uid=STUDY)])
        assert down.status_code == 503  # nothing stored: try again later
        assert down.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA700]

        assoc = associate(int(server.env["KLINIKA_DIMSE_PORT"]), CTImageStorage)
        try:
            dataset = pydicom.dcmread(io.BytesIO(make_instance(study_uid=STUDY)))
            status = assoc.send_c_store(dataset)
            assert status.Status == 0xA700  # Out of Resources
        finally:
            assoc.release()

        ready = requests.get(server.url + "/health/ready", timeout=30)
        assert ready.status_code == 503 and ready.json()["storage"].startswith("error")
        assert indexed(server, STUDY) == len(first)  # nothing half-indexed
        page = requests.get(server.url + "/admin/system", headers=server.headers, timeout=30).text
        assert 'data-testid="health-storage">error: object storage' in page

        own_seaweedfs.start()  # the store comes back: everything acknowledged is whole
        assert requests.get(server.url + "/health/ready", timeout=30).status_code == 200
        check = klinika(server.data_dir, "fsck", env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert f"{len(first)} instance(s) checked: 0 missing, 0 corrupt" in check.stdout
    finally:
        server.stop()
