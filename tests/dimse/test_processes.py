"""Several DIMSE processes on one port (``KLINIKA_DIMSE_WORKERS``): concurrent DCMTK
associations all store and query correctly whichever process accepts them, a worker that
dies is replaced, and stopping ``klinika dimse`` stops every worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from tests.conftest import free_port
from tests.dimse.conftest import DCMTK_ENV, associate
from tests.factories import make_instance

FIND = StudyRootQueryRetrieveInformationModelFind


@dataclass
class Workers:
    process: subprocess.Popen[bytes]
    port: int

    def children(self) -> set[int]:
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        )
        return {int(pid) for pid in found.stdout.split()}


def echo(port: int) -> bool:
    done = subprocess.run(
        ["echoscu", "-aet", "TESTSCU", "-aec", "KLINIKA", "127.0.0.1", str(port)],
        env=DCMTK_ENV,
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def wait_for(condition: object, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    port = free_port()
    env = {
        **os.environ,
        "KLINIKA_DATA_DIR": str(tmp_path / "data"),
        "KLINIKA_DIMSE_PORT": str(port),
        "KLINIKA_DIMSE_WORKERS": "2",
        "KLINIKA_FSYNC": "false",
        "KLINIKA_MODALITIES": "TESTSCU@127.0.0.1:11112",
    }
    log = (tmp_path / "dimse.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "klinika", "dimse"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    running = Workers(process, port)
    try:
        assert wait_for(lambda: len(running.children()) == 2 and echo(port)), (
            tmp_path / "dimse.log"
        ).read_text()
        yield running
    finally:
        process.terminate()
        process.wait(timeout=30)


def study_instances(port: int, study_uid: str) -> set[str]:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.StudyInstanceUID = study_uid
    identifier.SOPInstanceUID = ""
    assoc = associate(port, FIND)
    try:
        return {
            str(found.SOPInstanceUID)
            for status, found in assoc.send_c_find(identifier, FIND)
            if status.Status == 0xFF00 and found is not None
        }
    finally:
        assoc.release()


def test_concurrent_associations_store_and_query_through_every_worker(
    workers: Workers, tmp_path: Path
) -> None:
    studies = [generate_uid() for _ in range(4)]
    folders = []
    expected: dict[str, set[str]] = {}
    for k, study in enumerate(studies):
        folder = tmp_path / f"send-{k}"
        folder.mkdir()
        sops = {generate_uid() for _ in range(15)}
        for n, sop in enumerate(sorted(sops)):
            data = make_instance(study_uid=study, sop_uid=sop, PatientID=f"W{k}")
            (folder / f"{n:03d}.dcm").write_bytes(data)
        expected[study] = sops
        folders.append(folder)
    senders = [
        subprocess.Popen(
            [
                *("storescu", "-aet", "TESTSCU", "-aec", "KLINIKA", "+sd"),
                *("127.0.0.1", str(workers.port), str(folder)),
            ],
            env=DCMTK_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for folder in folders
    ]
    outputs = [sender.communicate(timeout=120)[0].decode() for sender in senders]
    assert [s.returncode for s in senders] == [0, 0, 0, 0], outputs
    assert not any("Store Failed" in out for out in outputs), outputs
    # every answer from any worker sees what every other worker stored
    for _ in range(3):
        for study, sops in expected.items():
            assert study_instances(workers.port, study) == sops


def test_a_dead_worker_is_replaced_and_stop_ends_them_all(workers: Workers) -> None:
    first = workers.children()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: victim not in workers.children() and len(workers.children()) == 2)
    assert echo(workers.port)
    survivors = workers.children()
    workers.process.terminate()
    workers.process.wait(timeout=30)
    for pid in survivors:
        assert wait_for(lambda pid=pid: not os.path.exists(f"/proc/{pid}"), timeout=15), pid


def test_the_workers_end_when_their_parent_is_killed(workers: Workers) -> None:
    """kill -9 of ``klinika dimse``: Linux sends each worker SIGTERM, and each ends (none
    may keep the DIMSE port with nobody to restart or stop it)."""
    children = workers.children()
    assert len(children) == 2
    workers.process.kill()
    workers.process.wait(timeout=30)
    for pid in children:
        assert wait_for(lambda pid=pid: not _alive(pid), timeout=20), f"worker {pid} lives on"
    assert not echo(workers.port)


def test_a_stop_signal_survives_a_storm_of_sigterms(tmp_path: Path) -> None:
    """The handler only notes the request: hundreds of SIGTERMs, whenever they land in the
    waiting loop, never leave it stuck (an Event set from the handler could deadlock on the
    lock its own wait held)."""
    script = tmp_path / "waiter.py"
    script.write_text(
        "import signal, sys\n"
        "from klinika.cli.dimse_processes import StopSignal\n"
        "stop = StopSignal(signal.SIGTERM)\n"
        "print('ready', flush=True)\n"
        "while not stop.wait(0.001):\n"
        "    pass\n"
        # the rest of the storm lands after the loop, while the interpreter shuts down and
        # puts SIGTERM's default action back: ignored, so that only a hang can fail the test
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('stopped', flush=True)\n"
    )
    waiter = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert waiter.stdout is not None
    assert waiter.stdout.readline().strip() == "ready"
    for _ in range(300):
        with contextlib.suppress(ProcessLookupError):
            os.kill(waiter.pid, signal.SIGTERM)
    assert waiter.wait(timeout=20) == 0
    assert waiter.stdout.read().strip() == "stopped"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
