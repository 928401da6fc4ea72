"""``klinika db copy``: an SQLite installation moved to PostgreSQL, verified."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from klinika.config import load_settings
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from klinika.runtime import Runtime
from tests.conftest import SAMPLES, TEST_PASSWORD, create_users


def test_sqlite_archive_copied_to_postgresql_answers_the_same(
    tmp_path: Path, postgres_server: str
) -> None:
    import psycopg

    data = tmp_path / "data"
    create_users(data, {"keeper": "admin"})
    klinika = [sys.executable, "-m", "klinika", "--data-dir", str(data)]
    subprocess.run(
        [*klinika, "import", str(SAMPLES / "generated"), str(SAMPLES / "dcmqi")],
        check=True,
        capture_output=True,
    )
    with psycopg.connect(
        postgres_server.replace("+psycopg", "") + "/postgres", autocommit=True
    ) as connection:
        connection.execute('CREATE DATABASE "klinika_copy"')
    target = f"{postgres_server}/klinika_copy"
    result = subprocess.run([*klinika, "db", "copy", target], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stdout and "0 damaged" in result.stdout

    def everything(url: str) -> list[dict]:
        with Runtime(load_settings(env={}, data_dir=data, database_url=url)) as runtime:
            return [
                runtime.archive.search(Query(level, include="all")).matches
                for level in (Level.STUDY, Level.SERIES, Level.IMAGE)
            ]

    assert everything(target) == everything("")
    with Runtime(load_settings(env={}, data_dir=data, database_url=target)) as runtime:
        assert runtime.audit.verify().ok
        assert runtime.auth.login("keeper", TEST_PASSWORD, source="127.0.0.1").token
        outcome = runtime.archive.store(
            (SAMPLES / "generated" / "cyrillic_iso_ir_192_utf8.dcm").read_bytes()
        )
        assert outcome.status == "duplicate"  # sequences moved past the copied keys
    again = subprocess.run([*klinika, "db", "copy", target], capture_output=True, text=True)
    assert again.returncode != 0 and "not empty" in again.stderr
