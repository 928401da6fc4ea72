"""Acknowledged means durable: kill -9 the server in the middle of STOW streams (blobs in
files and in S3)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from klinika.config import load_settings
from klinika.storage import open_blob_store
from tests.conftest import start_server
from tests.dicomweb.conftest import multipart_body
from tests.factories import make_instance


def slow_body(body: bytes, chunk: int = 16384) -> Iterator[bytes]:
    for start in range(0, len(body), chunk):
        time.sleep(0.002)
        yield body[start : start + chunk]


def test_sigkill_during_stow_keeps_every_acknowledged_instance(
    tmp_path: Path, blob_env: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, blob_env)
    headers = dict(getattr(server, "headers", {}))
    study = "1.2.826.0.1.3680043.99.1"
    acknowledged: dict[str, bytes] = {}
    stop = threading.Event()

    def send() -> None:
        n = 0
        while not stop.is_set():
            batch = {}
            for _ in range(4):
                n += 1
                sop = f"{study}.{n}"
                batch[sop] = make_instance(
                    study_uid=study, series_uid=study + ".0", sop_uid=sop, rows=64, columns=64
                )
            body, content_type = multipart_body(list(batch.values()))
            try:
                response = requests.post(
                    server.dicomweb + "/studies",
                    data=slow_body(body),
                    headers={"Content-Type": content_type, **headers},
                    timeout=30,
                )
            except requests.RequestException:
                return
            if response.status_code == 200:
                acknowledged.update(batch)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(3)
    server.stop(kill=True)  # SIGKILL mid-stream
    stop.set()
    sender.join(timeout=30)
    assert len(acknowledged) >= 8, "the server should have acknowledged some batches first"

    # Nothing half-written is indexed: every indexed blob exists and hashes to its key.
    with sqlite3.connect(data_dir / "index.sqlite") as db:
        rows = db.execute("SELECT sop_instance_uid, blob_key FROM instances").fetchall()
    blobs = open_blob_store(load_settings(env=blob_env, data_dir=data_dir))
    for _sop, key in rows:
        assert hashlib.sha256(blobs.read(key)).hexdigest() == key
    blobs.close()

    restarted = start_server(data_dir, blob_env)
    try:
        for sop, data in acknowledged.items():
            url = f"{restarted.dicomweb}/studies/{study}/series/{study}.0/instances/{sop}"
            response = requests.get(
                url,
                headers={
                    "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
                    **dict(getattr(restarted, "headers", {})),
                },
                timeout=10,
            )
            assert response.status_code == 200, sop
            assert data in response.content
        if not blob_env:  # files: what a killed write left behind is cleaned at start
            assert not list((data_dir / "blobs" / "tmp").iterdir()), "leftover temp files remain"
    finally:
        restarted.stop()
