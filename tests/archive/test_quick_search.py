"""``Archive.quick_search_json``: the answer of ``search_json`` when it is quick, else None."""

from __future__ import annotations

from klinika.archive import Archive
from klinika.archive.retrieve import QUICK_SEARCH_LIMIT
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from tests.factories import make_instance


def test_quick_search_answers_as_search_json_on_a_local_index(archive: Archive) -> None:
    archive.store_many([make_instance(Modality="CT") for _ in range(3)])
    query = Query(Level.STUDY, match={}, limit=25)
    quick = archive.quick_search_json(query, 10.0, retrieve_base="http://pacs/dicom-web")
    if archive.retrieval.database.local:
        assert quick == archive.search_json(query, retrieve_base="http://pacs/dicom-web")
    else:  # a server's reads may wait on the network: never on the caller's event loop
        assert quick is None


def test_quick_search_declines_a_large_limit(archive: Archive) -> None:
    archive.store_many([make_instance()])
    assert archive.quick_search_json(Query(Level.STUDY, limit=QUICK_SEARCH_LIMIT + 1), 10.0) is None


def test_quick_search_declines_a_search_without_a_limit(archive: Archive) -> None:
    archive.store_many([make_instance()])
    assert archive.quick_search_json(Query(Level.STUDY), 10.0) is None
