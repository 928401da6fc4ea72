"""Klinika and Orthanc talking DIMSE to each other, run inside a loopback-only network
namespace (Orthanc 1.10 cannot bind to 127.0.0.1 alone). Started by test_orthanc.py; prints
one line per check and exits non-zero on the first failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parents[2]))
from tests.conftest import SAMPLES, free_port, samples_matching, start_server, wait_until

CT = samples_matching(SAMPLES / "dcmqi" / "ct-3slice", "*.dcm")
MR = SAMPLES / "generated" / "cyrillic_iso_ir_192_utf8.dcm"


def check(name: str, ok: bool, detail: object = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}", flush=True)
    if not ok:
        sys.exit(1)


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    root = Path(tempfile.mkdtemp(prefix="orthanc-interop-"))
    orthanc_http, orthanc_dicom, klinika_dicom = free_port(), free_port(), free_port()
    config = {
        "Name": "interop",
        "StorageDirectory": str(root / "orthanc"),
        "IndexDirectory": str(root / "orthanc"),
        "HttpPort": orthanc_http,
        "DicomPort": orthanc_dicom,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
        "DicomCheckModalityHost": True,
        "DicomModalities": {"klinika": ["KLINIKA", "127.0.0.1", klinika_dicom]},
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    orthanc = subprocess.Popen(
        ["Orthanc", str(root / "orthanc.json")],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = start_server(
        root / "klinika",
        {
            "KLINIKA_DIMSE_PORT": str(klinika_dicom),
            "KLINIKA_MODALITIES": f"ORTHANC@127.0.0.1:{orthanc_dicom}",
        },
    )
    rest = f"http://127.0.0.1:{orthanc_http}"
    try:
        wait_until(
            lambda: requests.get(rest + "/system", timeout=1).ok,
            30,
            message="Orthanc did not answer",
            ignoring=(requests.RequestException,),
        )
        klinika = [sys.executable, "-m", "klinika", "--data-dir", str(server.data_dir)]
        env = {**server.env}

        def qido(query: str) -> list[dict]:
            response = requests.get(
                f"{server.dicomweb}/studies?{query}", headers=server.headers, timeout=10
            )
            return response.json()

        # 1. Orthanc C-STORE to Klinika
        ids = [
            requests.post(rest + "/instances", data=p.read_bytes(), timeout=10).json()["ID"]
            for p in CT
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
    finally:
        server.stop()
        orthanc.terminate()
        orthanc.wait(timeout=20)


if __name__ == "__main__":
    main()
