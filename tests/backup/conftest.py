"""Shared pieces of the backup suite: the CLI as a subprocess, a loaded installation, and
the views of an archive a restore must give back unchanged."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from klinika.config import load_settings
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from klinika.runtime import Runtime
from tests.conftest import SAMPLES, create_users

SAMPLE_DIRS = [SAMPLES / "generated", SAMPLES / "dcmqi", SAMPLES / "highdicom"]
_databases = itertools.count(1)


def klinika(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m klinika --data-dir DATA ARGS`` (``env`` adds KLINIKA_* variables)."""
    return subprocess.run(
        [sys.executable, "-m", "klinika", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def keep_audit_key(source: Path, target: Path) -> None:
    """What docs/operations.md asks: the audit key is kept apart from the backups and put
    into the new data folder before a restore."""
    (target / "secrets").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "secrets" / "audit.key", target / "secrets" / "audit.key")


def runtime_of(data_dir: Path, database_url: str = "") -> Runtime:
    return Runtime(load_settings(env={}, data_dir=data_dir, database_url=database_url or None))


def answers(data_dir: Path, database_url: str = "") -> dict[str, list[dict]]:
    """QIDO answers at every level, as the one query engine gives them."""
    with runtime_of(data_dir, database_url) as runtime:
        return {
            level.name: runtime.archive.search(Query(level, include="all")).matches
            for level in (Level.STUDY, Level.SERIES, Level.IMAGE)
        }


def instance_hashes(data_dir: Path, database_url: str = "") -> dict[str, str]:
    """SOP Instance UID → SHA-256 of the bytes the archive serves for it."""
    with runtime_of(data_dir, database_url) as runtime:
        return {
            record.sop_instance_uid: hashlib.sha256(runtime.archive.read(record)).hexdigest()
            for match in runtime.archive.search(Query(Level.STUDY)).matches
            for record in runtime.archive.instances(match["0020000D"]["Value"][0])
        }


def the_backup(destination: Path) -> Path:
    """The single backup folder in a destination."""
    (backup,) = [p for p in destination.iterdir() if (p / "manifest.json").exists()]
    return backup


def ingest_samples(data_dir: Path, database_url: str = "") -> int:
    """Store every sample file through ``Archive.store_many``; returns how many were stored."""
    files = sorted(p for d in SAMPLE_DIRS for p in d.rglob("*.dcm"))
    with runtime_of(data_dir, database_url) as runtime:
        outcomes = runtime.archive.store_many(p.read_bytes() for p in files)
    return sum(o.status == "stored" for o in outcomes)


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    """A data folder with the samples and an admin ``keeper``."""
    data = tmp_path / "data"
    create_users(data, {"keeper": "admin"})
    assert ingest_samples(data) > 10
    return data


@pytest.fixture
def postgres_database(request: pytest.FixtureRequest) -> str:
    """A fresh, empty PostgreSQL database (skips when no server binaries are installed)."""
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"klinika_backup_{os.getpid()}_{next(_databases)}"
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain + "/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
