"""Deleting studies, series and instances (admin only; not part of PS3.18, as in dcm4chee and
Orthanc's DICOMweb plugins)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from klinika.archive import Archive
from klinika.dicomweb.common import Guard


def create_delete_router(archive: Archive, guard: Guard) -> APIRouter:
    """DELETE on the WADO-RS resource paths; 204 when done, 404 when nothing matched."""
    router = APIRouter(dependencies=[Depends(guard("dicom:delete"))])

    async def remove(study: str, series: str | None = None, sop: str | None = None) -> Response:
        await run_in_threadpool(archive.delete, study, series, sop)
        return Response(status_code=204)

    @router.delete("/studies/{study}", summary="Delete a study", status_code=204)
    async def delete_study(study: str) -> Response:
        return await remove(study)

    @router.delete("/studies/{study}/series/{series}", summary="Delete a series", status_code=204)
    async def delete_series(study: str, series: str) -> Response:
        return await remove(study, series)

    @router.delete(
        "/studies/{study}/series/{series}/instances/{sop}",
        summary="Delete an instance",
        status_code=204,
    )
    async def delete_instance(study: str, series: str, sop: str) -> Response:
        return await remove(study, series, sop)

    return router
