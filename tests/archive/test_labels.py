"""Labels on studies through the service the worklist uses, on SQLite and PostgreSQL: cleaned
and validated, added once, listed and counted, found by label, removed, dropped with a deleted
study, and every change an audit event."""

from __future__ import annotations

import json

import pytest

from klinika.archive.labels import InvalidLabel, StudyLabels, clean_label
from klinika.audit import Actor, AuditFilter
from klinika.errors import NotFound
from tests.auth.conftest import Installation, install, site  # noqa: F401  (fixtures)
from tests.reports.conftest import store_study

DOCTOR = Actor("irina", "doctor")


def test_labels_are_added_once_found_counted_removed_and_go_with_the_study(
    site: Installation,  # noqa: F811
) -> None:
    runtime = site.runtime
    labels = StudyLabels(runtime.database, runtime.audit)
    first, second = store_study(runtime.archive), store_study(runtime.archive)
    assert labels.add(first.study_uid, "  Second   opinion ", DOCTOR) == "Second opinion"
    labels.add(first.study_uid, "срочно", DOCTOR)
    labels.add(first.study_uid, "срочно", DOCTOR)  # again: no change
    labels.add(second.study_uid, "срочно", DOCTOR)
    assert labels.of([first.study_uid, second.study_uid, "1.2.3"]) == {
        first.study_uid: ["Second opinion", "срочно"],
        second.study_uid: ["срочно"],
    }
    assert labels.known() == [("Second opinion", 1), ("срочно", 2)]
    assert sorted(labels.studies("срочно")) == sorted([first.study_uid, second.study_uid])
    labels.remove(second.study_uid, "срочно", DOCTOR)
    assert labels.studies("срочно") == [first.study_uid]
    runtime.archive.delete(first.study_uid)
    assert labels.known() == []  # a deleted study's labels go with it

    events, _ = runtime.audit.search(AuditFilter(action="study:label"), limit=100)
    changes = [(event.outcome, json.loads(event.details)) for event in reversed(events)]
    assert changes[:4] == [
        ("success", {"added": "Second opinion", "changed": True}),
        ("success", {"added": "срочно", "changed": True}),
        ("success", {"added": "срочно", "changed": False}),
        ("success", {"added": "срочно", "changed": True}),
    ]
    assert changes[4] == ("success", {"removed": "срочно", "changed": True})
    assert {event.patient_id for event in events} == {"RU-0042"}


@pytest.mark.parametrize("text", ["", "   ", "x" * 33, "<b>", "a;b", "-dash-first"])
def test_invalid_labels_are_refused(text: str) -> None:
    with pytest.raises(InvalidLabel):
        clean_label(text)


def test_a_label_on_an_unknown_study_is_refused_and_recorded(
    site: Installation,  # noqa: F811
) -> None:
    labels = StudyLabels(site.runtime.database, site.runtime.audit)
    with pytest.raises(NotFound):
        labels.add("1.2.3.4.5", "teaching", DOCTOR)
    events, _ = site.runtime.audit.search(AuditFilter(action="study:label"), limit=10)
    assert [event.outcome for event in events] == ["failure"]
