"""Backup, verify, restore, fsck and ``klinika storage migrate`` on S3 (a real SeaweedFS)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from klinika.config import load_settings
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from klinika.runtime import Runtime
from klinika.storage import StoredBlob
from tests.backup.conftest import SAMPLE_DIRS, keep_audit_key, klinika, the_backup
from tests.conftest import add_user
from tests.factories import make_instance
from tests.objectstore import s3_env


def runtime_on(data_dir: Path, env: dict[str, str]) -> Runtime:
    return Runtime(load_settings(env=env, data_dir=data_dir))


def hashes_on(data_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """SOP Instance UID → SHA-256 of the bytes the archive serves for it."""
    with runtime_on(data_dir, env) as runtime:
        return {
            record.sop_instance_uid: hashlib.sha256(runtime.archive.read(record)).hexdigest()
            for match in runtime.archive.search(Query(Level.STUDY)).matches
            for record in runtime.archive.instances(match["0020000D"]["Value"][0])
        }


def files_only(env: dict[str, str]) -> dict[str, str]:
    """The same S3 settings, but the installation on files (the migration's source)."""
    return {k: v for k, v in env.items() if k != "KLINIKA_STORAGE"} | {"KLINIKA_STORAGE": "files"}


@pytest.fixture
def on_s3(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A data folder whose blobs are in a fresh S3 prefix, loaded with the samples."""
    env = s3_env(request)
    data = tmp_path / "data"
    add_user(data, "keeper", "admin")
    files = sorted(p for d in SAMPLE_DIRS for p in d.rglob("*.dcm"))
    with runtime_on(data, env) as runtime:
        outcomes = runtime.archive.store_many(p.read_bytes() for p in files)
    assert sum(o.status == "stored" for o in outcomes) > 10
    assert not any((data / "blobs").glob("??/??/*"))  # nothing went to the data folder
    return data, env


def test_migrate_moves_files_to_s3_and_back_verifying_every_checksum(
    loaded: Path, request: pytest.FixtureRequest
) -> None:
    env = s3_env(request)
    before = hashes_on(loaded, {})
    moved = klinika(loaded, "storage", "migrate", "--to", "s3", env=files_only(env))
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"{len(set(before.values()))} blob(s) copied" in moved.stdout
    assert "every checksum verified in s3" in moved.stdout
    assert hashes_on(loaded, env) == before
    assert klinika(loaded, "fsck", env=env).returncode == 0
    again = klinika(loaded, "storage", "migrate", "--to", "s3", env=files_only(env))
    assert again.returncode == 0 and "0 blob(s) copied" in again.stdout  # resumable

    shutil.rmtree(loaded / "blobs")  # the folder is gone: S3 holds the only copy
    back = klinika(loaded, "storage", "migrate", "--to", "files", env=env)
    assert back.returncode == 0, back.stdout + back.stderr
    assert hashes_on(loaded, {}) == before
    assert klinika(loaded, "fsck").returncode == 0


def test_migrate_refuses_the_backend_it_is_on(loaded: Path) -> None:
    result = klinika(loaded, "storage", "migrate", "--to", "files")
    assert result.returncode != 0 and "already" in result.stderr


def test_backup_and_restore_from_s3_to_a_new_s3_prefix(
    on_s3: tuple[Path, dict[str, str]], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data, env = on_s3
    before = hashes_on(data, env)
    made = klinika(data, "backup", str(tmp_path / "backups"), env=env)
    assert made.returncode == 0, made.stderr
    backup = the_backup(tmp_path / "backups")
    assert klinika(data, "backup", "verify", str(backup)).returncode == 0

    elsewhere = s3_env(request)
    restored = tmp_path / "restored"
    keep_audit_key(data, restored)
    result = klinika(restored, "restore", str(backup), env=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fsck clean" in result.stdout
    assert hashes_on(restored, elsewhere) == before
    keep_audit_key(data, tmp_path / "other")
    refused = klinika(tmp_path / "other", "restore", str(backup), env=elsewhere)
    assert refused.returncode != 0 and "not empty" in refused.stderr  # the bucket holds blobs


def test_fsck_on_s3_finds_missing_corrupt_and_orphan_objects(
    on_s3: tuple[Path, dict[str, str]],
) -> None:
    data, env = on_s3
    with runtime_on(data, env) as runtime:
        first, second = sorted(runtime.blobs.blob_keys())[:2]
        runtime.blobs.delete(first)
        runtime.blobs.put_stored(second, StoredBlob(b"not what it was", compressed=False))
        orphan = runtime.blobs.put(make_instance(study_uid="1.2.826.0.1.4242")).key
    found = klinika(data, "fsck", env=env)
    assert found.returncode == 1
    assert "1 missing, 1 corrupt, 1 orphan(s)" in found.stdout
    assert f"orphans: {orphan}" in found.stdout
    repaired = klinika(data, "fsck", "--repair", env=env)
    assert f"re-indexed orphan {orphan}" in repaired.stdout
