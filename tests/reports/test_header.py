"""The report header comes from the index at request time, names decoded from the data set's
character set: the shared Cyrillic samples in ISO-IR 144, ISO 2022 IR 144 and UTF-8."""

from __future__ import annotations

import pytest

from klinika.archive import Archive
from klinika.i18n import translator
from klinika.reports.header import person_name, study_header
from tests.conftest import SAMPLES

CYRILLIC_SAMPLES = [
    "cyrillic_iso_ir_144.dcm",
    "cyrillic_iso2022_ir_144.dcm",
    "cyrillic_iso_ir_192_utf8.dcm",
]


@pytest.mark.parametrize("sample", CYRILLIC_SAMPLES)
def test_the_header_reads_cyrillic_names_in_any_character_set(
    archive: Archive, sample: str
) -> None:
    data = (SAMPLES / "generated" / sample).read_bytes()
    outcome = archive.store(data)
    assert outcome.status == "stored", outcome
    header = study_header(archive, outcome.study_uid)
    assert header.patient_name == "Иванов Иван Иванович"
    assert header.referring_physician == "Петрова Мария"
    assert header.modality == "OT"
    rows = dict(header.rows(translator("ru")))
    assert rows["Пациент"] == "Иванов Иван Иванович"


def test_person_names_read_family_name_first() -> None:
    assert person_name({"Alphabetic": "Müller^Zoë^^Dr.^PhD"}) == "Dr. Müller Zoë PhD"
    assert person_name({"Ideographic": "山田^太郎"}) == "山田 太郎"
    assert person_name("") == ""
