"""The archive suite runs on every index (SQLite, PostgreSQL) and every blob store (files, S3);
the tests of the HTTP edge use the installations of the auth tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from klinika.archive import Archive
from klinika.config import load_settings
from klinika.runtime import Runtime
from tests.auth.conftest import install, site  # noqa: F401


@pytest.fixture
def archive(tmp_path: Path, database_url: str, blob_env: dict[str, str]) -> Iterator[Archive]:
    """An Archive on a fresh index and an empty blob store of each kind."""
    settings = load_settings(env=blob_env, data_dir=tmp_path / "data", database_url=database_url)
    with Runtime(settings) as runtime:
        yield runtime.archive
