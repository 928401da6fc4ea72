"""``/api/worklist``: scheduled procedure steps for the front desk and order systems.

Each route parses, calls one :class:`~klinika.workflow.Schedule` method and answers; the
service writes the audit events (``workflow:read``, ``workflow:schedule``) with the patient id.
The REST path keeps the name the issue gave it; the console calls these "scheduled
procedures", since its "Worklist" page is the radiologists' reading list.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from klinika.auth.http import Guard, client_address
from klinika.auth.models import Principal
from klinika.workflow import Schedule, StepDetails, StepFilter, StepStatus


class StepBody(BaseModel):
    """One scheduled procedure step (DICOM PN names: ``Family^Given``, any script)."""

    patient_id: str = Field(max_length=64)
    patient_name: str = Field(max_length=64)
    patient_birth_date: str = Field("", max_length=10, description="YYYYMMDD")
    patient_sex: str = Field("", max_length=1, description="M, F, O or empty")
    accession_number: str = Field("", max_length=16, description="generated when empty")
    requested_procedure_id: str = Field("", max_length=16, description="the accession if empty")
    requested_procedure_description: str = Field("", max_length=64)
    procedure_code_value: str = Field("", max_length=16)
    procedure_code_scheme: str = Field("", max_length=16)
    procedure_code_meaning: str = Field("", max_length=64)
    modality: str = Field(max_length=16, description="CT, MR, US, CR, DX …")
    station_ae_title: str = Field("", max_length=16, description="the modality's AE title")
    start_date: str = Field(max_length=10, description="YYYYMMDD")
    start_time: str = Field(max_length=16, description="HHMM[SS]")
    performing_physician: str = Field("", max_length=64)
    referring_physician: str = Field("", max_length=64)
    step_description: str = Field("", max_length=64)
    step_id: str = Field("", max_length=16, description="generated when empty")

    def details(self) -> StepDetails:
        return StepDetails(**self.model_dump(exclude={"status"}))


class StepUpdate(StepBody):
    status: StepStatus | None = Field(None, description="SCHEDULED or ARRIVED")


def create_workflow_router(schedule: Schedule, guard: Guard) -> APIRouter:
    router = APIRouter(prefix="/api/worklist", tags=["workflow"])
    Reader = Annotated[Principal, Depends(guard("workflow:read"))]
    Scheduler = Annotated[Principal, Depends(guard("workflow:schedule"))]

    @router.get("", summary="Scheduled procedure steps of a date range, earliest first")
    def list_steps(
        request: Request,
        principal: Reader,
        date_from: Annotated[str, Query(max_length=10, description="YYYYMMDD")] = "",
        date_to: Annotated[str, Query(max_length=10, description="YYYYMMDD")] = "",
        modality: Annotated[str, Query(max_length=16)] = "",
        station: Annotated[str, Query(max_length=16)] = "",
        status: Annotated[StepStatus | None, Query()] = None,
        patient: Annotated[str, Query(max_length=64, description="id or name")] = "",
        patient_id: Annotated[str, Query(max_length=64, description="exactly")] = "",
        accession: Annotated[str, Query(max_length=16)] = "",
        limit: Annotated[int, Query(ge=1, le=2000)] = 500,
    ) -> list[dict[str, Any]]:
        wanted = StepFilter(
            date_from=date_from,
            date_to=date_to,
            modality=modality,
            station_ae_title=station,
            status=status.value if status else "",
            patient=patient,
            patient_id=patient_id,
            accession_number=accession,
            limit=limit,
        )
        steps = schedule.search(wanted, principal.actor, source=client_address(request))
        return [step.as_dict() for step in steps]

    @router.post("", status_code=201, summary="Schedule a procedure step")
    def create_step(request: Request, body: StepBody, principal: Scheduler) -> dict[str, Any]:
        step = schedule.create(body.details(), principal.actor, source=client_address(request))
        return step.as_dict()

    @router.get("/{step_id}", summary="One scheduled procedure step")
    def get_step(request: Request, step_id: str, principal: Reader) -> dict[str, Any]:
        return schedule.get(step_id, principal.actor, source=client_address(request)).as_dict()

    @router.put("/{step_id}", summary="Change a step not yet performed (409 once it started)")
    def update_step(
        request: Request, step_id: str, body: StepUpdate, principal: Scheduler
    ) -> dict[str, Any]:
        step = schedule.update(
            step_id,
            body.details(),
            principal.actor,
            status=body.status,
            source=client_address(request),
        )
        return step.as_dict()

    @router.delete("/{step_id}", summary="Cancel a step not yet performed (DISCONTINUED)")
    def cancel_step(request: Request, step_id: str, principal: Scheduler) -> dict[str, Any]:
        return schedule.cancel(step_id, principal.actor, source=client_address(request)).as_dict()

    return router
