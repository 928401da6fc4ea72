"""Backup, restore and fsck with the real command line on real data folders."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from klinika.audit import AuditFilter
from klinika.config import load_settings
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from klinika.runtime import Runtime
from tests.conftest import SAMPLES, TEST_PASSWORD, add_user
from tests.factories import make_instance

SAMPLE_DIRS = [SAMPLES / "generated", SAMPLES / "dcmqi" / "ct-3slice", SAMPLES / "highdicom"]


def klinika(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "klinika", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def answers(data_dir: Path) -> dict[str, list[dict]]:
    with Runtime(load_settings(env={}, data_dir=data_dir)) as runtime:
        return {
            level.name: runtime.archive.search(Query(level, include="all")).matches
            for level in (Level.STUDY, Level.SERIES, Level.IMAGE)
        }


def blob_hashes(data_dir: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (data_dir / "blobs").glob("??/??/*")
    }


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    add_user(data, "keeper", "admin")
    result = klinika(data, "import", *map(str, SAMPLE_DIRS))
    assert result.returncode == 0, result.stderr
    return data


def test_backup_wipe_restore_gives_back_the_same_archive(loaded: Path, tmp_path: Path) -> None:
    before_answers, before_blobs = answers(loaded), blob_hashes(loaded)
    made = klinika(loaded, "backup", str(tmp_path / "backups"))
    assert made.returncode == 0, made.stderr
    (backup,) = [p for p in (tmp_path / "backups").iterdir() if p.name != "blobs"]
    assert klinika(loaded, "backup", "verify", str(backup)).returncode == 0

    restored = tmp_path / "restored"
    result = klinika(restored, "restore", str(backup))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fsck clean" in result.stdout
    assert blob_hashes(restored) == before_blobs
    assert answers(restored) == before_answers
    with Runtime(load_settings(env={}, data_dir=restored)) as runtime:
        assert runtime.auth.login("keeper", TEST_PASSWORD, source="127.0.0.1").token
        assert runtime.audit.verify().ok
        actions = [e.action for e in runtime.audit.search(AuditFilter(), limit=50)[0]]
        assert "backup:restore" in actions


def test_restore_refuses_a_non_empty_folder(loaded: Path, tmp_path: Path) -> None:
    klinika(loaded, "backup", str(tmp_path / "backups"))
    (backup,) = [p for p in (tmp_path / "backups").iterdir() if p.name != "blobs"]
    result = klinika(loaded, "restore", str(backup))
    assert result.returncode != 0 and "not empty" in result.stderr


def test_second_backup_copies_only_the_new_study(loaded: Path, tmp_path: Path) -> None:
    destination = tmp_path / "backups"
    klinika(loaded, "backup", str(destination))
    new_study = tmp_path / "new"
    new_study.mkdir()
    for n in range(3):
        (new_study / f"{n}.dcm").write_bytes(make_instance(study_uid="1.2.826.0.1.77"))
    klinika(loaded, "import", str(new_study))
    second = klinika(loaded, "backup", str(destination))
    assert "(3 copied" in second.stdout, second.stdout
    full = klinika(loaded, "backup", str(destination), "--full")
    manifests = sorted(destination.glob("*/manifest.json"))
    last = json.loads(manifests[-1].read_text())
    assert last["full"] and last["copied_blobs"] == len(last["blobs"]), full.stdout


def test_verify_finds_a_flipped_byte_in_a_backed_up_blob(loaded: Path, tmp_path: Path) -> None:
    klinika(loaded, "backup", str(tmp_path / "backups"))
    (backup,) = [p for p in (tmp_path / "backups").iterdir() if p.name != "blobs"]
    victim = next((tmp_path / "backups" / "blobs").glob("??/??/*"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = klinika(loaded, "backup", "verify", str(backup))
    assert result.returncode == 1 and "damaged" in result.stderr


def test_fsck_finds_an_orphan_a_missing_blob_and_a_flipped_byte(
    loaded: Path, tmp_path: Path
) -> None:
    assert klinika(loaded, "fsck").stdout.strip().endswith("clean")
    blobs = sorted((loaded / "blobs").glob("??/??/*"))
    blobs[0].unlink()  # missing
    corrupted = bytearray(blobs[1].read_bytes())
    corrupted[-1] ^= 0x01
    blobs[1].write_bytes(bytes(corrupted))  # corrupt
    orphan = make_instance(study_uid="1.2.826.0.1.88")
    key = hashlib.sha256(orphan).hexdigest()
    (loaded / "blobs" / key[:2] / key[2:4]).mkdir(parents=True, exist_ok=True)
    (loaded / "blobs" / key[:2] / key[2:4] / key).write_bytes(orphan)  # as a crash leaves it
    result = klinika(loaded, "fsck")
    assert result.returncode == 1
    assert "missing:" in result.stdout and "corrupt:" in result.stdout
    assert f"orphans: {key}" in result.stdout
    repaired = klinika(loaded, "fsck", "--repair")
    assert "re-indexed orphan" in repaired.stdout
    with Runtime(load_settings(env={}, data_dir=loaded)) as runtime:
        found = runtime.archive.search(
            Query(Level.STUDY, match={"StudyInstanceUID": "1.2.826.0.1.88"})
        )
        assert len(found.matches) == 1


def test_retention_keeps_daily_weekly_monthly_and_the_blobs_they_need(tmp_path: Path) -> None:
    import datetime as dt

    from klinika.backup.retention import Retention, backups_in, prune

    destination = tmp_path / "backups"
    start = dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)
    for day in range(90):  # one backup a day for 90 days, each with one blob of its own
        when = start + dt.timedelta(days=day)
        folder = destination / when.strftime("%Y%m%dT%H%M%S%fZ")
        folder.mkdir(parents=True)
        key = hashlib.sha256(str(day).encode()).hexdigest()
        blob = destination / "blobs" / key[:2] / key[2:4] / key
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(str(day).encode())
        manifest = {
            "version": "t",
            "created": folder.name,
            "full": False,
            "index_sha256": "",
            "blobs": [[key, 1]],
            "counts": {},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))
    deleted, blobs = prune(destination, Retention(daily=7, weekly=4, monthly=3))
    kept = backups_in(destination)
    days = sorted(b.name[:8] for b in kept)
    assert days[-7:] == [f"202603{d:02d}" for d in range(25, 32)]  # the last 7 days
    assert "20260131" in days and "20260228" in days  # month ends kept as monthly
    assert len(kept) == 90 - len(deleted) and blobs == len(deleted)
    for backup in kept:
        key = json.loads((backup / "manifest.json").read_text())["blobs"][0][0]
        assert (destination / "blobs" / key[:2] / key[2:4] / key).exists()


def test_serve_backs_up_on_schedule(tmp_path: Path) -> None:
    import time

    from tests.conftest import start_server

    destination = tmp_path / "scheduled"
    server = start_server(
        tmp_path / "data",
        {"KLINIKA_BACKUP_DIR": str(destination), "KLINIKA_BACKUP_INTERVAL_MINUTES": "0.02"},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(destination.glob("*/manifest.json")):
            time.sleep(0.3)
        manifests = list(destination.glob("*/manifest.json"))
        assert manifests, "no scheduled backup within 30 s"
    finally:
        server.stop()


def test_backup_while_stow_and_c_store_run_is_consistent(tmp_path: Path) -> None:
    import os
    import threading

    import requests

    from tests.conftest import start_server
    from tests.dicomweb.conftest import multipart_body

    server = start_server(tmp_path / "data")
    acknowledged: list[str] = []
    stop = threading.Event()

    def stow_loop() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sop = f"1.2.826.0.1.99.5.{n}"
            body, content_type = multipart_body(
                [make_instance(study_uid="1.2.826.0.1.99.5", sop_uid=sop, rows=64, columns=64)]
            )
            response = requests.post(
                server.dicomweb + "/studies",
                data=body,
                timeout=30,
                headers={"Content-Type": content_type, **server.headers},
            )
            if response.status_code == 200:
                acknowledged.append(sop)

    def cstore_loop() -> None:
        folder = tmp_path / "cstore"
        folder.mkdir()
        for n in range(40):
            (folder / f"{n}.dcm").write_bytes(make_instance(study_uid="1.2.826.0.1.99.6"))
        subprocess.run(
            [
                "storescu",
                "-aec",
                "KLINIKA",
                "127.0.0.1",
                server.env["KLINIKA_DIMSE_PORT"],
                *map(str, sorted(folder.iterdir())),
            ],
            env={**os.environ, "TCP_NODELAY": "1"},
            capture_output=True,
            timeout=120,
        )

    threads = [threading.Thread(target=stow_loop), threading.Thread(target=cstore_loop)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        before_backup = list(acknowledged)
        made = klinika(server.data_dir, "backup", str(tmp_path / "backups"))
        assert made.returncode == 0, made.stderr
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        stop.set()
        server.stop()
    (backup,) = [p for p in (tmp_path / "backups").iterdir() if p.name != "blobs"]
    restored = tmp_path / "restored"
    result = klinika(restored, "restore", str(backup))
    assert result.returncode == 0 and "fsck clean" in result.stdout, result.stdout + result.stderr
    with Runtime(load_settings(env={}, data_dir=restored)) as runtime:
        held = {
            m["00080018"]["Value"][0]
            for m in runtime.archive.search(
                Query(Level.IMAGE, match={"StudyInstanceUID": "1.2.826.0.1.99.5"})
            ).matches
        }
    assert before_backup and set(before_backup) <= held
