"""Orthanc 1.10 as C-MOVE destination of every compressed sample, inside a loopback-only
network namespace (Orthanc 1.10 cannot bind to 127.0.0.1 alone). Started by
test_retrieve.py with a scratch folder; prints one JSON line: the final C-MOVE counts, and
which decodable instances are missing at Orthanc or have other pixels than pydicom decodes
from the original."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

sys.path.insert(0, str(Path(__file__).parents[2]))
from tests.conftest import free_port
from tests.dimse.conftest import local_dimse
from tests.dimse.test_retrieve import CALLING, prepare_samples


def main(root: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    http, dicom = free_port(), free_port()
    config = {
        "Name": "retrieve",
        "StorageDirectory": str(root / "orthanc"),
        "IndexDirectory": str(root / "orthanc"),
        "HttpPort": http,
        "DicomPort": dicom,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    orthanc = subprocess.Popen(
        ["Orthanc", str(root / "orthanc.json")],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rest = f"http://127.0.0.1:{http}"
    (root / "samples").mkdir()
    study_uid = generate_uid()
    samples = prepare_samples(root / "samples", study_uid)
    modalities = f"{CALLING}@127.0.0.1:104 ORTHANC@127.0.0.1:{dicom}"
    try:
        for _ in range(100):
            try:
                requests.get(rest + "/system", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.2)
        with local_dimse(root / "data", modalities=modalities) as klinika:
            klinika.archive.store_many([s.path.read_bytes() for s in samples])
            ae = AE(ae_title=CALLING)
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
            assoc = ae.associate("127.0.0.1", klinika.port, ae_title="KLINIKA")
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "STUDY"
            identifier.StudyInstanceUID = study_uid
            model = StudyRootQueryRetrieveInformationModelMove
            responses = list(assoc.send_c_move(identifier, "ORTHANC", model))
            assoc.release()
        final = responses[-1][0]
        missing, different = [], []
        for sample in samples:
            if sample.pixels is None:
                continue
            found = requests.post(
                rest + "/tools/lookup", data=sample.sop_instance_uid, timeout=10
            ).json()
            if not found:
                missing.append(sample.name)
                continue
            data = requests.get(f"{rest}/instances/{found[0]['ID']}/file", timeout=10).content
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pixels = pydicom.dcmread(io.BytesIO(data)).pixel_array
            if not np.array_equal(pixels, sample.pixels):
                different.append(sample.name)
        report = {
            "released": assoc.is_released,
            "status": int(final.Status),
            "counts": {
                "completed": int(final.NumberOfCompletedSuboperations),
                "failed": int(final.NumberOfFailedSuboperations),
                "warning": int(final.NumberOfWarningSuboperations),
            },
            "decodable": sum(1 for s in samples if s.pixels is not None),
            "undecodable": sum(1 for s in samples if s.pixels is None),
            "missing": missing,
            "different": different,
        }
        print(json.dumps(report), flush=True)
    finally:
        orthanc.terminate()
        orthanc.wait(timeout=20)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
