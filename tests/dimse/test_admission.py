"""Secure by default: who may associate and use which service, and every refusal audited.

The embedded default lets any AE on this machine echo and store; querying and retrieving
needs a configured modality listing those services; the called AE title must be ours.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests

from tests.conftest import LiveServer, start_server
from tests.dimse.conftest import DCMTK_ENV
from tests.factories import make_instance

#: FINDONLY may query but not retrieve; DEST is a C-MOVE destination nobody listens on.
MODALITIES = "FINDONLY@127.0.0.1:11112/find DEST@127.0.0.1:9/store"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("admission") / "data", {"KLINIKA_MODALITIES": MODALITIES}
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def stored(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> pydicom.Dataset:
    """One instance sent by an arbitrary local AE (storing is open to this machine)."""
    path = tmp_path_factory.mktemp("admission-files") / "ct.dcm"
    path.write_bytes(make_instance(PatientID="ADMISSION-1"))
    sent = dcmtk(server, "storescu", str(path), aet="ANYMODALITY")
    assert sent.returncode == 0, sent.stderr
    return pydicom.dcmread(path, stop_before_pixels=True)


def dcmtk(
    server: LiveServer, tool: str, *args: str, aet: str, aec: str = "KLINIKA"
) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool against the server: ``tool -aet … -aec … [args before host] host port
    [files]``; arguments that are existing files go after the port."""
    files = [a for a in args if Path(a).is_file()]
    options = [a for a in args if a not in files]
    command = [tool, "-v", "-aet", aet, "-aec", aec, *options, "127.0.0.1",
               server.env["KLINIKA_DIMSE_PORT"], *files]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, env=DCMTK_ENV, timeout=60, check=False
    )


def audit_events(server: LiveServer, **where: str) -> list[dict[str, Any]]:
    """Audit events through the admin API (recording may lag a moment behind the answer)."""
    deadline = time.monotonic() + 5
    while True:
        response = requests.get(
            server.url + "/api/audit", params=where, headers=server.headers, timeout=30
        )
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def study_keys(dataset: pydicom.Dataset) -> list[str]:
    return ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={dataset.StudyInstanceUID}"]


def test_a_request_for_another_called_ae_title_is_rejected_and_audited(
    server: LiveServer,
) -> None:
    refused = dcmtk(server, "echoscu", aet="ECHOER", aec="NOTKLINIKA")
    assert refused.returncode != 0
    assert "Association Rejected" in refused.stderr, refused.stderr
    assert "Called AE Title Not Recognized" in refused.stderr, refused.stderr
    assert dcmtk(server, "echoscu", aet="ECHOER").returncode == 0
    (event,) = audit_events(server, action="dicom:associate", outcome="denied", actor="ECHOER")
    assert event["source"] == "ECHOER@127.0.0.1"
    assert "NOTKLINIKA" in event["details"]["reason"]


def test_any_local_ae_may_echo_and_store(server: LiveServer, stored: pydicom.Dataset) -> None:
    assert dcmtk(server, "echoscu", aet="WHOEVER").returncode == 0
    response = requests.get(
        f"{server.dicomweb}/studies",
        params={"StudyInstanceUID": stored.StudyInstanceUID},
        headers=server.headers,
        timeout=30,
    )
    assert response.status_code == 200 and len(response.json()) == 1


def test_an_unknown_ae_may_not_query_or_retrieve_and_each_refusal_is_audited(
    server: LiveServer, stored: pydicom.Dataset, tmp_path: Path
) -> None:
    found = dcmtk(
        server, "findscu", "-S", "-od", str(tmp_path), *study_keys(stored), aet="STRANGER"
    )
    # DCMTK names 0x0124 (Refused: Not Authorized, PS3.7 C.5) for C-FIND "Unknown Status"
    assert "Final Find Response (Unknown Status: 0x124)" in found.stderr, found.stderr
    assert not list(tmp_path.glob("rsp*")), "no match may be answered"

    got = dcmtk(server, "getscu", "-S", "-od", str(tmp_path), *study_keys(stored), aet="STRANGER")
    assert "C-GET Response (Unknown Status: 0x124)" in got.stderr, got.stderr
    assert "Number of Failed Suboperations    : 1" in got.stderr, got.stderr
    assert not [p for p in tmp_path.iterdir() if p.is_file()], "nothing may be sent back"

    moved = dcmtk(server, "movescu", "-S", "-aem", "DEST", *study_keys(stored), aet="STRANGER")
    assert "Final Move Response (Failed: UnableToProcess)" in moved.stderr, moved.stderr

    # refused (and audited) whatever the destination
    moved = dcmtk(server, "movescu", "-S", "-aem", "NOWHERE", *study_keys(stored), aet="STRANGER")
    assert "Final Move Response (Refused" in moved.stderr, moved.stderr

    events = audit_events(server, action="dicom:read", outcome="denied", actor="STRANGER")
    assert sorted(e["details"]["service"] for e in events) == ["find", "get", "move", "move"]
    assert {e["source"] for e in events} == {"STRANGER@127.0.0.1"}
    assert {e["role"] for e in events} == {"modality"}


def test_a_modality_may_use_only_the_services_its_entry_lists(
    server: LiveServer, stored: pydicom.Dataset, tmp_path: Path
) -> None:
    answers = tmp_path / "answers"
    answers.mkdir()
    found = dcmtk(server, "findscu", "-S", "-X", "-od", str(answers), *study_keys(stored),
                  aet="FINDONLY")  # fmt: skip
    assert found.returncode == 0, found.stderr
    (answer,) = [pydicom.dcmread(p) for p in answers.glob("rsp*")]
    assert answer.StudyInstanceUID == stored.StudyInstanceUID

    retrieved = tmp_path / "retrieved"
    retrieved.mkdir()
    got = dcmtk(server, "getscu", "-S", "-od", str(retrieved), *study_keys(stored), aet="FINDONLY")
    assert not list(retrieved.iterdir()), got.stderr
    (event,) = audit_events(server, action="dicom:read", outcome="denied", actor="FINDONLY")
    assert event["details"]["service"] == "get"


def test_the_demo_workstation_may_query_and_retrieve(tmp_path: Path) -> None:
    from klinika.auth import authorize_ae, peers_from_settings
    from klinika.cli.main import DEMO_WORKSTATION, _with_demo_workstation
    from klinika.config import RemoteAE, load_settings

    settings = _with_demo_workstation(load_settings(env={}, data_dir=tmp_path))
    peers = peers_from_settings(settings.modalities, strict=settings.dimse_strict)
    for service in ("find", "move", "get"):
        assert authorize_ae(peers, DEMO_WORKSTATION.title, "127.0.0.1", service)
        assert not authorize_ae(peers, "SOMEONE", "127.0.0.1", service)
    own = load_settings(env={}, data_dir=tmp_path, modalities="DEMO@10.0.0.7:104/find")
    assert _with_demo_workstation(own).modalities == (RemoteAE.parse("DEMO@10.0.0.7:104/find"),)
