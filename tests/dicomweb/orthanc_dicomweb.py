"""Orthanc's DICOMweb client (Debian's orthanc-dicomweb plugin) storing into and retrieving
from Klinika, inside a loopback-only network namespace shared by both servers (Orthanc 1.10
cannot bind to 127.0.0.1 alone). Started by test_orthanc_dicomweb.py; prints one line per
check and exits non-zero on the first failure."""

from __future__ import annotations

import io
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pydicom
import requests

sys.path.insert(0, str(Path(__file__).parents[2]))
from tests.conftest import SAMPLES, LiveServer, login, samples_matching, start_server
from tests.dicomweb.conftest import client_for, stow
from tests.dimse.orthanc_interop import check, loopback_up, start_orthanc

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
# Stored by Orthanc into Klinika (STOW-RS), then pulled back (WADO-RS).
CT = samples_matching(SAMPLES / "dcmqi" / "ct-3slice", "*.dcm")
# Stored in Klinika only, JPEG-LS compressed, pulled by Orthanc.
SM = SAMPLES / "highdicom" / "sm_image_jpegls.dcm"


def pixels(data: bytes) -> tuple[str, np.ndarray]:
    """SOP Instance UID and decoded pixels of a Part-10 file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sample files carry odd values pydicom warns about
        dataset = pydicom.dcmread(io.BytesIO(data))
        return str(dataset.SOPInstanceUID), dataset.pixel_array


def originals(paths: list[Path]) -> dict[str, np.ndarray]:
    return dict(pixels(path.read_bytes()) for path in paths)


def at_klinika(server: LiveServer, study_uid: str) -> dict[str, np.ndarray]:
    """The study's instances as Klinika returns them to dicomweb-client (WADO-RS)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datasets = client_for(server).retrieve_study(study_uid)
        return {str(d.SOPInstanceUID): d.pixel_array for d in datasets}


def at_orthanc(rest: str, study_uid: str) -> dict[str, np.ndarray]:
    """The study's instances as Orthanc stored them."""
    found = requests.post(
        rest + "/tools/find",
        json={"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}},
        timeout=10,
    ).json()
    return dict(
        pixels(requests.get(f"{rest}/instances/{i}/file", timeout=10).content) for i in found
    )


def same(found: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> bool:
    return found.keys() == expected.keys() and all(
        np.array_equal(found[uid], expected[uid]) for uid in expected
    )


def main() -> None:
    loopback_up()
    root = Path(tempfile.mkdtemp(prefix="orthanc-dicomweb-"))
    server = start_server(root / "klinika", users={"orthanc": "operator"})
    try:
        token = login(server.url, "orthanc")
        klinika = {
            "Url": server.dicomweb + "/",
            "HttpHeaders": token,  # Klinika's DICOMweb takes the user's bearer token
        }
        with start_orthanc(
            root,
            Name="dicomweb",
            Plugins=[str(PLUGIN)],
            DicomWeb={"Enable": True, "Root": "/dicom-web/", "Servers": {"klinika": klinika}},
        ) as rest:
            exchange(rest, server)
    finally:
        server.stop()


def exchange(rest: str, server: LiveServer) -> None:
    """Orthanc stores into Klinika and retrieves from it through its DICOMweb client."""
    ct_study = str(pydicom.dcmread(CT[0], stop_before_pixels=True).StudyInstanceUID)
    expected_ct = originals(CT)

    # 1. Orthanc STOW-RS into Klinika
    uploaded = [
        requests.post(rest + "/instances", data=p.read_bytes(), timeout=10).json() for p in CT
    ]
    stowed = requests.post(
        rest + "/dicom-web/servers/klinika/stow",
        json={"Resources": [uploaded[0]["ParentStudy"]]},
        timeout=120,
    )
    check(
        "Orthanc STOW-RS -> Klinika: 3 instances sent",
        stowed.ok and stowed.json().get("InstancesCount") == "3",
        f"{stowed.status_code} {stowed.text[:300]}",
    )
    check("Klinika holds what Orthanc stored", same(at_klinika(server, ct_study), expected_ct))

    # 2. Orthanc WADO-RS retrieve of that study back from Klinika, after forgetting it
    requests.delete(f"{rest}/studies/{uploaded[0]['ParentStudy']}", timeout=10).raise_for_status()
    check("Orthanc forgot the study", at_orthanc(rest, ct_study) == {})
    pulled = requests.post(
        rest + "/dicom-web/servers/klinika/retrieve",
        json={"Resources": [{"Study": ct_study}]},
        timeout=120,
    )
    check(
        "Orthanc retrieve <- Klinika: 3 instances received",
        pulled.ok and pulled.json().get("ReceivedInstancesCount") == "3",
        f"{pulled.status_code} {pulled.text[:300]}",
    )
    check("Orthanc holds the study Klinika sent", same(at_orthanc(rest, ct_study), expected_ct))

    # 3. A JPEG-LS study that only Klinika had
    sm_study = str(pydicom.dcmread(SM, stop_before_pixels=True).StudyInstanceUID)
    stored = stow(server, [SM.read_bytes()])
    check("JPEG-LS study stored in Klinika", stored.status_code == 200, stored.status_code)
    pulled = requests.post(
        rest + "/dicom-web/servers/klinika/retrieve",
        json={"Resources": [{"Study": sm_study}]},
        timeout=120,
    )
    check(
        "Orthanc retrieve <- Klinika (JPEG-LS): 1 instance received",
        pulled.ok and pulled.json().get("ReceivedInstancesCount") == "1",
        f"{pulled.status_code} {pulled.text[:300]}",
    )
    check(
        "Orthanc holds the JPEG-LS study, same pixels",
        same(at_orthanc(rest, sm_study), originals([SM])),
    )


if __name__ == "__main__":
    main()
