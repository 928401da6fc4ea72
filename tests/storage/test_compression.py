"""Storage compression (zstd): invisible to every reader, original bytes always come back."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import requests

from klinika.config import load_settings
from klinika.runtime import Runtime
from klinika.storage import FileStore
from tests.conftest import SAMPLES, start_server
from tests.dicomweb.conftest import good_samples, stow
from tests.factories import make_instance


def test_compressed_blobs_read_back_as_the_original_bytes(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "blobs", compress=True)
    data = make_instance(rows=128, columns=128)
    ref = store.put(data)
    assert ref.key == hashlib.sha256(data).hexdigest() and ref.size == len(data)
    assert store.stored_path(ref.key).name.endswith(".zst")
    assert store.stored_path(ref.key).stat().st_size < len(data)
    assert store.read(ref.key) == data
    assert store.read_ranges(ref.key, ((10, 20), (200, 5))) == data[10:30] + data[200:205]
    assert list(store.blob_keys()) == [ref.key] and store.exists(ref.key)
    store.delete(ref.key)
    assert not store.exists(ref.key)


def test_existing_blobs_are_compressed_in_place(tmp_path: Path) -> None:
    plain = FileStore(tmp_path / "blobs")
    data = make_instance(rows=128, columns=128)
    ref = plain.put(data)
    assert plain.compress_existing(ref.key) > 0
    assert plain.stored_path(ref.key).name.endswith(".zst") and plain.read(ref.key) == data
    assert plain.compress_existing(ref.key) == 0


def test_a_compressed_archive_serves_identical_bytes_frames_and_retrieves(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", {"KLINIKA_COMPRESS_STORAGE": "true"})
    try:
        sent = {uid: p for uid, p in good_samples().items() if p.is_relative_to(SAMPLES)}
        response = stow(server, [p.read_bytes() for p in sent.values()])
        assert response.status_code in (200, 202)
        stored = list((server.data_dir / "blobs").glob("??/??/*"))
        assert stored and all(p.name.endswith(".zst") for p in stored)
        assert sum(p.stat().st_size for p in stored) < sum(p.stat().st_size for p in sent.values())
        accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
        for uid, path in list(sent.items())[:25]:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            url = (
                f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/"
                f"{ds.SeriesInstanceUID}/instances/{uid}"
            )
            body = requests.get(url, headers={"Accept": accept, **server.headers}, timeout=30)
            assert path.read_bytes() in body.content, path.name
        ct = SAMPLES / "dcmqi" / "ct-3slice" / "01.dcm"
        ds = pydicom.dcmread(ct)
        frame = requests.get(
            f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/frames/1",
            headers={
                "Accept": "multipart/related; type=application/octet-stream",
                **server.headers,
            },
            timeout=30,
        )
        payload = frame.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
        pixels = np.frombuffer(payload, dtype=ds.pixel_array.dtype).reshape(ds.pixel_array.shape)
        assert np.array_equal(pixels, ds.pixel_array)
        out = tmp_path / "get"
        out.mkdir()
        subprocess.run(
            [
                "getscu",
                "-aec",
                "KLINIKA",
                "-S",
                "-od",
                str(out),
                "-k",
                "QueryRetrieveLevel=SERIES",
                "-k",
                f"StudyInstanceUID={ds.StudyInstanceUID}",
                "-k",
                f"SeriesInstanceUID={ds.SeriesInstanceUID}",
                "127.0.0.1",
                server.env["KLINIKA_DIMSE_PORT"],
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        received = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in out.iterdir()}
        assert np.array_equal(received[ds.SOPInstanceUID].pixel_array, ds.pixel_array)
    finally:
        server.stop()


def test_klinika_compress_migrates_an_archive_and_fsck_stays_clean(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = [sys.executable, "-m", "klinika", "--data-dir", str(data)]
    subprocess.run([*run, "import", str(SAMPLES / "dcmqi")], check=True, capture_output=True)
    with Runtime(load_settings(env={}, data_dir=data)) as runtime:
        before = {key: runtime.blobs.read(key) for key in runtime.blobs.blob_keys()}
    result = subprocess.run([*run, "compress"], capture_output=True, text=True, check=True)
    assert "MB saved" in result.stdout
    assert all(p.name.endswith(".zst") for p in (data / "blobs").glob("??/??/*"))
    with Runtime(load_settings(env={}, data_dir=data)) as runtime:
        assert {key: runtime.blobs.read(key) for key in runtime.blobs.blob_keys()} == before
        record = runtime.archive.instances(
            str(pydicom.dcmread(io.BytesIO(next(iter(before.values())))).StudyInstanceUID)
        )[0]
        assert runtime.archive.read(record) in before.values()
    fsck = subprocess.run([*run, "fsck"], capture_output=True, text=True)
    assert fsck.stdout.strip().endswith("clean"), fsck.stdout
