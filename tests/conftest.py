"""Shared fixtures: sample files and a real Klinika server on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from pydicom.data import get_testdata_file

pytest_plugins = ["tests.databases", "tests.objectstore", "tests.browser"]  # database_url, blob_env

#: Sample DICOM files kept in the repository (sources and licences in its README.md).
SAMPLES = Path(__file__).parent / "data" / "samples"
PYDICOM_DATA = Path(get_testdata_file("CT_small.dcm")).parent  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def samples_matching(folder: Path, pattern: str) -> list[Path]:
    """Sample files under ``folder`` matching ``pattern``; never empty (a missing sample folder
    fails the test run instead of silently parametrizing nothing)."""
    found = sorted(folder.glob(pattern))
    assert found, f"no sample matches {pattern} under {folder}"
    return found


def sample_files() -> list[Path]:
    """Every shared sample and pydicom test file, malformed ones included."""
    files = sorted(SAMPLES.rglob("*.dcm")) + sorted(PYDICOM_DATA.glob("*.dcm"))
    assert files, f"no samples under {SAMPLES}"
    return files


@dataclass
class LiveServer:
    """A ``klinika serve`` process with its own data folder."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def dicomweb(self) -> str:
        return self.url + "/dicom-web"

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=20)


TEST_PASSWORD = "correct-horse-battery-staple"


def add_user(data_dir: Path, username: str, role: str, password: str = TEST_PASSWORD) -> None:
    """Create a user with the real CLI."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "klinika",
            "--data-dir",
            str(data_dir),
            "user",
            "add",
            username,
            "--role",
            role,
            "--password",
            password,
        ],
        check=True,
        capture_output=True,
    )


def login(url: str, username: str, password: str = TEST_PASSWORD) -> dict[str, str]:
    """Log in through the API; the Authorization header for that session."""
    response = requests.post(
        url + "/api/auth/login", json={"username": username, "password": password}, timeout=30
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def start_server(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    users: dict[str, str] | None = None,
) -> LiveServer:
    """Start ``python -m klinika serve`` with an admin ``tester`` and ``users`` (name -> role,
    password :data:`TEST_PASSWORD`); wait until /health answers.

    The returned server's ``headers`` carry that admin's session.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "index.sqlite").exists():
        add_user(data_dir, "tester", "admin")
        for username, role in (users or {}).items():
            add_user(data_dir, username, role)
    port = free_port()
    env = {
        **os.environ,
        "KLINIKA_DATA_DIR": str(data_dir),
        "KLINIKA_HTTP_PORT": str(port),
        # dicomweb-client sends a Host header without the port: say where we are.
        "KLINIKA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "KLINIKA_DIMSE_PORT": str(free_port()),
        **(extra_env or {}),
    }
    log = (data_dir.parent / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "klinika", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited: {(data_dir.parent / f'server-{port}.log').read_text()}"
            )
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                server = LiveServer(url, data_dir, process, env)
                server.headers = login(url, "tester")
                return server
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start within 60 s")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live") / "data")
    yield server
    server.stop()


@pytest.fixture
def archive(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    """An Archive on a fresh index (SQLite and PostgreSQL) and blob folder."""
    from klinika.config import load_settings
    from klinika.runtime import Runtime

    runtime = Runtime(load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url))
    yield runtime.archive
    runtime.close()
