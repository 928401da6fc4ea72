"""Checks shared by the kill -9 tests (STOW-RS and C-STORE, blobs in files or S3): acknowledged
means durable."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import requests

from klinika.config import load_settings
from klinika.storage import open_blob_store
from tests.conftest import LiveServer


def assert_index_refers_to_intact_blobs(
    data_dir: Path, blob_env: Mapping[str, str] | None = None
) -> None:
    """Nothing half-written is indexed: every indexed blob exists and hashes to its key
    (``blob_env``: the ``KLINIKA_*`` settings of the blob store; files when empty)."""
    with sqlite3.connect(data_dir / "index.sqlite") as db:
        rows = db.execute("SELECT sop_instance_uid, blob_key FROM instances").fetchall()
    blobs = open_blob_store(load_settings(env=dict(blob_env or {}), data_dir=data_dir))
    try:
        for sop, key in rows:
            assert hashlib.sha256(blobs.read(key)).hexdigest() == key, sop
    finally:
        blobs.close()


def assert_acknowledged_instances_read_back(
    server: LiveServer, study_uid: str, series_uid: str, acknowledged: Mapping[str, bytes]
) -> None:
    """Each acknowledged instance (SOP Instance UID -> bytes that must appear in what WADO-RS
    returns: the Part-10 file, or the data set for C-STORE) reads back from a restarted
    server, and (files) no temporary file is left behind."""
    for sop, expected in acknowledged.items():
        url = f"{server.dicomweb}/studies/{study_uid}/series/{series_uid}/instances/{sop}"
        response = requests.get(
            url,
            headers={
                "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
                **server.headers,
            },
            timeout=10,
        )
        assert response.status_code == 200, sop
        assert expected in response.content, sop
    leftovers = server.data_dir / "blobs" / "tmp"
    assert not leftovers.is_dir() or not list(leftovers.iterdir()), "leftover temp files"
