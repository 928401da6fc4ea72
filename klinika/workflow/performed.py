"""MPPS instances on one database transaction: N-CREATE and N-SET, all or nothing.

References
----------
PS3.4 F.7.2.1 (N-CREATE), F.7.2.2 (N-SET), PS3.3 C.4.13-C.4.16 (the MPPS modules).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydicom.dataset import Dataset

from klinika.workflow.errors import (
    DuplicatePerformedStep,
    InvalidAttribute,
    PerformedStepFinal,
    UnknownPerformedStep,
)
from klinika.workflow.records import (
    DESK_STATES,
    STEP_STATUS_OF_PERFORMED,
    PerformedStatus,
    PerformedStep,
    StepStatus,
)
from klinika.workflow.schema import performed_steps, scheduled_steps

_P, _S = performed_steps.c, scheduled_steps.c
_FINAL = frozenset({PerformedStatus.COMPLETED, PerformedStatus.DISCONTINUED})
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_DATES = ("PerformedProcedureStepStartDate", "PerformedProcedureStepEndDate")
_TIMES = ("PerformedProcedureStepStartTime", "PerformedProcedureStepEndTime")


@dataclass(frozen=True)
class Outcome:
    step: PerformedStep
    patient_id: str | None


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value).strip()


def _check_values(dataset: Dataset) -> None:
    """Dates, times and the status of ``dataset``, where present."""
    for keyword in _DATES:
        value = _text(dataset, keyword)
        if value and not _DATE.match(value):
            raise InvalidAttribute(keyword, f"{keyword} {value!r} is not a date")
    for keyword in _TIMES:
        value = _text(dataset, keyword).replace(":", "")
        if value and not _TIME.match(value):
            raise InvalidAttribute(keyword, f"{keyword} {value!r} is not a time")
    if "PerformedProcedureStepStatus" in dataset:
        status = _text(dataset, "PerformedProcedureStepStatus")
        if status not in set(PerformedStatus):
            raise InvalidAttribute(
                "PerformedProcedureStepStatus",
                f"PerformedProcedureStepStatus {status!r} is not one of "
                f"{', '.join(PerformedStatus)}",
            )


def _linked_step(connection: sa.Connection, attributes: Dataset) -> sa.Row[Any] | None:
    """The scheduled step the Scheduled Step Attributes Sequence names: by step id, else by
    Study Instance UID, else by accession number (first item that names a known step)."""
    for item in attributes.get("ScheduledStepAttributesSequence") or []:
        for keyword, column in (
            ("ScheduledProcedureStepID", _S.step_id),
            ("StudyInstanceUID", _S.study_instance_uid),
            ("AccessionNumber", _S.accession_number),
        ):
            value = _text(item, keyword)
            if value:
                row = connection.execute(sa.select(scheduled_steps).where(column == value)).first()
                if row is not None:
                    return row
    return None


def _study_uid(attributes: Dataset, step: sa.Row[Any] | None) -> str | None:
    for item in attributes.get("ScheduledStepAttributesSequence") or []:
        if _text(item, "StudyInstanceUID"):
            return _text(item, "StudyInstanceUID")
    return step.study_instance_uid if step is not None else None


def _json(dataset: Dataset) -> str:
    return json.dumps(dataset.to_json_dict(bulk_data_threshold=1 << 20), sort_keys=True)


def _performed(row: sa.Row[Any]) -> PerformedStep:
    return PerformedStep(
        sop_instance_uid=row.sop_instance_uid,
        status=PerformedStatus(row.status),
        study_instance_uid=row.study_instance_uid,
        station_ae_title=row.station_ae_title,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create(connection: sa.Connection, uid: str, attributes: Dataset, now: int) -> Outcome:
    """Insert the MPPS ``uid`` IN PROGRESS and mark its scheduled step IN PROGRESS."""
    if "PerformedProcedureStepStatus" not in attributes:
        raise InvalidAttribute(
            "PerformedProcedureStepStatus", "PerformedProcedureStepStatus is missing", missing=True
        )
    _check_values(attributes)
    if _text(attributes, "PerformedProcedureStepStatus") != PerformedStatus.IN_PROGRESS:
        raise InvalidAttribute(
            "PerformedProcedureStepStatus", "an MPPS is created IN PROGRESS (PS3.4 F.7.2.1)"
        )
    if connection.execute(sa.select(_P.pk).where(_P.sop_instance_uid == uid)).first():
        raise DuplicatePerformedStep(f"MPPS {uid} exists already")
    step = _linked_step(connection, attributes)
    station = _text(attributes, "PerformedStationAETitle")[:16] or None
    connection.execute(
        sa.insert(performed_steps).values(
            sop_instance_uid=uid,
            status=PerformedStatus.IN_PROGRESS.value,
            step_pk=step.pk if step is not None else None,
            study_instance_uid=_study_uid(attributes, step),
            station_ae_title=station,
            attributes=_json(attributes),
            created_at=now,
            updated_at=now,
        )
    )
    if step is not None and step.status in {*DESK_STATES, StepStatus.IN_PROGRESS}:
        connection.execute(
            sa.update(scheduled_steps)
            .where(_S.pk == step.pk)
            .values(status=StepStatus.IN_PROGRESS.value, performed_uid=uid, updated_at=now)
        )
    row = connection.execute(sa.select(performed_steps).where(_P.sop_instance_uid == uid)).one()
    patient = _text(attributes, "PatientID") or (step.patient_id if step is not None else None)
    return Outcome(_performed(row), patient)


def update(connection: sa.Connection, uid: str, modifications: Dataset, now: int) -> Outcome:
    """Apply an N-SET to the MPPS ``uid``; a final status reaches its scheduled step."""
    row = connection.execute(
        sa.select(performed_steps).where(_P.sop_instance_uid == uid).with_for_update()
    ).first()  # locked (PostgreSQL) so that two N-SETs cannot both pass the state check
    if row is None:
        raise UnknownPerformedStep(f"no MPPS {uid}")
    if row.status in _FINAL:
        raise PerformedStepFinal(f"MPPS {uid} is {row.status}: it may no longer be updated")
    _check_values(modifications)
    merged = Dataset.from_json(json.loads(row.attributes))
    for element in modifications:
        if element.keyword == "ScheduledStepAttributesSequence":
            continue  # not to be changed by N-SET (PS3.4 F.7.2.2.1, Table F.7.2-1)
        merged[element.tag] = element
    status = _text(merged, "PerformedProcedureStepStatus") or row.status
    connection.execute(
        sa.update(performed_steps)
        .where(_P.pk == row.pk)
        .values(status=status, attributes=_json(merged), updated_at=now)
    )
    patient = _text(merged, "PatientID") or None
    if row.step_pk is not None:
        new = STEP_STATUS_OF_PERFORMED[PerformedStatus(status)]
        connection.execute(
            sa.update(scheduled_steps)
            .where(_S.pk == row.step_pk, _S.performed_uid == uid)
            .values(status=new.value, updated_at=now)
        )
        if patient is None:
            patient = connection.execute(
                sa.select(_S.patient_id).where(_S.pk == row.step_pk)
            ).scalar()
    updated = connection.execute(sa.select(performed_steps).where(_P.pk == row.pk)).one()
    return Outcome(_performed(updated), patient)
