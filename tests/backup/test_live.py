"""Backups of a running server: on its own schedule, and while STOW-RS and C-STORE write."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import requests

from klinika.audit import AuditFilter
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from tests.backup.conftest import keep_audit_key, klinika, runtime_of, the_backup
from tests.conftest import start_server, wait_until
from tests.dicomweb.conftest import multipart_body
from tests.factories import make_instance

STOW_STUDY, CSTORE_STUDY = "1.2.826.0.1.99.5", "1.2.826.0.1.99.6"


def test_serve_backs_up_on_schedule_and_prunes(tmp_path: Path) -> None:
    destination = tmp_path / "scheduled"
    server = start_server(
        tmp_path / "data",
        {"KLINIKA_BACKUP_DIR": str(destination), "KLINIKA_BACKUP_INTERVAL_MINUTES": "0.01"},
    )
    seen: set[str] = set()

    def two_backups_seen() -> bool:
        seen.update(p.parent.name for p in destination.glob("2*/manifest.json"))
        return len(seen) >= 2

    try:
        wait_until(two_backups_seen, 60, message="no two scheduled backups")
    finally:
        server.stop()
    # all taken today: the daily rule keeps only the newest
    assert len(list(destination.glob("2*/manifest.json"))) == 1
    with runtime_of(tmp_path / "data") as runtime:
        actions = [e.action for e in runtime.audit.search(AuditFilter(), limit=100)[0]]
    assert "backup:create" in actions and "backup:prune" in actions


def test_backup_while_stow_and_c_store_run_is_consistent(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    acknowledged: list[str] = []
    stop = threading.Event()

    def stow_loop() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sop = f"{STOW_STUDY}.{n}"
            body, content_type = multipart_body(
                [make_instance(study_uid=STOW_STUDY, sop_uid=sop, rows=64, columns=64)]
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
            (folder / f"{n}.dcm").write_bytes(make_instance(study_uid=CSTORE_STUDY))
        subprocess.run(
            ["storescu", "-aec", "KLINIKA", "127.0.0.1", server.env["KLINIKA_DIMSE_PORT"]]
            + [str(p) for p in sorted(folder.iterdir())],
            env={**os.environ, "TCP_NODELAY": "1"},
            capture_output=True,
            timeout=120,
        )

    threads = [threading.Thread(target=stow_loop), threading.Thread(target=cstore_loop)]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: len(acknowledged) >= 2, 60, message="STOW acknowledged nothing")
        before_backup = list(acknowledged)  # acknowledged = durable before the backup began
        made = klinika(server.data_dir, "backup", str(tmp_path / "backups"))
        assert made.returncode == 0, made.stderr
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        stop.set()
        server.stop()
    assert len(acknowledged) > len(before_backup), "STOW did not run during the backup"
    restored = tmp_path / "restored"
    keep_audit_key(server.data_dir, restored)
    result = klinika(restored, "restore", str(the_backup(tmp_path / "backups")))
    assert result.returncode == 0 and "fsck clean" in result.stdout, result.stdout + result.stderr
    with runtime_of(restored) as runtime:
        held = {
            m["00080018"]["Value"][0]
            for m in runtime.archive.search(
                Query(Level.IMAGE, match={"StudyInstanceUID": STOW_STUDY})
            ).matches
        }
    assert before_backup and set(before_backup) <= held
