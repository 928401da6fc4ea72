"""Fixtures of the report tests: an installation with a user per role (shared with the auth
tests) and studies with Cyrillic patient names."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydicom.uid import generate_uid

from klinika.archive import Archive
from tests.auth.conftest import Installation, install, site  # noqa: F401  (fixtures)
from tests.conftest import LiveServer, start_server
from tests.dicomweb.conftest import stow
from tests.factories import make_instance

CYRILLIC_NAME = "Иванова^Мария^Петровна"
CYRILLIC_DISPLAY = "Иванова Мария Петровна"


@dataclass(frozen=True)
class Study:
    study_uid: str
    series_uid: str
    sop_uids: tuple[str, ...]


def store_study(
    archive: Archive, *, modality: str = "CT", charset: str = "ISO_IR 144", images: int = 2
) -> Study:
    """A study of ``images`` instances with a Cyrillic patient name in ``charset`` (ISO-IR 144
    is the Cyrillic 8-bit set: the index must decode it)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    sop_uids = tuple(generate_uid() for _ in range(images))
    for number, sop_uid in enumerate(sop_uids, start=1):
        outcome = archive.store(
            make_instance(
                study_uid=study_uid,
                series_uid=series_uid,
                sop_uid=sop_uid,
                rows=64,
                columns=64,
                charset=charset,
                PatientName=CYRILLIC_NAME,
                PatientID="RU-0042",
                PatientBirthDate="19800131",
                PatientSex="F",
                StudyDate="20240305",
                StudyTime="143005",
                AccessionNumber="ACC-77",
                StudyDescription="Грудная клетка",
                ReferringPhysicianName="Петров^Пётр",
                Modality=modality,
                InstanceNumber=number,
            )
        )
        assert outcome.status == "stored", outcome
    return Study(study_uid, series_uid, sop_uids)


@pytest.fixture
def study(site: Installation) -> Study:  # noqa: F811
    return store_study(site.runtime.archive)


@dataclass
class LiveSite:
    """A live ``klinika serve`` with a doctor, an operator and one Cyrillic CT study."""

    server: LiveServer
    study: Study


def stow_study(server: LiveServer) -> Study:
    """Send a two-image Cyrillic CT study to ``server`` through STOW-RS."""
    study_uid, series_uid = generate_uid(), generate_uid()
    sop_uids = (generate_uid(), generate_uid())
    files = [
        make_instance(
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=sop_uid,
            rows=64,
            columns=64,
            charset="ISO_IR 144",
            PatientName=CYRILLIC_NAME,
            PatientID="RU-0042",
            StudyDate="20240305",
            AccessionNumber="ACC-77",
            Modality="CT",
            InstanceNumber=number,
        )
        for number, sop_uid in enumerate(sop_uids, start=1)
    ]
    assert stow(server, files).status_code == 200
    return Study(study_uid, series_uid, sop_uids)


@pytest.fixture(scope="session")  # once per worker: pytest-randomly interleaves packages
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    server = start_server(
        tmp_path_factory.mktemp("reports-live") / "data",
        users={"irina": "doctor", "oleg": "operator"},
        extra_env={"KLINIKA_CLINIC_NAME": "Klinika Zdorovye"},
    )
    yield LiveSite(server, stow_study(server))
    server.stop()
