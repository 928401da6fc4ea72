"""Klinika and Orthanc talking DIMSE to each other, run inside a loopback-only network
namespace (Orthanc 1.10 cannot bind to 127.0.0.1 alone). Started by test_orthanc.py; prints
one line per check and exits non-zero on the first failure.

:func:`run_isolated` and :func:`start_orthanc` are how every Orthanc test of the suite runs
its script in such a namespace and starts Orthanc there (Klinika runs in the same namespace)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).parents[2]))
from tests.conftest import (
    SAMPLES,
    LiveServer,
    free_port,
    samples_matching,
    start_server,
    wait_until,
)

CT = samples_matching(SAMPLES / "dcmqi" / "ct-3slice", "*.dcm")
MR = SAMPLES / "generated" / "cyrillic_iso_ir_192_utf8.dcm"


def run_isolated(
    script: Path, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with this Python in a new network namespace (only loopback, which the
    script brings up), from the repository root."""
    isolate = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    return subprocess.run(
        [*isolate, sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parents[2],
    )


def loopback_up() -> None:
    """Bring up the namespace's loopback interface (down in a new network namespace)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


@contextmanager
def start_orthanc(root: Path, **config: Any) -> Iterator[str]:
    """Bring loopback up (:func:`loopback_up`), start Orthanc with its storage under ``root``
    and ``config`` on top of a closed default (no remote access, no authentication, no
    plugins), wait until its REST API answers; yield that API's URL and stop Orthanc
    afterwards. ``config`` may set ``DicomPort`` (a free port otherwise)."""
    loopback_up()
    http = free_port()
    settings = {
        "Name": "klinika-test",
        "StorageDirectory": str(root / "orthanc"),
        "IndexDirectory": str(root / "orthanc"),
        "HttpPort": http,
        "DicomPort": free_port(),
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
        **config,
    }
    (root / "orthanc.json").write_text(json.dumps(settings))
    log = (root / "orthanc.log").open("wb")
    orthanc = subprocess.Popen(
        ["Orthanc", "--verbose", str(root / "orthanc.json")],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    rest = f"http://127.0.0.1:{http}"
    try:

        def answering() -> bool:
            if orthanc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {(root / 'orthanc.log').read_text()[-3000:]}")
            return requests.get(rest + "/system", timeout=1).ok

        wait_until(
            answering, 30, message="Orthanc did not answer", ignoring=(requests.RequestException,)
        )
        yield rest
    finally:
        orthanc.terminate()
        orthanc.wait(timeout=20)
        log.close()


def check(name: str, ok: bool, detail: object = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}", flush=True)
    if not ok:
        sys.exit(1)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="orthanc-interop-"))
    orthanc_dicom, klinika_dicom = free_port(), free_port()
    with start_orthanc(
        root,
        Name="interop",
        DicomPort=orthanc_dicom,
        DicomCheckModalityHost=True,
        DicomModalities={"klinika": ["KLINIKA", "127.0.0.1", klinika_dicom]},
    ) as rest:
        server = start_server(
            root / "klinika",
            {
                "KLINIKA_DIMSE_PORT": str(klinika_dicom),
                "KLINIKA_MODALITIES": f"ORTHANC@127.0.0.1:{orthanc_dicom}",
            },
        )
        try:
            interoperate(rest, server)
        finally:
            server.stop()


def interoperate(rest: str, server: LiveServer) -> None:
    """The checks, both ways, with Orthanc's REST API at ``rest``."""
    klinika = [sys.executable, "-m", "klinika", "--data-dir", str(server.data_dir)]
    env = {**server.env}

    def qido(query: str) -> list[dict]:
        response = requests.get(
            f"{server.dicomweb}/studies?{query}", headers=server.headers, timeout=10
        )
        return response.json()

    # 1. Orthanc C-STORE to Klinika
    ids = [
        requests.post(rest + "/instances", data=p.read_bytes(), timeout=10).json()["ID"] for p in CT
    ]
    stored = requests.post(
        rest + "/modalities/klinika/store", json={"Resources": ids}, timeout=60
    ).json()
    study_uid = str(__import__("pydicom").dcmread(CT[0]).StudyInstanceUID)
    found = qido(f"StudyInstanceUID={study_uid}")
    check(
        "Orthanc C-STORE -> Klinika",
        found and found[0]["00201208"]["Value"][0] >= 3,
        stored.get("InstancesCount"),
    )

    # 2. Orthanc C-FIND on Klinika
    answer = requests.post(
        rest + "/modalities/klinika/query",
        json={"Level": "Study", "Query": {"StudyInstanceUID": study_uid, "PatientName": ""}},
        timeout=30,
    ).json()
    answers = requests.get(rest + answer["Path"] + "/answers?expand", timeout=10).json()
    check("Orthanc C-FIND on Klinika", len(answers) == 1, answers[:1])

    # 3. Orthanc C-MOVE from Klinika to itself: first empty Orthanc, then retrieve
    for instance in ids:
        requests.delete(f"{rest}/instances/{instance}", timeout=10)
    requests.post(
        rest + "/modalities/klinika/move",
        json={
            "Level": "Study",
            "TargetAet": "ORTHANC",
            "Resources": [{"StudyInstanceUID": study_uid}],
        },
        timeout=60,
    ).raise_for_status()
    count = len(requests.get(rest + "/instances", timeout=10).json())
    check("Orthanc C-MOVE from Klinika", count >= 3, count)

    # 4. Klinika send (C-STORE out) to Orthanc
    subprocess.run([*klinika, "import", str(MR)], env=env, check=True, capture_output=True)
    mr_study = str(__import__("pydicom").dcmread(MR).StudyInstanceUID)
    sent = subprocess.run(
        [*klinika, "send", mr_study, "--to", "ORTHANC"], env=env, capture_output=True, text=True
    )
    found = requests.post(
        rest + "/tools/find",
        json={"Level": "Study", "Query": {"StudyInstanceUID": mr_study}},
        timeout=10,
    ).json()
    check("Klinika send -> Orthanc", sent.returncode == 0 and len(found) == 1, sent.stdout)

    # 5. Klinika retrieve (C-MOVE) from Orthanc into the running server
    requests.delete(f"{server.dicomweb}/studies/{mr_study}", headers=server.headers, timeout=10)
    pulled = subprocess.run(
        [*klinika, "retrieve", "ORTHANC", mr_study], env=env, capture_output=True, text=True
    )
    check("Klinika retrieve <- Orthanc", pulled.returncode == 0, pulled.stdout + pulled.stderr)
    check("retrieved study is in Klinika", len(qido(f"StudyInstanceUID={mr_study}")) == 1)
    query = subprocess.run(
        [*klinika, "query", "ORTHANC", "-k", "PatientName=Иван*"],
        env=env,
        capture_output=True,
        text=True,
    )
    # Orthanc 1.10 answers Cyrillic names as "^^" (its default Latin-1): check the UID
    check("Klinika query -> Orthanc", mr_study in query.stdout, query.stdout)


if __name__ == "__main__":
    main()
