"""Patient-level counts (NumberOfPatientRelated*, PS3.4 C.6.1.1.2) in the one query engine, on
SQLite and PostgreSQL: at PATIENT level (C-FIND) and in study answers (QIDO includefield)."""

from __future__ import annotations

import pytest

from klinika.dicom.attributes import Level
from klinika.errors import InvalidQuery
from klinika.index.query import Query
from tests.factories import make_instance

COUNTS = (
    "NumberOfPatientRelatedStudies",
    "NumberOfPatientRelatedSeries",
    "NumberOfPatientRelatedInstances",
)
TAGS = ("00201200", "00201202", "00201204")


@pytest.fixture
def two_patients(archive):  # type: ignore[no-untyped-def]
    """P1: two studies, three series, five instances; P2: one study, series, instance."""
    layout = {"P1": [(1, 1, 2), (1, 2, 1), (2, 3, 2)], "P2": [(3, 4, 1)]}
    for patient, entries in layout.items():
        for study, series, instances in entries:
            for _ in range(instances):
                outcome = archive.store(
                    make_instance(
                        study_uid=f"1.2.826.0.1.3680043.10.9.{study}",
                        series_uid=f"1.2.826.0.1.3680043.10.9.{study}.{series}",
                        PatientID=patient,
                        PatientName=f"Count^{patient}",
                    )
                )
                assert outcome.status == "stored", outcome
    return archive


def counts(match: dict) -> tuple[int, int, int]:
    return tuple(match[tag]["Value"][0] for tag in TAGS)  # type: ignore[return-value]


def test_patient_level_answers_count_what_each_patient_has(two_patients) -> None:
    query = Query(Level.PATIENT, match={"PatientID": "", **{k: "" for k in COUNTS}})
    found = {m["00100020"]["Value"][0]: counts(m) for m in two_patients.search(query).matches}
    assert found == {"P1": (2, 3, 5), "P2": (1, 1, 1)}


def test_study_answers_carry_them_when_asked(two_patients) -> None:
    query = Query(Level.STUDY, match={"PatientID": "P1"}, include=frozenset(COUNTS))
    matches = two_patients.search(query).matches
    assert len(matches) == 2
    assert {counts(m) for m in matches} == {(2, 3, 5)}
    plain = two_patients.search(Query(Level.STUDY, match={"PatientID": "P1"})).matches
    assert all(TAGS[0] not in m for m in plain)  # not computed unless asked


def test_they_cannot_be_matched_on(two_patients) -> None:
    with pytest.raises(InvalidQuery, match="NumberOfPatientRelatedStudies"):
        two_patients.search(Query(Level.PATIENT, match={"NumberOfPatientRelatedStudies": "2"}))
