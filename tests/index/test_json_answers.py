"""The query engine's answers written straight to JSON (what QIDO-RS sends) are the objects
:func:`search` returns (what C-FIND, FHIR and the pages read), plus each answer's RetrieveURL:
one engine, two ways out, the same answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from klinika.archive import Archive
from klinika.dicom.attributes import Level
from klinika.index.answers import (
    column_elements,
    column_texts,
    element,
    field_texts,
    value_text,
)
from klinika.index.query import Query, search, search_json
from tests.factories import make_instance

BASE = "https://pacs.example/dicom-web"
STATION = frozenset({"StationName"})


@pytest.fixture
def varied(archive: Archive) -> Archive:
    """Studies with Latin and Cyrillic names, empty and missing values, several modalities
    in one study, multi-valued and multi-group attributes, and text that JSON must escape."""
    two_modalities = "1.2.826.0.1.3680043.8.498.77001"
    instances = [
        make_instance(PatientName="Garcia^Anna", PatientID="G1", StudyDescription="CT chest"),
        make_instance(
            PatientName="Петров^Пётр",
            PatientID="P1",
            StudyDescription='Грудь "обзор"\tслева',
            ReferringPhysicianName="Иванов^Иван",
            StationName="СТАНЦИЯ-1",
            ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        ),
        make_instance(
            PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう",
            PatientID="Y1",
            PatientBirthDate="",
            StudyDate="",
            AccessionNumber="",
            InstitutionName="Hôpital \\ Nord",
        ),
        make_instance(study_uid=two_modalities, PatientID="M1", PatientName="Müller^Jürgen"),
        make_instance(
            study_uid=two_modalities,
            PatientID="M1",
            PatientName="Müller^Jürgen",
            Modality="MR",
            SeriesDescription="T1 \\ axial",
        ),
        make_instance(PatientName="", PatientID="E1", StudyDescription="", PatientSex=""),
    ]
    for outcome in archive.store_many(instances):
        assert outcome.status == "stored", outcome
    return archive


def _retrieve_url(match: dict[str, Any], level: Level) -> str:
    def uid(tag: str) -> str:
        return str(match[tag]["Value"][0])

    url = f"{BASE}/studies/{uid('0020000D')}"
    if level >= Level.SERIES:
        url += f"/series/{uid('0020000E')}"
    if level == Level.IMAGE:
        url += f"/instances/{uid('00080018')}"
    return url


QUERIES = {
    "studies": Query(Level.STUDY),
    "studies-all": Query(Level.STUDY, include="all"),
    "studies-unindexed-count": Query(
        Level.STUDY, include=STATION | {"NumberOfPatientRelatedStudies"}
    ),
    "studies-cyrillic": Query(Level.STUDY, match={"PatientName": "Пет*"}),
    "studies-modality-all": Query(Level.STUDY, match={"ModalitiesInStudy": "MR"}, include="all"),
    "studies-date-unindexed": Query(
        Level.STUDY, match={"StudyDate": "20200101-", "StationName": ""}
    ),
    "studies-page": Query(Level.STUDY, limit=2, offset=1),
    "series-all": Query(Level.SERIES, include_parents=True, include="all"),
    "series-unindexed": Query(Level.SERIES, match={"Modality": "MR"}, include=STATION),
    "instances-all": Query(Level.IMAGE, include="all"),
    "instances-unindexed": Query(
        Level.IMAGE, match={"PatientID": "P1"}, include=STATION, include_parents=True
    ),
    "patients-all": Query(Level.PATIENT, include="all"),
}


@pytest.mark.parametrize("query", QUERIES.values(), ids=QUERIES.keys())
def test_json_answers_are_the_search_objects_with_their_retrieve_url(
    varied: Archive, query: Query
) -> None:
    with varied.database.reader.connect() as connection:
        objects = search(connection, query)
        plain = search_json(connection, query)
        with_urls = search_json(connection, query, retrieve_base=BASE)
    assert objects.matches, "the query matches something"
    assert json.loads(plain.body) == objects.matches
    assert plain.more == with_urls.more == objects.more
    expected = objects.matches
    if query.level != Level.PATIENT:  # a patient has no WADO-RS resource
        expected = [
            {**match, "00081190": {"vr": "UR", "Value": [_retrieve_url(match, query.level)]}}
            for match in objects.matches
        ]
    answers = json.loads(with_urls.body)
    assert answers == expected
    assert all(list(answer) == sorted(answer) for answer in answers)  # tag order, PS3.18 F.2


def test_json_answers_keep_every_kind_of_value(varied: Archive) -> None:
    body = varied.search_json(Query(Level.IMAGE, include="all", include_parents=True)).body
    answers = {a["00100020"]["Value"][0]: a for a in json.loads(body) if "Value" in a["00100020"]}
    yamada = answers["Y1"]["00100010"]["Value"][0]
    assert yamada == {
        "Alphabetic": "Yamada^Tarou",
        "Ideographic": "山田^太郎",
        "Phonetic": "やまだ^たろう",
    }
    assert answers["Y1"]["00080020"] == {"vr": "DA"}  # empty: no Value
    assert answers["P1"]["00081030"]["Value"] == ['Грудь "обзор"\tслева']
    assert answers["P1"]["00080008"]["Value"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert answers["E1"]["00100010"] == {"vr": "PN"}
    studies = json.loads(varied.search_json(Query(Level.STUDY, match={"PatientID": "M1"})).body)
    assert sorted(studies[0]["00080061"]["Value"]) == ["CT", "MR"]


_VRS = st.sampled_from(["PN", "CS", "LO", "UI", "DA", "LT", "ST", "UT", "IS", "SH", "DS"])
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**31), 2**31),
    st.lists(_TEXT, min_size=1, max_size=3).map("\\".join),
    st.lists(st.sampled_from(["A^B", "=", "", "山田", '"', "\\"]), max_size=4).map("".join),
)


@given(vr=_VRS, value=_VALUES, splits=st.booleans())
def test_the_short_ways_give_the_element(vr: str, value: Any, splits: bool) -> None:
    try:
        expected = element(vr, value, splits)
    except ValueError:  # text that is no number in a numeric VR: the object path refuses too
        return
    field = ("00100010", vr, splits, 0)
    assert column_elements(field, [value]) == [expected]
    (text,) = column_texts(field, field_texts("00100010", vr), [value])
    assert json.loads("{" + text + "}") == {"00100010": expected}
    items = value_text(vr, value, splits)
    if items is not None:  # None: the caller writes the element object instead
        assert json.loads(f'{{"vr":"{vr}","Value":[{items}]}}') == expected
