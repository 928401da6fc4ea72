"""Shared fixtures: sample files and a real Klinika server on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import requests
from pydicom.data import get_testdata_file

pytest_plugins = ["tests.databases", "tests.objectstore", "tests.browser"]  # database_url, blob_env

#: Sample DICOM files kept in the repository (sources and licences in its README.md).
SAMPLES = Path(__file__).parent / "data" / "samples"
PYDICOM_DATA = Path(get_testdata_file("CT_small.dcm")).parent  # type: ignore[arg-type]


T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    # Every `klinika` process the tests start (servers, the CLI) and every in-process
    # load_settings() that reads the environment hashes passwords cheaply: argon2's 64 MiB
    # production cost, paid at each user creation and login, would dominate the suite.
    os.environ.setdefault("KLINIKA_PASSWORD_HASH_PROFILE", "test")


@dataclass
class Clock:
    """A clock a test moves by hand (seconds since the epoch), for ``Runtime(clock=…)`` and the
    services that take one."""

    now: float = field(default_factory=lambda: float(int(time.time())))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now (the kernel picks it; bind it soon)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], T],
    timeout: float = 30.0,
    *,
    message: str = "",
    ignoring: tuple[type[BaseException], ...] = (),
    interval: float = 0.05,
) -> T:
    """Call ``condition`` until it returns something truthy, and return that; fail the test
    after ``timeout`` seconds. Exceptions of the ``ignoring`` types count as "not yet".

    Use this instead of ``time.sleep``: a test waits exactly as long as it must, and a
    condition that never comes fails with ``message`` instead of passing by luck.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except ignoring:
            result = None  # type: ignore[assignment]
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s: {message or condition!r}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def samples_matching(folder: Path, pattern: str) -> list[Path]:
    """Sample files under ``folder`` matching ``pattern``; never empty (a missing sample folder
    fails the test run instead of silently parametrizing nothing)."""
    found = sorted(folder.glob(pattern))
    assert found, f"no sample matches {pattern} under {folder}"
    return found


def sample_files() -> list[Path]:
    """Every shared sample and pydicom test file, malformed ones included."""
    return samples_matching(SAMPLES, "**/*.dcm") + samples_matching(PYDICOM_DATA, "*.dcm")


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
    """Create a user with the real CLI (``klinika user add``)."""
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


def create_users(data_dir: Path, users: dict[str, str], password: str = TEST_PASSWORD) -> None:
    """Create users (name -> role) as ``klinika user add`` does, in this process: one migration
    instead of a Python start per user (the CLI itself is tested in tests/cli)."""
    from klinika.cli.auth_commands import CLI_ACTOR
    from klinika.config import load_settings
    from klinika.runtime import Runtime

    with Runtime(load_settings(data_dir=data_dir)) as runtime:
        for username, role in users.items():
            runtime.auth.create_user(username, role, password, actor=CLI_ACTOR, source="cli")


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
        create_users(data_dir, {"tester": "admin", **(users or {})})
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
    log_path = data_dir.parent / f"server-{port}.log"
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "klinika", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            return requests.get(url + "/health", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or a busy machine
            return False

    _started.append(process)
    try:
        wait_until(healthy, 60, message="the server did not answer /health")
        server = LiveServer(url, data_dir, process, env)
        server.headers = login(url, "tester")
    except BaseException:
        process.kill()
        process.wait(timeout=20)
        raise
    return server


#: every ``klinika serve`` this test process started (see :func:`_no_server_outlives_the_tests`)
_started: list[subprocess.Popen[bytes]] = []


@pytest.fixture(scope="session", autouse=True)
def _no_server_outlives_the_tests() -> Iterator[None]:
    """A test that fails before it stops its server (an assertion between start and stop)
    would leave it running past the session, holding ports and CPU: kill what is left."""
    yield
    for process in _started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)


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
