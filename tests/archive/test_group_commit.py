"""Concurrent stores share index transactions (group commit): every caller's instances are
committed before it returns, and one caller's duplicate does not disturb the others."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from klinika.archive import StoreOutcome
from klinika.config import load_settings
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from klinika.runtime import Runtime
from tests.factories import make_instance


def test_concurrent_stores_are_all_committed_and_counted(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data")
    study, series = generate_uid(), generate_uid()
    shared_sop = generate_uid()  # sent by every thread: stored once, duplicate for the rest
    per_thread = 6
    threads = 6
    batches = [
        [make_instance(study_uid=study, series_uid=series) for _ in range(per_thread)]
        + [make_instance(study_uid=study, series_uid=series, sop_uid=shared_sop)]
        for _ in range(threads)
    ]
    results: dict[int, list[StoreOutcome]] = {}
    with Runtime(settings) as runtime:
        start = threading.Barrier(threads)

        def send(k: int) -> None:
            start.wait()
            results[k] = [runtime.archive.store(data) for data in batches[k]]
            # back from store: this caller's instances are in the index already
            for data, outcome in zip(batches[k], results[k], strict=True):
                uid = pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
                assert runtime.archive.instances(study, series, str(uid)), outcome

        workers = [threading.Thread(target=send, args=(k,)) for k in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        statuses = [o.status for k in range(threads) for o in results[k]]
        assert statuses.count("stored") == threads * per_thread + 1
        assert statuses.count("duplicate") == threads - 1
        records = runtime.archive.instances(study)
        assert len(records) == threads * per_thread + 1
        assert len({r.sop_instance_uid for r in records}) == len(records)
        assert all(runtime.blobs.exists(r.blob_key) for r in records)
    with Runtime(settings) as reopened:  # durable: a fresh process sees every instance
        assert len(reopened.archive.instances(study)) == threads * per_thread + 1
        (series_match,) = reopened.archive.search(
            Query(Level.SERIES, match={"SeriesInstanceUID": series})
        ).matches
        assert series_match["00201209"]["Value"] == [threads * per_thread + 1]
