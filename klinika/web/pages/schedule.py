"""The front desk's schedule: scheduled procedure steps of a day or a date range with their
status (and the modality's MPPS state, and the study once it arrived), and a form to add,
change or cancel a step. Called "Schedule" in the console because "Worklist" is the
radiologists' reading list; the steps are what modalities get as their Modality Worklist.
Every change goes through :class:`~klinika.workflow.Schedule`, as ``/api/worklist`` does."""

import datetime as dt
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from klinika.auth.http import client_address
from klinika.auth.models import Principal
from klinika.errors import KlinikaError
from klinika.i18n import N_
from klinika.web.pages.context import PageContext
from klinika.workflow import PerformedStatus, ScheduledStep, StepDetails, StepFilter, StepStatus

STATUS_LABELS: dict[StepStatus, str] = {
    StepStatus.SCHEDULED: N_("Scheduled"),
    StepStatus.ARRIVED: N_("Arrived"),
    StepStatus.IN_PROGRESS: N_("In progress"),
    StepStatus.COMPLETED: N_("Completed"),
    StepStatus.DISCONTINUED: N_("Discontinued"),
}
#: MPPS states as the console shows them.
PERFORMED_LABELS: dict[PerformedStatus, str] = {
    PerformedStatus.IN_PROGRESS: N_("In progress"),
    PerformedStatus.COMPLETED: N_("Completed"),
    PerformedStatus.DISCONTINUED: N_("Discontinued"),
}
SEX_CHOICES = (("", N_("Unknown")), ("F", N_("Female")), ("M", N_("Male")), ("O", N_("Other")))
MODALITIES = ("CT", "MR", "US", "CR", "DX", "MG", "XA", "RF", "NM", "PT", "OT")


def _iso_date(value: str) -> str:
    """``YYYYMMDD`` as ``YYYY-MM-DD`` (what ``<input type=date>`` shows)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def _clock_time(value: str) -> str:
    """``HHMM[SS]`` as ``HH:MM``."""
    return f"{value[:2]}:{value[2:4]}" if len(value) >= 4 else value


def form_values(step: ScheduledStep | None) -> dict[str, str]:
    """The form's fields, empty or from a step."""
    if step is None:
        return {"start_date": dt.date.today().isoformat(), "modality": "CT"}
    d = step.details
    family, _, given = d.patient_name.partition("^")
    return {
        **{k: str(v) for k, v in d.__dict__.items()},
        "family_name": family,
        "given_name": given.replace("^", " ").strip(),
        "start_date": _iso_date(d.start_date),
        "start_time": _clock_time(d.start_time),
        "patient_birth_date": _iso_date(d.patient_birth_date),
        "status": step.status.value,
    }


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    schedule, pages = context.schedule, context.pages
    Reader = Annotated[Principal, Depends(context.guard("workflow:read"))]
    Desk = Annotated[Principal, Depends(context.guard("workflow:schedule"))]

    def form_page(
        request: Request,
        step: ScheduledStep | None,
        values: dict[str, str],
        *,
        error: str | None = None,
        status_code: int = 200,
    ) -> Response:
        return pages.render(
            request,
            "schedule/form.html",
            status_code=status_code,
            active="schedule",
            step=step,
            values=values,
            error=error,
            sexes=SEX_CHOICES,
            modalities=MODALITIES,
            desk_states=[
                (s.value, STATUS_LABELS[s]) for s in (StepStatus.SCHEDULED, StepStatus.ARRIVED)
            ],
        )

    @router.get("/schedule")
    def schedule_page(
        request: Request,
        principal: Reader,
        date_from: Annotated[str, Query(max_length=10)] = "",
        date_to: Annotated[str, Query(max_length=10)] = "",
        modality: Annotated[str, Query(max_length=16)] = "",
        patient: Annotated[str, Query(max_length=64)] = "",
        saved: Annotated[str, Query(max_length=16)] = "",
    ) -> Response:
        today = dt.date.today().isoformat()
        date_from = date_from or today
        date_to = date_to or date_from
        error = None
        steps: list[ScheduledStep] = []
        try:
            wanted = StepFilter(
                date_from=date_from, date_to=date_to, modality=modality, patient=patient
            )
            steps = schedule.search(
                wanted,
                principal.actor,
                source=client_address(request),
            )
        except KlinikaError as exc:
            error = str(exc)
        return pages.render(
            request,
            "schedule/index.html",
            status_code=400 if error else 200,
            active="schedule",
            steps=steps,
            error=error,
            saved=saved,
            filters={
                "date_from": date_from,
                "date_to": date_to,
                "modality": modality,
                "patient": patient,
            },
            status_labels={s.value: label for s, label in STATUS_LABELS.items()},
            performed_labels=PERFORMED_LABELS,
            editable={StepStatus.SCHEDULED, StepStatus.ARRIVED},
            iso_date=_iso_date,
            clock_time=_clock_time,
            modalities=MODALITIES,
        )

    @router.get("/schedule/new")
    def new_step(request: Request, _: Desk) -> Response:
        return form_page(request, None, form_values(None))

    @router.get("/schedule/{step_id}")
    def edit_step(request: Request, step_id: str, principal: Desk) -> Response:
        step = schedule.get(step_id, principal.actor, source=client_address(request))
        return form_page(request, step, form_values(step))

    def details_from(form: dict[str, str], step_id: str = "") -> StepDetails:
        family, given = form.pop("family_name", "").strip(), form.pop("given_name", "").strip()
        name = "^".join(p for p in (family, "^".join(given.split())) if p) if given else family
        fields = {k: form.get(k, "") for k in StepDetails.__dataclass_fields__}
        return StepDetails(**{**fields, "patient_name": name, "step_id": step_id})

    async def read_form(request: Request) -> dict[str, str]:
        submitted = await request.form()
        return {k: str(v) for k, v in submitted.items() if isinstance(v, str) and k != "csrf_token"}

    def back_to_list(step: ScheduledStep) -> Response:
        query = urlencode({"date_from": _iso_date(step.details.start_date), "saved": step.step_id})
        return RedirectResponse(f"/schedule?{query}", status_code=303)

    @router.post("/schedule")
    async def create_step(request: Request, principal: Desk) -> Response:
        form = await read_form(request)
        try:
            step = schedule.create(
                details_from(dict(form)), principal.actor, source=client_address(request)
            )
        except KlinikaError as exc:
            return form_page(request, None, form, error=str(exc), status_code=400)
        return back_to_list(step)

    @router.post("/schedule/{step_id}")
    async def update_step(request: Request, step_id: str, principal: Desk) -> Response:
        form = await read_form(request)
        status = form.pop("status", "") or None
        try:
            step = schedule.update(
                step_id,
                details_from(dict(form), step_id),
                principal.actor,
                status=StepStatus(status) if status in {s.value for s in StepStatus} else None,
                source=client_address(request),
            )
        except KlinikaError as exc:
            current = schedule.get(step_id, principal.actor, source=client_address(request))
            return form_page(request, current, form, error=str(exc), status_code=400)
        return back_to_list(step)

    @router.post("/schedule/{step_id}/cancel")
    def cancel_step(
        request: Request,
        step_id: str,
        principal: Desk,
        back: Annotated[str, Form(max_length=10)] = "",
    ) -> Response:
        step = schedule.cancel(step_id, principal.actor, source=client_address(request))
        query = urlencode({"date_from": back or _iso_date(step.details.start_date)})
        return RedirectResponse(f"/schedule?{query}", status_code=303)

    return router
