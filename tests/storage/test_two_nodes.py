"""Two stateless ``klinika serve`` nodes on one PostgreSQL index and one S3 bucket: what one
node stores, the other serves at once (QIDO, series metadata, frames), caches included.

(Loopback processes; tests/deploy/test_cluster.py runs the nodes in network namespaces behind
nginx.)
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pydicom
import pytest
import requests
from pydicom.uid import CTImageStorage

from tests.conftest import TEST_PASSWORD, LiveServer, start_server
from tests.dicomweb.conftest import stow
from tests.dimse.conftest import associate
from tests.factories import make_instance
from tests.objectstore import s3_env

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.991", "1.2.826.0.1.3680043.8.498.991.1"


@pytest.fixture
def shared_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """One PostgreSQL database, one S3 prefix and one JWT secret for every node."""
    server = request.getfixturevalue("postgres_server")
    name = f"klinika_nodes_{os.getpid()}"
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain + "/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    env = s3_env(request) | {
        "KLINIKA_DATABASE_URL": f"{server}/{name}",
        "KLINIKA_JWT_SECRET": "one-secret-shared-by-every-node-0123456789",
    }
    subprocess.run(
        [
            *(sys.executable, "-m", "klinika", "--data-dir", str(tmp_path / "setup")),
            *("user", "add", "tester", "--role", "admin", "--password", TEST_PASSWORD),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    return env


def series_metadata(node: LiveServer) -> list[dict]:
    response = requests.get(
        f"{node.dicomweb}/studies/{STUDY}/series/{SERIES}/metadata",
        headers=node.headers,
        timeout=30,
    )
    response.raise_for_status()
    return list(response.json())


def frame(node: LiveServer, sop_uid: str, number: int) -> bytes:
    response = requests.get(
        f"{node.dicomweb}/studies/{STUDY}/series/{SERIES}/instances/{sop_uid}/frames/{number}",
        headers=node.headers | {"Accept": 'multipart/related; type="application/octet-stream"'},
        timeout=30,
    )
    response.raise_for_status()
    return response.content


@pytest.mark.slow
def test_what_node_a_stores_node_b_serves_at_once(
    shared_env: dict[str, str], tmp_path: Path
) -> None:
    node_a = start_server(tmp_path / "a", shared_env)
    node_b = start_server(tmp_path / "b", shared_env)
    try:
        sent = [
            make_instance(study_uid=STUDY, series_uid=SERIES, rows=16, columns=16, frames=3)
            for _ in range(3)
        ]
        assert stow(node_a, sent).status_code == 200
        assert len(series_metadata(node_b)) == 3  # node B's cache now holds the series
        dataset = pydicom.dcmread(io.BytesIO(sent[0]))
        second = dataset.PixelData[16 * 16 * 2 : 16 * 16 * 4]
        assert second in frame(node_b, dataset.SOPInstanceUID, 2)  # a ranged GET on S3

        assert stow(node_a, [make_instance(study_uid=STUDY, series_uid=SERIES)]).status_code == 200
        assert len(series_metadata(node_b)) == 4  # B's cached document followed A's write

        assoc = associate(int(node_b.env["KLINIKA_DIMSE_PORT"]), CTImageStorage)
        try:
            one_more = pydicom.dcmread(
                io.BytesIO(make_instance(study_uid=STUDY, series_uid=SERIES))
            )
            assert assoc.send_c_store(one_more).Status == 0x0000
        finally:
            assoc.release()
        assert len(series_metadata(node_a)) == 5
        assert not list((tmp_path / "a" / "blobs").glob("??/??/*"))  # no node keeps blobs
        assert not list((tmp_path / "b" / "blobs").glob("??/??/*"))
    finally:
        node_a.stop()
        node_b.stop()
