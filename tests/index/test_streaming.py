"""The query engine's stream (what C-FIND and C-MOVE read): matches come in batches from a
cursor, so a consumer that stops early never makes the rest, and a large match count is
never held at once. Observed through the representative-values lookup, which the engine runs
once per batch for attributes the index does not hold."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from klinika.archive import Archive
from klinika.dicom.attributes import Level
from klinika.index.query import Query, search, search_stream
from tests.factories import make_instance

STUDIES = 130
CHUNK = 50


class StatementLog:
    """The statements an engine runs that read stored DICOM JSON by representative instance."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.batches = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "metadata_json" in statement and "min(" in statement.lower():
            self.batches += 1

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def many(archive: Archive) -> Archive:
    outcomes = archive.store_many(
        make_instance(PatientName="Stream^Batch", PatientID=f"B{n}", StationName=f"ST{n}")
        for n in range(STUDIES)
    )
    assert all(o.status == "stored" for o in outcomes)
    return archive


@pytest.fixture
def log(many: Archive) -> Iterator[StatementLog]:
    statements = StatementLog(many.database.reader)
    yield statements
    statements.close()


QUERY = Query(
    Level.STUDY,
    match={"PatientName": "Stream^Batch"},
    include=frozenset({"StationName"}),
    strict=False,
)


def test_the_stream_makes_one_batch_before_the_first_match(
    many: Archive, log: StatementLog
) -> None:
    with many.database.reader.connect() as connection:
        matches = search_stream(connection, QUERY, chunk=CHUNK)
        first = next(matches)
        assert log.batches == 1  # the other matches are not made yet
        rest = list(matches)
    assert log.batches == math.ceil(STUDIES / CHUNK)
    assert len(rest) + 1 == STUDIES
    stations = {m["00081010"]["Value"][0] for m in [first, *rest]}  # from stored JSON
    assert stations == {f"ST{n}" for n in range(STUDIES)}


def test_the_stream_answers_what_search_answers(many: Archive, log: StatementLog) -> None:
    with many.database.reader.connect() as connection:
        streamed = list(search_stream(connection, QUERY, chunk=CHUNK))
        assert log.batches == math.ceil(STUDIES / CHUNK)
        listed = search(connection, QUERY)
    assert streamed == listed.matches and not listed.more


def test_closing_the_stream_stops_the_query(many: Archive, log: StatementLog) -> None:
    with many.database.reader.connect() as connection:
        matches = search_stream(connection, QUERY, chunk=CHUNK)
        taken = [next(matches) for _ in range(CHUNK + 1)]  # into the second batch
        matches.close()
        assert list(matches) == []
    assert len(taken) == CHUNK + 1 and log.batches == 2
