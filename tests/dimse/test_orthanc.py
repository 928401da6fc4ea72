"""Interoperability with Orthanc (Debian's package), in both directions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("orthanc_interop.py")


@pytest.mark.skipif(shutil.which("Orthanc") is None, reason="Orthanc is not installed")
def test_klinika_and_orthanc_store_find_move_and_retrieve_from_each_other() -> None:
    isolate = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    result = subprocess.run(
        [*isolate, sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).parents[2],
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count("ok  ") == 7
