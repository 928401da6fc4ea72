"""Acknowledged means durable: kill -9 the server in the middle of STOW streams (blobs in
files and in S3)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.conftest import start_server, wait_until
from tests.dicomweb.conftest import multipart_body
from tests.durability import (
    assert_acknowledged_instances_read_back,
    assert_index_refers_to_intact_blobs,
)
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
    wait_until(lambda: len(acknowledged) >= 8, 60, message="no 8 acknowledged instances")
    server.stop(kill=True)  # SIGKILL mid-stream, with more batches on the way
    stop.set()
    sender.join(timeout=30)
    assert len(acknowledged) >= 8, "the server should have acknowledged some batches first"

    assert_index_refers_to_intact_blobs(data_dir, blob_env)
    restarted = start_server(data_dir, blob_env)
    try:
        assert_acknowledged_instances_read_back(restarted, study, study + ".0", acknowledged)
    finally:
        restarted.stop()
