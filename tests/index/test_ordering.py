"""Ordering and counting in the query engine (what the worklist pages with); QIDO's default
order and answers stay as they were."""

from __future__ import annotations

import pytest

from klinika.dicom.attributes import Level
from klinika.errors import InvalidQuery
from klinika.index.query import Query
from tests.factories import make_instance

ROWS = [
    ("A1", "Smith^John", "20200115", "081500", "CT"),
    ("A2", "Smithers^Anna", "20210610", "140000", "MR"),
    ("B1", "Иванов^Иван", "20221231", "235959", "CT"),
    ("B2", "Иванова^Ольга", "20221231", "090000", "CR"),
    ("C1", "Müller^Jürgen", "20190301", "100000", "US"),
    ("C2", "müller^Anna", "20180301", "100000", "US"),
]


@pytest.fixture
def populated(archive):  # type: ignore[no-untyped-def]
    for patient_id, name, date, time, modality in ROWS:
        study_uid = f"1.2.826.0.1.3680043.10.1.{patient_id.encode().hex()}"
        for number in (1, 2):  # two series each: counts must not double
            outcome = archive.store(
                make_instance(
                    study_uid=study_uid,
                    PatientID=patient_id,
                    PatientName=name,
                    StudyDate=date,
                    StudyTime=time,
                    Modality=modality if number == 1 else "SR",
                    SeriesNumber=number,
                )
            )
            assert outcome.status == "stored", outcome
    return archive


def patient_ids(archive, **query) -> list[str]:  # type: ignore[no-untyped-def]
    result = archive.search(Query(Level.STUDY, **query))
    return [m["00100020"]["Value"][0] for m in result.matches]


def test_default_study_order_is_newest_first(populated) -> None:
    assert patient_ids(populated) == ["B1", "B2", "A2", "A1", "C1", "C2"]


def test_order_by_patient_name_ignores_case_ascending_and_descending(populated) -> None:
    ascending = patient_ids(populated, order=(("PatientName", False),))
    assert ascending == ["C2", "C1", "A1", "A2", "B1", "B2"]  # müller^anna < müller^jürgen
    assert patient_ids(populated, order=(("PatientName", True),)) == ascending[::-1]


def test_order_by_date_then_time_ascending(populated) -> None:
    order = (("StudyDate", False), ("StudyTime", False))
    assert patient_ids(populated, order=order) == ["C2", "C1", "A1", "A2", "B2", "B1"]


def test_pages_of_an_ordered_query_neither_overlap_nor_skip(populated) -> None:
    order = (("StudyDate", True),)  # B1 and B2 share a date: the primary key breaks the tie
    seen = []
    for offset in range(0, 6, 2):
        seen += patient_ids(populated, order=order, limit=2, offset=offset)
    assert sorted(seen) == ["A1", "A2", "B1", "B2", "C1", "C2"]


def test_ordering_by_an_attribute_below_the_level_is_refused(populated) -> None:
    with pytest.raises(InvalidQuery, match="cannot sort"):
        patient_ids(populated, order=(("SeriesNumber", False),))


@pytest.mark.parametrize(
    "match",
    [
        {},
        {"PatientName": "иван*"},
        {"PatientName": "smith*"},
        {"ModalitiesInStudy": "CT"},
        {"ModalitiesInStudy": "SR"},
        {"ModalitiesInStudy": "CT\\MR", "StudyDate": "20200101-"},
        {"PatientID": "nobody"},
    ],
)
def test_count_equals_the_number_of_matches(populated, match) -> None:  # type: ignore[no-untyped-def]
    query = Query(Level.STUDY, match=match)
    assert populated.count(query) == len(populated.search(query).matches)
    assert populated.count(Query(Level.STUDY, match=match, limit=1, offset=1)) == populated.count(
        query
    )


def test_count_at_series_level_counts_series(populated) -> None:
    assert populated.count(Query(Level.SERIES)) == 12
    assert populated.count(Query(Level.SERIES, match={"Modality": "SR"})) == 6
