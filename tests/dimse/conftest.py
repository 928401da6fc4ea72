"""Klinika's DIMSE listener, live (``klinika serve``) or in this process, and a DCMTK
storescp as C-MOVE destination."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES
from pynetdicom.association import Association

from klinika.archive import Archive
from klinika.config import load_settings
from klinika.dicom.attributes import Level
from klinika.dimse import DimseServer, start_dimse_server
from klinika.dimse.direct import guard_reactor
from klinika.index.query import Query
from klinika.runtime import Runtime
from tests.conftest import LiveServer, free_port, port_open, start_server, wait_until

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
#: The calling AE of the tests' query/retrieve peers: querying and retrieving needs a
#: configured modality (only echo and store are open to any local AE).
TEST_SCU = "TESTSCU@127.0.0.1:11112/echo,store,find,move,get"


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


@pytest.fixture(scope="session")  # once per worker: pytest-randomly interleaves packages
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
    modalities = f"STORESCP@127.0.0.1:{store_port} {TEST_SCU}"
    server = start_server(root / "data", {"KLINIKA_MODALITIES": modalities})
    wait_until(lambda: port_open(store_port), 30, message="storescp did not listen")
    yield Dimse(server, int(server.env["KLINIKA_DIMSE_PORT"]), store_dir, store_port)
    server.stop()
    receiver.terminate()
    receiver.wait(timeout=10)


@dataclass
class LocalDimse:
    """Klinika's DIMSE listener in this process, over its own data folder: tests look at what
    the archive holds directly."""

    runtime: Runtime
    listener: DimseServer

    @property
    def archive(self) -> Archive:
        return self.runtime.archive

    @property
    def port(self) -> int:
        return self.listener.port

    def holds(self, sop_instance_uid: str) -> bool:
        """Whether the index knows this SOP Instance UID (at any study)."""
        query = Query(Level.IMAGE, match={"SOPInstanceUID": sop_instance_uid}, strict=False)
        return bool(self.archive.search(query).matches)

    def stored(self, part10: bytes) -> bytes:
        """The stored Part-10 bytes of the instance a file holds."""
        ds = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
        (record,) = self.archive.instances(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
        )
        return self.archive.read(record)


@contextmanager
def local_dimse(data_dir: Path, **settings: Any) -> Iterator[LocalDimse]:
    """Start :func:`klinika.dimse.start_dimse_server` on a free port of 127.0.0.1; TESTSCU
    is a configured modality unless ``modalities`` says otherwise."""
    settings.setdefault("modalities", TEST_SCU)
    runtime = Runtime(
        load_settings(env={}, data_dir=data_dir, dimse_port=0, fsync=False, **settings)
    )
    listener = start_dimse_server(
        runtime.archive, runtime.auth, runtime.audit, runtime.settings, schedule=runtime.schedule
    )
    try:
        yield LocalDimse(runtime, listener)
    finally:
        listener.shutdown()
        runtime.close()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalDimse]:
    with local_dimse(tmp_path / "data") as server:
        yield server


def associate(port: int, *contexts: Any, aet: str = "TESTSCU", **kwargs: Any) -> Association:
    """A pynetdicom association to Klinika proposing ``contexts`` (as ``build_context`` takes
    them: a SOP class, or a (SOP class, transfer syntaxes) pair), with pynetdicom's
    pause race closed (:func:`klinika.dimse.direct.guard_reactor`)."""
    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for context in contexts:
        sop_class, syntaxes = context if isinstance(context, tuple) else (context, None)
        ae.add_requested_context(sop_class, syntaxes or DEFAULT_TRANSFER_SYNTAXES)
    assoc = ae.associate("127.0.0.1", port, ae_title="KLINIKA", **kwargs)
    assert assoc.is_established, "Klinika refused the association"
    return guard_reactor(assoc)
