"""What the workflow room hands out: scheduled steps, their details, performed steps.

References
----------
PS3.4 K.6.1.2 (Modality Worklist attributes), PS3.3 C.4.10 (Scheduled Procedure Step),
PS3.3 C.4.11 (Requested Procedure), PS3.5 §6.2 (value representations and lengths).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any

from klinika.workflow.errors import InvalidStep


class StepStatus(StrEnum):
    """Where a scheduled procedure step stands. The first two are set by the front desk, the
    others by the modality's MPPS (or a cancellation: DISCONTINUED)."""

    SCHEDULED = "SCHEDULED"
    ARRIVED = "ARRIVED"
    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


class PerformedStatus(StrEnum):
    """Performed Procedure Step Status (0040,0252) of an MPPS (PS3.3 C.4.14)."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


#: What a scheduled step becomes when the MPPS that performs it reaches each status.
STEP_STATUS_OF_PERFORMED: dict[PerformedStatus, StepStatus] = {
    PerformedStatus.IN_PROGRESS: StepStatus.IN_PROGRESS,
    PerformedStatus.COMPLETED: StepStatus.COMPLETED,
    PerformedStatus.DISCONTINUED: StepStatus.DISCONTINUED,
}

#: States a step may no longer leave.
FINAL_STATES = frozenset({StepStatus.COMPLETED, StepStatus.DISCONTINUED})
#: States the front desk may set by editing.
DESK_STATES = frozenset({StepStatus.SCHEDULED, StepStatus.ARRIVED})

_CS = re.compile(r"^[A-Z0-9_ ]*$")
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
#: (maximum length, what it holds) of the text fields, after PS3.5 Table 6.2-1
_LIMITS: dict[str, tuple[int, str]] = {
    "patient_id": (64, "LO"),
    "patient_name": (64, "PN"),
    "accession_number": (16, "SH"),
    "requested_procedure_id": (16, "SH"),
    "requested_procedure_description": (64, "LO"),
    "procedure_code_value": (16, "SH"),
    "procedure_code_scheme": (16, "SH"),
    "procedure_code_meaning": (64, "LO"),
    "modality": (16, "CS"),
    "station_ae_title": (16, "AE"),
    "performing_physician": (64, "PN"),
    "referring_physician": (64, "PN"),
    "step_description": (64, "LO"),
    "step_id": (16, "SH"),
}


@dataclass(frozen=True)
class StepDetails:
    """What the front desk (or an order) says about one scheduled procedure step.

    ``accession_number``, ``requested_procedure_id`` and ``step_id`` are generated when left
    empty. Dates are ``YYYYMMDD``, times ``HHMM[SS]``; names are DICOM PN (``Family^Given``),
    any script.
    """

    patient_id: str
    patient_name: str
    modality: str
    start_date: str
    start_time: str
    patient_birth_date: str = ""
    patient_sex: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    requested_procedure_description: str = ""
    procedure_code_value: str = ""
    procedure_code_scheme: str = ""
    procedure_code_meaning: str = ""
    station_ae_title: str = ""
    performing_physician: str = ""
    referring_physician: str = ""
    step_description: str = ""
    step_id: str = ""

    def checked(self) -> StepDetails:
        """These details trimmed and validated.

        Raises
        ------
        InvalidStep
            Naming the first field that is missing or malformed.
        """
        values = {f.name: str(getattr(self, f.name) or "").strip() for f in fields(self)}
        values["modality"] = values["modality"].upper()
        values["patient_sex"] = values["patient_sex"].upper()
        values["start_time"] = values["start_time"].replace(":", "")
        values["start_date"] = values["start_date"].replace("-", "")
        values["patient_birth_date"] = values["patient_birth_date"].replace("-", "")
        for name in ("patient_id", "patient_name", "modality", "start_date", "start_time"):
            if not values[name]:
                raise InvalidStep(f"{name} is required")
        for name, (limit, vr) in _LIMITS.items():
            value = values[name]
            if len(value) > limit:
                raise InvalidStep(f"{name} is longer than {limit} characters")
            if "\\" in value or any(ord(c) < 32 for c in value):
                raise InvalidStep(f"{name} holds a backslash or a control character")
            if vr in ("CS", "AE") and value and not (_CS.match(value) and value.isascii()):
                raise InvalidStep(f"{name} {value!r}: capital letters, digits, _ and space only")
        for name in ("start_date", "patient_birth_date"):
            value = values[name]
            if value:
                try:
                    if not _DATE.match(value):
                        raise ValueError(value)
                    dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
                except ValueError as exc:
                    raise InvalidStep(f"{name} {value!r} is not a date (YYYYMMDD)") from exc
        if not _TIME.match(values["start_time"]) or not (
            int(values["start_time"][:2]) < 24
            and int(values["start_time"][2:4] or 0) < 60
            and int(values["start_time"][4:6] or 0) < 60
        ):
            raise InvalidStep(f"start_time {values['start_time']!r} is not a time (HHMM[SS])")
        if values["patient_sex"] not in ("", "M", "F", "O"):
            raise InvalidStep("patient_sex is M, F, O or empty")
        return replace(self, **values)


@dataclass(frozen=True)
class PerformedStep:
    """One MPPS instance as the modality reported it."""

    sop_instance_uid: str
    status: PerformedStatus
    study_instance_uid: str | None
    station_ae_title: str | None
    created_at: int
    updated_at: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScheduledStep:
    """A scheduled procedure step as stored: its details, status and what became of it.

    ``performed`` is the MPPS that performs it (if any); ``stored_study_uid`` is the study
    this step's images arrived in, once the index holds it.
    """

    details: StepDetails
    status: StepStatus
    study_instance_uid: str
    created_at: int
    updated_at: int
    performed: PerformedStep | None = None
    stored_study_uid: str | None = None

    @property
    def step_id(self) -> str:
        return self.details.step_id

    @property
    def patient_id(self) -> str:
        return self.details.patient_id

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``/api/worklist``."""
        return {
            **asdict(self.details),
            "status": self.status.value,
            "study_instance_uid": self.study_instance_uid,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "performed": self.performed.as_dict() if self.performed else None,
            "stored_study_uid": self.stored_study_uid,
        }
