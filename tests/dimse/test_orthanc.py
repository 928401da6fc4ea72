"""Interoperability with Orthanc (Debian's package), in both directions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.dimse.orthanc_interop import run_isolated

SCRIPT = Path(__file__).with_name("orthanc_interop.py")


@pytest.mark.skipif(shutil.which("Orthanc") is None, reason="Orthanc is not installed")
def test_klinika_and_orthanc_store_find_move_and_retrieve_from_each_other() -> None:
    result = run_isolated(SCRIPT)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count("ok  ") == 7
