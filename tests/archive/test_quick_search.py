"""``Archive.quick_search_json``: QIDO-RS runs a bounded search on the event loop under a time
budget and falls back to a thread when the budget runs out; both give the same answers."""

from __future__ import annotations

import json

import pytest

from klinika.archive import Archive
from klinika.archive.retrieve import QUICK_SEARCH_LIMIT
from klinika.db import engine
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from tests.factories import make_instance


def test_a_quick_search_past_its_budget_declines_and_the_full_search_answers(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the budget is looked at every 100 SQLite steps, not 10,000: this small index's search
    # then certainly meets a check after its (zero) budget ran out
    monkeypatch.setattr(engine, "BUDGET_CHECK_STEPS", 100)
    archive.store_many(
        [make_instance(PatientName=f"Budget^Patient{n}", PatientID=f"B{n}") for n in range(105)]
    )
    query = Query(Level.STUDY, match={"PatientName": "Budget*"}, limit=QUICK_SEARCH_LIMIT)
    full = archive.search_json(query)
    assert len(json.loads(full.body)) == QUICK_SEARCH_LIMIT and full.more
    if not archive.database.local:  # a server's index may wait on the network: never inline
        assert archive.quick_search_json(query, 10.0) is None
        return
    assert archive.quick_search_json(query, 0.0) is None  # interrupted at its first check
    quick = archive.quick_search_json(query, 10.0)
    assert quick is not None and quick == full
    wider = Query(Level.STUDY, match={"PatientName": "Budget*"}, limit=QUICK_SEARCH_LIMIT + 1)
    assert archive.quick_search_json(wider, 10.0) is None  # too many answers to hold the loop
    unbounded = Query(Level.STUDY, match={"PatientName": "Budget*"})
    assert archive.quick_search_json(unbounded, 10.0) is None
