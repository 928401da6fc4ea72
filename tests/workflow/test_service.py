"""The :class:`~klinika.workflow.Schedule` service on SQLite and PostgreSQL: MPPS changes are
all or nothing, final states stay final, storage commitment tells held from missing and
mismatched instances, and the worklist matches by the index's rules."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from klinika.audit import Actor
from klinika.errors import InvalidQuery
from klinika.workflow import (
    DuplicatePerformedStep,
    InvalidAttribute,
    PerformedStepFinal,
    StepDetails,
    StepStateError,
    StepStatus,
    UnknownPerformedStep,
)
from tests.factories import make_instance
from tests.workflow.conftest import CYRILLIC_NAME, Installation

DESK = Actor("desk", "operator")
CT01 = Actor("CT01", "modality")


def details(**overrides: str) -> StepDetails:
    values = {
        "patient_id": "PAT-17",
        "patient_name": CYRILLIC_NAME,
        "modality": "CT",
        "station_ae_title": "CT01",
        "start_date": "20261202",
        "start_time": "0930",
    }
    values.update(overrides)
    return StepDetails(**values)


def created(step_id: str, status: str = "IN PROGRESS") -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PatientID = "PAT-17"
    item = Dataset()
    item.ScheduledProcedureStepID = step_id
    ds.ScheduledStepAttributesSequence = [item]
    return ds


def test_mpps_changes_are_all_or_nothing(site: Installation) -> None:
    schedule = site.runtime.schedule
    step = schedule.create(details(), DESK)
    uid = generate_uid()
    performed = schedule.start_performed(uid, created(step.step_id), CT01)
    assert performed.status == "IN PROGRESS"
    assert schedule.get(step.step_id, DESK).status == StepStatus.IN_PROGRESS
    with pytest.raises(DuplicatePerformedStep):
        schedule.start_performed(uid, created(step.step_id), CT01)
    # the desk may no longer change or cancel a step the modality started
    with pytest.raises(StepStateError):
        schedule.cancel(step.step_id, DESK)

    bad = Dataset()
    bad.PerformedProcedureStepStatus = "COMPLETED"
    bad.PerformedProcedureStepEndDate = "2026-12-02"  # not a DA: nothing is applied
    with pytest.raises(InvalidAttribute):
        schedule.update_performed(uid, bad, CT01)
    assert schedule.get(step.step_id, DESK).performed.status == "IN PROGRESS"  # type: ignore[union-attr]

    done = Dataset()
    done.PerformedProcedureStepStatus = "DISCONTINUED"
    assert schedule.update_performed(uid, done, CT01).status == "DISCONTINUED"
    assert schedule.get(step.step_id, DESK).status == StepStatus.DISCONTINUED
    with pytest.raises(PerformedStepFinal):
        schedule.update_performed(uid, done, CT01)
    with pytest.raises(UnknownPerformedStep):
        schedule.update_performed(generate_uid(), done, CT01)


def test_storage_commitment_tells_held_from_missing_and_mismatched(site: Installation) -> None:
    data = make_instance()
    outcome = site.runtime.archive.store(data)
    assert outcome.accepted
    ct = "1.2.840.10008.5.1.4.1.1.2"
    missing = generate_uid()
    result = site.runtime.schedule.commitment(
        "1.2.3",
        [
            (ct, outcome.sop_instance_uid),
            (ct, missing),
            ("1.2.840.10008.5.1.4.1.1.4", outcome.sop_instance_uid),
        ],
        CT01,
    )
    assert result.committed == ((ct, outcome.sop_instance_uid),)
    assert result.failed == (
        (ct, missing, "no-such-instance"),
        ("1.2.840.10008.5.1.4.1.1.4", outcome.sop_instance_uid, "class-instance-conflict"),
    )


def test_worklist_matching_and_validation(site: Installation) -> None:
    schedule = site.runtime.schedule
    first = schedule.create(details(), DESK)
    schedule.create(details(patient_name="Ivanov^Ivan", modality="MR", start_time="1500"), DESK)
    found = schedule.worklist({"PatientName": "ИВАНОВА*", "Modality": "CT"}, CT01)
    assert [s.step_id for s in found] == [first.step_id]
    later = schedule.worklist({"ScheduledProcedureStepStartTime": "1200-"}, CT01)
    assert [s.details.patient_name for s in later] == ["Ivanov^Ivan"]
    with pytest.raises(InvalidQuery):
        schedule.worklist({"ScheduledProcedureStepStartDate": "yesterday"}, CT01)


def test_a_study_with_its_own_uid_is_linked_by_accession_and_patient(site: Installation) -> None:
    schedule = site.runtime.schedule
    step = schedule.create(details(accession_number="ACC-77"), DESK)
    other = make_instance(AccessionNumber="ACC-77", PatientID="SOMEONE-ELSE")
    assert site.runtime.archive.store(other).accepted
    assert schedule.get(step.step_id, DESK).stored_study_uid is None  # not this patient's
    study_uid = generate_uid()
    mine = make_instance(study_uid=study_uid, AccessionNumber="ACC-77", PatientID="PAT-17")
    assert site.runtime.archive.store(mine).accepted
    assert schedule.get(step.step_id, DESK).stored_study_uid == study_uid
