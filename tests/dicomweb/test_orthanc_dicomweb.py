"""Orthanc's DICOMweb client (Debian's orthanc-dicomweb) against Klinika: STOW-RS in, WADO-RS
retrieve out, SOP Instance UIDs and pixels equal on both sides (orthanc_dicomweb.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.dicomweb.orthanc_dicomweb import PLUGIN
from tests.dimse.orthanc_interop import run_isolated

SCRIPT = Path(__file__).with_name("orthanc_dicomweb.py")


@pytest.mark.skipif(
    shutil.which("Orthanc") is None or not PLUGIN.exists(),
    reason="Orthanc or its DICOMweb plugin (orthanc-dicomweb) is not installed",
)
def test_orthanc_dicomweb_client_stores_into_and_retrieves_from_klinika() -> None:
    result = run_isolated(SCRIPT)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count("ok  ") == 8
