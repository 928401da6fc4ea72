"""HTTP resources of study management (admin only, ``study:manage``) under ``/api/patients``
and ``/api/studies``: edit a patient or a study, merge patients or studies, split a series
out, delete a series. Each route parses, calls one :class:`StudyManagement` method (which
writes the one audit event), and answers with what changed.

Patient IDs travel in the path: one holding ``/`` cannot be named here (rare; the HL7 and
CLI doors take any ID).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from klinika.archive.management import StudyManagement
from klinika.auth.http import Guard, client_address
from klinika.auth.models import Principal

Changes = dict[str, str | None]


class PatientChange(BaseModel):
    changes: Changes = Field(
        description="DICOM keyword -> new value (null or empty clears it): PatientName, "
        "PatientID, IssuerOfPatientID, PatientBirthDate, PatientSex, OtherPatientIDs"
    )
    issuer: str | None = Field(None, description="the patient's issuer, when several share the ID")


class PatientMerge(BaseModel):
    target_patient_id: str = Field(max_length=64, description="the patient that stays")
    source_issuer: str | None = None
    target_issuer: str | None = None
    rename_if_absent: bool = Field(
        False, description="a target the archive does not hold: change the Patient ID instead"
    )


class StudyChange(BaseModel):
    changes: Changes = Field(
        description="DICOM keyword -> new value: StudyDescription, AccessionNumber, "
        "ReferringPhysicianName, StudyDate, StudyTime, StudyID"
    )


class StudyMerge(BaseModel):
    target_study_uid: str = Field(max_length=64, description="the study that stays")


class SeriesSplit(BaseModel):
    series_uids: list[str] = Field(min_length=1, max_length=1000)
    target_patient_id: str | None = Field(
        None, max_length=64, description="the new study's patient (default: the same)"
    )
    target_issuer: str | None = None
    study_changes: Changes = Field(default_factory=dict)


def create_management_router(management: StudyManagement, guard: Guard) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["study management"])
    Admin = Annotated[Principal, Depends(guard("study:manage"))]

    @router.patch("/patients/{patient_id}", summary="Edit a patient's attributes")
    async def update_patient(
        request: Request, patient_id: str, body: PatientChange, principal: Admin
    ) -> dict[str, Any]:
        result = await run_in_threadpool(
            lambda: management.update_patient(
                patient_id,
                body.changes,
                actor=principal.actor,
                issuer=body.issuer,
                source=client_address(request),
            )
        )
        return result.as_dict()

    @router.post("/patients/{patient_id}/merge", summary="Merge the patient into another")
    async def merge_patients(
        request: Request, patient_id: str, body: PatientMerge, principal: Admin
    ) -> dict[str, Any]:
        result = await run_in_threadpool(
            lambda: management.merge_patients(
                patient_id,
                body.target_patient_id,
                actor=principal.actor,
                source_issuer=body.source_issuer,
                target_issuer=body.target_issuer,
                source=client_address(request),
                rename_if_absent=body.rename_if_absent,
            )
        )
        return result.as_dict()

    @router.patch("/studies/{study_uid}", summary="Edit a study's attributes")
    async def update_study(
        request: Request, study_uid: str, body: StudyChange, principal: Admin
    ) -> dict[str, Any]:
        result = await run_in_threadpool(
            lambda: management.update_study(
                study_uid, body.changes, actor=principal.actor, source=client_address(request)
            )
        )
        return result.as_dict()

    @router.post(
        "/studies/{study_uid}/merge",
        summary="Merge the study into another (409 while it has a report)",
    )
    async def merge_studies(
        request: Request, study_uid: str, body: StudyMerge, principal: Admin
    ) -> dict[str, Any]:
        result = await run_in_threadpool(
            lambda: management.merge_studies(
                study_uid,
                body.target_study_uid,
                actor=principal.actor,
                source=client_address(request),
            )
        )
        return result.as_dict()

    @router.post("/studies/{study_uid}/split", summary="Split series out into a new study")
    async def split_series(
        request: Request, study_uid: str, body: SeriesSplit, principal: Admin
    ) -> dict[str, Any]:
        result = await run_in_threadpool(
            lambda: management.split_series(
                study_uid,
                body.series_uids,
                actor=principal.actor,
                target_patient_id=body.target_patient_id,
                target_issuer=body.target_issuer,
                study_changes=body.study_changes,
                source=client_address(request),
            )
        )
        return result.as_dict()

    @router.delete("/studies/{study_uid}/series/{series_uid}", summary="Delete a series")
    async def delete_series(
        request: Request, study_uid: str, series_uid: str, principal: Admin
    ) -> dict[str, Any]:
        result = await run_in_threadpool(
            lambda: management.delete_series(
                study_uid, series_uid, actor=principal.actor, source=client_address(request)
            )
        )
        return result.as_dict()

    return router
