"""The query engine keeps the plan of each distinct query (statement and answer layout): a
repeated query must still see the index as it is now, and queries that differ in any value,
key, include, page or order must never share a plan."""

from __future__ import annotations

from klinika.archive import Archive
from klinika.dicom.attributes import Level
from klinika.index.query import Query, _plan, search, search_json, search_stream
from tests.factories import make_instance


def _patient_ids(archive: Archive, query: Query) -> list[str]:
    with archive.database.reader.connect() as connection:
        return [m["00100020"]["Value"][0] for m in search(connection, query).matches]


def test_a_repeated_query_sees_what_was_stored_after_its_plan_was_made(
    archive: Archive,
) -> None:
    query = Query(Level.STUDY, match={"PatientName": "Plan^Cache*"})
    archive.store_many([make_instance(PatientName="Plan^Cache", PatientID="P1")])
    assert _patient_ids(archive, query) == ["P1"]
    plan = _plan(query, one_more=True)

    archive.store_many([make_instance(PatientName="Plan^Cache", PatientID="P2")])
    same = Query(Level.STUDY, match={"PatientName": "Plan^Cache*"})
    assert _plan(same, one_more=True) is plan
    assert sorted(_patient_ids(archive, same)) == ["P1", "P2"]
    with archive.database.reader.connect() as connection:
        assert len(list(search_stream(connection, same))) == 2
        assert search_json(connection, same).body.count(b'"00100020"') == 2


def test_queries_that_differ_in_anything_get_their_own_answers(archive: Archive) -> None:
    archive.store_many(
        [
            make_instance(
                PatientName="Plan^Differ",
                PatientID=f"D{n}",
                StudyDate=f"2024010{n}",
                StationName=f"ST{n}",
            )
            for n in range(1, 4)
        ]
    )
    base = {"PatientName": "Plan^Differ"}
    assert _patient_ids(archive, Query(Level.STUDY, match={**base, "PatientID": "D1"})) == ["D1"]
    assert _patient_ids(archive, Query(Level.STUDY, match={**base, "PatientID": "D2"})) == ["D2"]
    newest_first = Query(Level.STUDY, match=base)
    assert _patient_ids(archive, newest_first) == ["D3", "D2", "D1"]
    oldest_first = Query(Level.STUDY, match=base, order=(("StudyDate", False),))
    assert _patient_ids(archive, oldest_first) == ["D1", "D2", "D3"]
    assert _patient_ids(archive, Query(Level.STUDY, match=base, limit=1)) == ["D3"]
    assert _patient_ids(archive, Query(Level.STUDY, match=base, limit=1, offset=1)) == ["D2"]
    dated = Query(Level.STUDY, match={**base, "StudyDate": "20240102-"})
    assert _patient_ids(archive, dated) == ["D3", "D2"]

    with archive.database.reader.connect() as connection:
        plain = search(connection, Query(Level.STUDY, match={**base, "PatientID": "D1"}))
        station = search(
            connection,
            Query(
                Level.STUDY,
                match={**base, "PatientID": "D1"},
                include=frozenset({"StationName"}),
            ),
        )
    assert "00081010" not in plain.matches[0]
    assert station.matches[0]["00081010"]["Value"] == ["ST1"]
