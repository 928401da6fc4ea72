"""The query engine's matching rules (PS3.4 C.2.2.2), one test per rule."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klinika.dicom.attributes import Level
from klinika.errors import InvalidQuery
from klinika.index.matching import normalize_name
from klinika.index.query import Query
from tests.factories import make_instance


def study_ids(archive, level=Level.STUDY, **match) -> set[str]:  # type: ignore[no-untyped-def]
    result = archive.search(Query(level, match=match, include_parents=True))
    return {m["00100020"]["Value"][0] for m in result.matches if "Value" in m.get("00100020", {})}


@pytest.fixture
def populated(archive):  # type: ignore[no-untyped-def]
    rows = [
        dict(
            PatientID="A1",
            PatientName="SMITH^JOHN",
            StudyDate="20200115",
            StudyTime="081500",
            AccessionNumber="ACC1",
            Modality="CT",
        ),
        dict(
            PatientID="A2",
            PatientName="Smithers^Anna",
            StudyDate="20210610",
            StudyTime="140000",
            AccessionNumber="ACC2",
            Modality="MR",
        ),
        dict(
            PatientID="B1",
            PatientName="Иванов^Иван",
            StudyDate="20221231",
            StudyTime="235959",
            AccessionNumber="ACC3",
            Modality="CR",
        ),
        dict(
            PatientID="B22",
            PatientName="Müller^Jürgen",
            StudyDate="20190301",
            StudyTime="100000",
            AccessionNumber="ACC4",
            Modality="US",
            StationName="ROOM-7",
        ),
    ]
    for row in rows:
        outcome = archive.store(make_instance(**row))
        assert outcome.status == "stored", outcome
    return archive


def test_single_value_matching_is_exact(populated) -> None:
    assert study_ids(populated, PatientID="A1") == {"A1"}
    assert study_ids(populated, AccessionNumber="ACC") == set()


def test_universal_matching_returns_everything(populated) -> None:
    assert study_ids(populated, PatientName="") == {"A1", "A2", "B1", "B22"}
    assert study_ids(populated, PatientName="*") == {"A1", "A2", "B1", "B22"}


def test_wildcard_star_and_question_mark(populated) -> None:
    assert study_ids(populated, PatientID="B*") == {"B1", "B22"}
    assert study_ids(populated, PatientID="B?") == {"B1"}


def test_person_name_matching_is_case_insensitive(populated) -> None:
    assert study_ids(populated, PatientName="smith*") == {"A1", "A2"}
    assert study_ids(populated, PatientName="smith^john") == {"A1"}


def test_wildcard_matches_cyrillic_and_latin1_names(populated) -> None:
    assert study_ids(populated, PatientName="ива*") == {"B1"}
    assert study_ids(populated, PatientName="MÜLLER*") == {"B22"}


def test_other_strings_are_case_sensitive(populated) -> None:
    assert study_ids(populated, AccessionNumber="acc1") == set()


def test_uid_list_matching_with_backslash_and_comma(populated) -> None:
    studies = populated.search(Query(Level.STUDY)).matches
    uids = [m["0020000D"]["Value"][0] for m in studies[:2]]
    expected = {m["00100020"]["Value"][0] for m in studies[:2]}
    assert study_ids(populated, StudyInstanceUID="\\".join(uids)) == expected
    assert study_ids(populated, StudyInstanceUID=",".join(uids)) == expected


def test_date_range_closed_and_open(populated) -> None:
    assert study_ids(populated, StudyDate="20200101-20211231") == {"A1", "A2"}
    assert study_ids(populated, StudyDate="-20200115") == {"A1", "B22"}
    assert study_ids(populated, StudyDate="20220101-") == {"B1"}


def test_time_range_includes_the_upper_minute(populated) -> None:
    assert study_ids(populated, StudyTime="0800-1400") == {"A1", "A2", "B22"}
    assert study_ids(populated, StudyTime="2359-") == {"B1"}


def test_modalities_in_study_matches_any_series(populated) -> None:
    assert study_ids(populated, ModalitiesInStudy="CT") == {"A1"}
    assert study_ids(populated, ModalitiesInStudy="CT\\MR") == {"A1", "A2"}


def test_fuzzy_matching_finds_a_given_name(populated) -> None:
    result = populated.search(Query(Level.STUDY, match={"PatientName": "john"}, fuzzy=True))
    assert [m["00100020"]["Value"][0] for m in result.matches] == ["A1"]


def test_includefield_reads_attributes_the_index_lacks(populated) -> None:
    result = populated.search(
        Query(Level.STUDY, match={"PatientID": "B22"}, include=frozenset({"StationName"}))
    )
    assert result.matches[0]["00081010"] == {"vr": "SH", "Value": ["ROOM-7"]}


def test_limit_offset_and_more_flag(populated) -> None:
    first = populated.search(Query(Level.STUDY, limit=3))
    rest = populated.search(Query(Level.STUDY, limit=3, offset=3))
    assert (len(first.matches), first.more) == (3, True)
    assert (len(rest.matches), rest.more) == (1, False)
    ids = [m["00100020"]["Value"][0] for m in first.matches + rest.matches]
    assert sorted(ids) == ["A1", "A2", "B1", "B22"]


def test_series_and_instance_levels(populated) -> None:
    assert study_ids(populated, Level.SERIES, Modality="MR") == {"A2"}
    assert len(populated.search(Query(Level.IMAGE, match={"SeriesNumber": "1"})).matches) == 4


@pytest.mark.parametrize(
    "match",
    [
        {"StudyDate": "2020-01-01"},
        {"StudyDate": "2020"},
        {"NotAnAttribute": "x"},
        {"SeriesNumber": "one"},
        {"StationName": "ROOM-7"},
    ],
)
def test_bad_queries_are_refused_with_a_reason(populated, match) -> None:
    with pytest.raises(InvalidQuery):
        populated.search(Query(Level.STUDY, match=match))


def test_unsupported_keys_are_ignored_when_not_strict(populated) -> None:
    query = Query(Level.STUDY, match={"StationName": "ROOM-7"}, strict=False)
    assert len(populated.search(query).matches) == 4


NAME_ALPHABET = st.sampled_from(list("abAB^%_ ж"))
PATTERN_ALPHABET = st.sampled_from(list("abAB^%_ ж*?"))


@settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    names=st.lists(
        st.text(NAME_ALPHABET, min_size=1, max_size=6),
        min_size=1,
        max_size=5,
        unique_by=lambda s: s.casefold(),
    ),
    pattern=st.text(PATTERN_ALPHABET, min_size=1, max_size=5),
)
def test_wildcard_matching_agrees_with_a_regex_reference(archive, names, pattern) -> None:
    """Property: PN wildcard matching equals a regular-expression reference (casefolded)."""
    tag = "p" + str(abs(hash((tuple(names), pattern))) % 10**12)
    for i, name in enumerate(names):
        archive.store(make_instance(PatientName=name, PatientID=f"{tag}-{i}", AccessionNumber=tag))
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in normalize_name(pattern)
    )
    expected = {
        f"{tag}-{i}"
        for i, n in enumerate(names)
        if re.fullmatch(regex, normalize_name(n), flags=re.S)
    }
    if normalize_name(pattern) in ("", "*"):
        return  # universal matching, covered above
    got = study_ids(archive, PatientName=pattern, AccessionNumber=tag)
    assert got == expected
