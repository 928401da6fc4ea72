"""A live Klinika with its DIMSE listener, and a DCMTK storescp as C-MOVE destination."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LiveServer, free_port, start_server

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


@dataclass
class Dimse:
    server: LiveServer
    port: int
    store_dir: Path  # where the storescp destination writes
    store_port: int

    def run(
        self, *args: str, files: tuple[str, ...] = (), aet: str = "TESTSCU", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a DCMTK tool against Klinika: options, then host and port, then files."""
        command = [
            args[0],
            "-aet",
            aet,
            "-aec",
            "KLINIKA",
            *args[1:],
            "127.0.0.1",
            str(self.port),
            *files,
        ]
        return subprocess.run(
            command, capture_output=True, text=True, env=DCMTK_ENV, timeout=120, check=check
        )


@pytest.fixture(scope="package")
def dimse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dimse]:
    root = tmp_path_factory.mktemp("dimse")
    store_dir = root / "received"
    store_dir.mkdir()
    store_port = free_port()
    receiver = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "-od", str(store_dir), "+xa", str(store_port)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = start_server(root / "data", {"KLINIKA_MODALITIES": f"STORESCP@127.0.0.1:{store_port}"})
    time.sleep(0.5)
    yield Dimse(server, int(server.env["KLINIKA_DIMSE_PORT"]), store_dir, store_port)
    server.stop()
    receiver.terminate()
    receiver.wait(timeout=10)
