"""A live server with the OHIF viewer, a demo CT volume, and a doctor and an operator."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image, ImageStat

from klinika.demo import generate_demo
from tests.conftest import LiveServer, start_server

CT_SLICES = 96


@pytest.fixture(scope="module")
def viewer_server(
    tmp_path_factory: pytest.TempPathFactory, ohif_cache: Path
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("viewer")
    server = start_server(
        root / "data",
        extra_env={"KLINIKA_CACHE_DIR": str(ohif_cache)},
        users={"irina": "doctor", "vera": "doctor", "olga": "operator"},
    )
    load_demo(server, root / "demo", CT_SLICES)
    yield server
    server.stop()


def load_demo(server: LiveServer, folder: Path, ct_slices: int) -> None:
    """The demo data set (a CT volume of ``ct_slices``, MR, CR, US) imported into ``server``."""
    generate_demo(folder, ct_slices=ct_slices)
    subprocess.run(
        [sys.executable, "-m", "klinika", "import", str(folder)],
        env=server.env,
        check=True,
        capture_output=True,
    )


def ct_study_uid(server: LiveServer) -> str:
    """The demo CT volume's study."""
    studies = requests.get(
        server.dicomweb + "/studies",
        params={"ModalitiesInStudy": "CT", "StudyDescription": "CT Chest Abdomen*"},
        headers=server.headers,
    ).json()
    assert len(studies) == 1
    return str(studies[0]["0020000D"]["Value"][0])


def drawn(png: bytes) -> bool:
    """An image is really drawn: enough non-black pixels, with contrast."""
    image = Image.open(io.BytesIO(png)).convert("L")
    stats = ImageStat.Stat(image)
    histogram = image.histogram()
    lit = sum(histogram[41:]) / (image.width * image.height)
    return stats.stddev[0] > 20 and lit > 0.03
