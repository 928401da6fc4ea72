"""The study view for admins: a study's patient, attributes and series, with study management
(edit the study or its patient, merge the study or the patient into another, delete a series,
split series out into a new study). Each form calls one :class:`StudyManagement` method,
which writes the audit event; a refused change shows the page again with the reason."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from klinika.auth.http import client_address
from klinika.auth.models import Principal
from klinika.dicom.attributes import Level
from klinika.dicom.edit import PATIENT_KEYWORDS, STUDY_KEYWORDS
from klinika.errors import Conflict, InvalidChange, KlinikaError, NotFound
from klinika.i18n import N_
from klinika.index.query import Query as IndexQuery
from klinika.web.pages.context import PageContext

#: keyword -> label of the form fields
LABELS = {
    "PatientName": N_("Patient name"),
    "PatientID": N_("Patient ID"),
    "IssuerOfPatientID": N_("Issuer of patient ID"),
    "PatientBirthDate": N_("Birth date (YYYYMMDD)"),
    "PatientSex": N_("Sex (M, F, O)"),
    "OtherPatientIDs": N_("Other patient IDs"),
    "StudyDescription": N_("Description"),
    "AccessionNumber": N_("Accession number"),
    "ReferringPhysicianName": N_("Referring physician"),
    "StudyDate": N_("Study date (YYYYMMDD)"),
    "StudyTime": N_("Study time (HHMMSS)"),
    "StudyID": N_("Study ID"),
}
DONE = {
    "study": N_("The study was changed."),
    "patient": N_("The patient was changed."),
    "merged": N_("The studies were merged."),
    "patients-merged": N_("The patients were merged."),
    "split": N_("The series were split out into this new study."),
    "series-deleted": N_("The series was deleted."),
}
_STATUS = {InvalidChange: 400, NotFound: 404, Conflict: 409}
_SERIES_KEYS = frozenset(
    {"SeriesNumber", "Modality", "SeriesDescription", "NumberOfSeriesRelatedInstances"}
)


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    # viewing the page reads patient data: audited as dicom:read
    Viewer = Annotated[Principal, Depends(context.guard("study:manage", recorded_as="dicom:read"))]
    Admin = Annotated[Principal, Depends(context.guard("study:manage"))]
    management = context.management

    async def page(
        request: Request, study_uid: str, *, error: str | None = None, status: int = 200
    ) -> Response:
        described = await run_in_threadpool(describe, study_uid)
        return context.pages.render(
            request,
            "worklist/study.html",
            active="worklist",
            status_code=status,
            study_uid=study_uid,
            labels=LABELS,
            patient_keywords=PATIENT_KEYWORDS,
            study_keywords=STUDY_KEYWORDS,
            done=DONE.get(request.query_params.get("done", "")),
            error=error,
            **described,
        )

    def describe(study_uid: str) -> dict[str, Any]:
        attributes = management.attributes(study_uid)
        series = context.archive.search(
            IndexQuery(
                Level.SERIES,
                match={"StudyInstanceUID": study_uid},
                include=_SERIES_KEYS,
                order=(("SeriesNumber", False),),
            )
        ).matches
        return {
            "attributes": attributes,
            "series": [
                {
                    "uid": _first(s, "0020000E"),
                    "number": _first(s, "00200011"),
                    "modality": _first(s, "00080060"),
                    "description": _first(s, "0008103E"),
                    "instances": _first(s, "00201209"),
                }
                for s in series
            ],
        }

    async def attempt(
        request: Request, study_uid: str, change: Any, done: str, go_to: str | None = None
    ) -> Response:
        try:
            result = await run_in_threadpool(change)
        except (InvalidChange, NotFound, Conflict) as exc:
            if isinstance(exc, NotFound) and not await run_in_threadpool(_exists, study_uid):
                raise
            status = next(code for kind, code in _STATUS.items() if isinstance(exc, kind))
            return await page(request, study_uid, error=str(exc), status=status)
        target = go_to or (result.new_study_uid if done == "split" else None) or study_uid
        if not await run_in_threadpool(_exists, target):  # its last series was deleted
            return RedirectResponse("/worklist?deleted=1", status_code=303)
        return RedirectResponse(f"/worklist/studies/{target}?done={done}", status_code=303)

    def _exists(study_uid: str) -> bool:
        try:
            context.archive.instances(study_uid)
        except KlinikaError:
            return False
        return True

    @router.get("/worklist/studies/{study_uid}")
    async def study_view(request: Request, study_uid: str, _: Viewer) -> Response:
        return await page(request, study_uid)

    @router.post("/worklist/studies/{study_uid}/edit")
    async def edit_study(request: Request, study_uid: str, principal: Admin) -> Response:
        form = await request.form()
        changes = _changed(form, STUDY_KEYWORDS, management.attributes(study_uid))
        return await attempt(
            request,
            study_uid,
            lambda: management.update_study(
                study_uid, changes, actor=principal.actor, source=client_address(request)
            ),
            "study",
        )

    @router.post("/worklist/studies/{study_uid}/patient")
    async def edit_patient(request: Request, study_uid: str, principal: Admin) -> Response:
        form = await request.form()
        current = management.attributes(study_uid)
        changes = _changed(form, PATIENT_KEYWORDS, current)
        return await attempt(
            request,
            study_uid,
            lambda: management.update_patient(
                current["PatientID"] or "",
                changes,
                actor=principal.actor,
                issuer=current["IssuerOfPatientID"] or "",
                source=client_address(request),
            ),
            "patient",
        )

    @router.post("/worklist/studies/{study_uid}/merge")
    async def merge_study(request: Request, study_uid: str, principal: Admin) -> Response:
        target = str((await request.form()).get("target_study_uid", "")).strip()
        return await attempt(
            request,
            study_uid,
            lambda: management.merge_studies(
                study_uid, target, actor=principal.actor, source=client_address(request)
            ),
            "merged",
            go_to=target,
        )

    @router.post("/worklist/studies/{study_uid}/merge-patient")
    async def merge_patient(request: Request, study_uid: str, principal: Admin) -> Response:
        target = str((await request.form()).get("target_patient_id", "")).strip()
        current = management.attributes(study_uid)
        return await attempt(
            request,
            study_uid,
            lambda: management.merge_patients(
                current["PatientID"] or "",
                target,
                actor=principal.actor,
                source_issuer=current["IssuerOfPatientID"] or "",
                source=client_address(request),
            ),
            "patients-merged",
        )

    @router.post("/worklist/studies/{study_uid}/split")
    async def split_series(request: Request, study_uid: str, principal: Admin) -> Response:
        form = await request.form()
        series = [str(v) for v in form.getlist("series_uid")]
        patient = str(form.get("target_patient_id", "")).strip() or None
        return await attempt(
            request,
            study_uid,
            lambda: management.split_series(
                study_uid,
                series,
                actor=principal.actor,
                target_patient_id=patient,
                source=client_address(request),
            ),
            "split",
        )

    @router.post("/worklist/studies/{study_uid}/series/{series_uid}/delete")
    async def delete_series(
        request: Request, study_uid: str, series_uid: str, principal: Admin
    ) -> Response:
        return await attempt(
            request,
            study_uid,
            lambda: management.delete_series(
                study_uid, series_uid, actor=principal.actor, source=client_address(request)
            ),
            "series-deleted",
        )

    return router


def _changed(
    form: Any, keywords: tuple[str, ...], current: dict[str, str | None]
) -> dict[str, str | None]:
    """The fields of the form whose value differs from what the study holds now."""
    changes: dict[str, str | None] = {}
    for keyword in keywords:
        if keyword not in form:
            continue
        value = str(form.get(keyword, "")).strip()
        if value != (current.get(keyword) or ""):
            changes[keyword] = value or None
    return changes


def _first(entry: dict[str, Any], tag: str) -> Any:
    values = entry.get(tag, {}).get("Value") or []
    return values[0] if values else ""
