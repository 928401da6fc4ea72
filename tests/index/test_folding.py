"""The console's name search folds accents and scripts (``muller`` finds ``Müller``,
``Ivanov`` finds ``Иванов``); QIDO-RS and C-FIND matching (without ``folded``) does not."""

from __future__ import annotations

import pytest

from klinika.dicom.attributes import Level
from klinika.dicom.fold import fold, transliterate
from klinika.index.query import Query
from tests.factories import make_instance

NAMES = {
    "F1": "Müller^Hans",
    "F2": "Иванов^Пётр",
    "F3": "Ivanova^Anna",
    "F4": "Łukasz^Żółć",
    "F5": "Smith^John",
}


@pytest.fixture
def names(archive):  # type: ignore[no-untyped-def]
    outcomes = archive.store_many(
        [make_instance(PatientID=pid, PatientName=name) for pid, name in NAMES.items()]
    )
    assert {o.status for o in outcomes} == {"stored"}
    return archive


def found(archive, name: str, *, folded: bool = True) -> set[str]:  # type: ignore[no-untyped-def]
    query = Query(Level.STUDY, match={"PatientName": name}, fuzzy=True, folded=folded)
    return {m["00100020"]["Value"][0] for m in archive.search(query).matches}


def test_fold_and_transliterate() -> None:
    assert fold("Müller^Hans") == "muller^hans"
    assert fold("Иванов Пётр") == "ivanov petr"
    assert fold("Straße") == "strasse"
    assert transliterate("Щукина Юлия") == "Shchukina Iuliia"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("muller", {"F1"}),
        ("MÜLLER hans", {"F1"}),
        ("Ivanov", {"F2", "F3"}),  # Иванов (transliterated) and Ivanova
        ("иванов", {"F2", "F3"}),
        ("petr", {"F2"}),
        ("lukasz zolc", {"F4"}),
        ("smith jo", {"F5"}),
        ("nobody", set()),
    ],
)
def test_the_console_search_folds_accents_and_scripts(  # type: ignore[no-untyped-def]
    names, typed: str, expected: set[str]
) -> None:
    assert found(names, typed) == expected


def test_qido_fuzzy_matching_is_not_folded(names) -> None:  # type: ignore[no-untyped-def]
    assert found(names, "muller", folded=False) == set()
    assert found(names, "Ivanov", folded=False) == {"F3"}
    assert found(names, "Müller", folded=False) == {"F1"}
