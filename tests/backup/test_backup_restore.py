"""Backup, verify and restore with the real command line on real data folders."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from klinika.audit import AuditFilter
from klinika.backup.manifest import in_parallel
from tests.backup.conftest import (
    answers,
    ingest_samples,
    instance_hashes,
    keep_audit_key,
    klinika,
    runtime_of,
    the_backup,
)
from tests.conftest import TEST_PASSWORD
from tests.factories import make_instance


def blob_files(root: Path) -> set[Path]:
    return {p for p in root.glob("??/??/*") if p.is_file()}


def test_backup_wipe_restore_gives_back_the_same_archive(loaded: Path, tmp_path: Path) -> None:
    before_answers, before_bytes = answers(loaded), instance_hashes(loaded)
    made = klinika(loaded, "backup", str(tmp_path / "backups"))
    assert made.returncode == 0, made.stderr
    backup = the_backup(tmp_path / "backups")
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["counts"]["instances"] == len(before_bytes)
    assert manifest["counts"]["users"] == 1 and manifest["audit_head"][0] > 0
    assert klinika(loaded, "backup", "verify", str(backup)).returncode == 0

    restored = tmp_path / "restored"
    keep_audit_key(loaded, restored)
    result = klinika(restored, "restore", str(backup))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fsck clean" in result.stdout and "audit chain verifies" in result.stdout
    assert instance_hashes(restored) == before_bytes
    assert answers(restored) == before_answers
    with runtime_of(restored) as runtime:
        assert runtime.auth.login("keeper", TEST_PASSWORD, source="127.0.0.1").token
        assert runtime.audit.verify().ok
        actions = [e.action for e in runtime.audit.search(AuditFilter(), limit=50)[0]]
        assert "backup:restore" in actions and "user:create" in " ".join(actions)


def test_a_restore_without_the_audit_key_says_which_key_is_missing(
    loaded: Path, tmp_path: Path
) -> None:
    assert klinika(loaded, "backup", str(tmp_path / "backups")).returncode == 0
    restored = tmp_path / "restored"
    result = klinika(restored, "restore", str(the_backup(tmp_path / "backups")))
    assert result.returncode == 1 and "audit chain BROKEN" in result.stdout
    failed = klinika(restored, "audit", "verify")
    assert failed.returncode == 1 and "does not hold" in failed.stdout, failed.stdout
    old_key = (loaded / "secrets" / "audit.key").read_text()
    key_file = restored / "secrets" / "audit.key"
    key_file.write_text(key_file.read_text() + old_key)  # the old key as a further line
    verified = klinika(restored, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout


def test_restore_refuses_an_installation_that_holds_data(loaded: Path, tmp_path: Path) -> None:
    klinika(loaded, "backup", str(tmp_path / "backups"))
    result = klinika(loaded, "restore", str(the_backup(tmp_path / "backups")))
    assert result.returncode != 0 and "not empty" in result.stderr


def test_second_backup_copies_only_the_new_study(loaded: Path, tmp_path: Path) -> None:
    destination = tmp_path / "backups"
    assert klinika(loaded, "backup", str(destination)).returncode == 0
    before = blob_files(destination / "blobs")
    new_study = tmp_path / "new"
    new_study.mkdir()
    for n in range(3):
        (new_study / f"{n}.dcm").write_bytes(make_instance(study_uid="1.2.826.0.1.77"))
    assert klinika(loaded, "import", str(new_study)).returncode == 0
    second = klinika(loaded, "backup", str(destination))
    assert "(3 copied" in second.stdout, second.stdout
    assert len(blob_files(destination / "blobs") - before) == 3

    full = klinika(loaded, "backup", str(destination), "--full")
    last = json.loads(sorted(destination.glob("2*/manifest.json"))[-1].read_text())
    assert last["full"] and last["copied_blobs"] == len(last["blobs"]), full.stdout
    assert not list(destination.glob(".partial-*"))


def test_verify_finds_a_flipped_byte_and_a_missing_blob(loaded: Path, tmp_path: Path) -> None:
    klinika(loaded, "backup", str(tmp_path / "backups"))
    backup = the_backup(tmp_path / "backups")
    first, second = sorted(blob_files(tmp_path / "backups" / "blobs"))[:2]
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.write_bytes(bytes(data))
    second.unlink()
    result = klinika(loaded, "backup", "verify", str(backup))
    assert result.returncode == 1
    assert f"blob {first.name} is damaged" in result.stderr
    assert f"blob {second.name} is missing" in result.stderr
    refused = klinika(tmp_path / "elsewhere", "restore", str(backup))
    assert refused.returncode != 0 and "not whole" in refused.stderr


def test_compressed_archive_backs_up_and_restores_byte_identical(
    loaded: Path, tmp_path: Path
) -> None:
    before = instance_hashes(loaded)
    assert klinika(loaded, "compress").returncode == 0
    assert klinika(loaded, "backup", str(tmp_path / "backups")).returncode == 0
    assert all(p.suffix == ".zst" for p in blob_files(tmp_path / "backups" / "blobs"))
    backup = the_backup(tmp_path / "backups")
    assert klinika(loaded, "backup", "verify", str(backup)).returncode == 0
    keep_audit_key(loaded, tmp_path / "restored")
    result = klinika(tmp_path / "restored", "restore", str(backup))
    assert result.returncode == 0, result.stdout + result.stderr
    assert instance_hashes(tmp_path / "restored") == before


def test_postgresql_index_is_dumped_and_restored(postgres_database: str, tmp_path: Path) -> None:
    import psycopg

    source = {"KLINIKA_DATABASE_URL": postgres_database}
    data = tmp_path / "data"
    assert ingest_samples(data, postgres_database) > 10
    with runtime_of(data, postgres_database) as runtime:
        runtime.auth.create_user("keeper", "admin", TEST_PASSWORD)
    before_answers = answers(data, postgres_database)
    made = klinika(data, "backup", str(tmp_path / "backups"), env=source)
    assert made.returncode == 0, made.stderr
    backup = the_backup(tmp_path / "backups")
    assert (backup / "index.pgdump").exists()
    assert json.loads((backup / "manifest.json").read_text())["dialect"] == "postgresql"

    target_url = postgres_database + "_restored"
    server, name = target_url.rsplit("/", 1)
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain + "/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    target = {"KLINIKA_DATABASE_URL": target_url}
    restored = tmp_path / "restored"
    keep_audit_key(data, restored)
    result = klinika(restored, "restore", str(backup), env=target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert answers(restored, target_url) == before_answers
    with runtime_of(restored, target_url) as runtime:
        assert runtime.auth.login("keeper", TEST_PASSWORD, source="127.0.0.1").token
        assert runtime.audit.verify().ok


def test_sqlite_backup_restores_into_postgresql(
    loaded: Path, postgres_database: str, tmp_path: Path
) -> None:
    before = answers(loaded)
    assert klinika(loaded, "backup", str(tmp_path / "backups")).returncode == 0
    restored = tmp_path / "restored"
    keep_audit_key(loaded, restored)
    result = klinika(
        restored,
        "restore",
        str(the_backup(tmp_path / "backups")),
        env={"KLINIKA_DATABASE_URL": postgres_database},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert answers(restored, postgres_database) == before


def test_blob_work_runs_in_parallel_in_order_and_raises_at_its_item() -> None:
    """Copies, checks and restores go through ``in_parallel``: results come back in the
    manifest's order although threads finish out of order, and an error stops at its item."""
    threads: set[str] = set()

    def work(n: int) -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.002 * (n % 3))
        if n == 150:
            raise OSError("disk gone")
        return n * n

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for n, square in in_parallel(range(200), work):
            assert square == n * n
            seen.append(n)
    assert seen == list(range(150))
    assert len(threads) > 1
