"""Export: a study or series as a streamed ZIP of its DICOM files (with a DICOMDIR), optionally
de-identified (``?deidentify=yes``: PS3.15 Annex E, for sharing), or of JPEG/PNG images. Each
export is an audit event of its own (``dicom:export``)."""

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from klinika.archive import Archive
from klinika.audit import Outcome
from klinika.auth.http import client_address
from klinika.auth.models import Principal
from klinika.dicom.attributes import Level
from klinika.dicom.deidentify import Deidentifier
from klinika.export import dicom_zip, images_zip
from klinika.index.query import Query as IndexQuery
from klinika.web.downloads import content_disposition
from klinika.web.pages.context import PageContext

MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}


def _download(chunks: Iterator[bytes], disposition: str) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="application/zip",
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


def _first(entry: dict[str, Any], tag: str) -> str:
    values = entry.get(tag, {}).get("Value") or [""]
    first = values[0]
    return str(first.get("Alphabetic", "") if isinstance(first, dict) else first)


def export_name_parts(archive: Archive, study: str, series: str | None) -> tuple[str, str, str]:
    """(PatientName, StudyDate, Modality) of what is exported, from the index; the series'
    modality for a series, else the study's modalities joined by ``-``."""
    found = archive.search(
        IndexQuery(
            Level.STUDY,
            match={"StudyInstanceUID": study},
            include=frozenset({"PatientName", "StudyDate", "ModalitiesInStudy"}),
            limit=1,
        )
    ).matches
    if not found:
        return "", "", ""
    entry = found[0]
    modality = "-".join(entry.get("00080061", {}).get("Value") or [])
    if series:
        rows = archive.search(
            IndexQuery(
                Level.SERIES,
                match={"StudyInstanceUID": study, "SeriesInstanceUID": series},
                include=frozenset({"Modality"}),
                limit=1,
            )
        ).matches
        modality = _first(rows[0], "00080060") if rows else modality
    return _first(entry, "00100010"), _first(entry, "00080020"), modality


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    Reader = Annotated[Principal, Depends(context.guard("dicom:read"))]
    Format = Annotated[Literal["jpeg", "png"], Query()]
    Deidentify = Annotated[Literal["yes", "no"], Query()]

    async def audit(
        request: Request, principal: Principal, what: str, study: str, series: str | None
    ) -> None:
        await run_in_threadpool(
            context.audit.record,
            principal.actor,
            "dicom:export",
            Outcome.SUCCESS,
            study_uid=study,
            series_uid=series,
            source=client_address(request),
            details={"format": what, "path": request.url.path},
        )

    async def dicom(
        request: Request, principal: Principal, study: str, series: str | None, deidentify: str
    ) -> StreamingResponse:
        deidentifier = Deidentifier() if deidentify == "yes" else None
        chunks = await run_in_threadpool(dicom_zip, context.archive, study, series, deidentifier)
        what = "dicom-deidentified" if deidentifier else "dicom"
        await audit(request, principal, what, study, series)
        name, date, modality = await run_in_threadpool(
            export_name_parts, context.archive, study, series
        )
        if deidentifier:  # nothing that names the patient or dates the study
            disposition = content_disposition(
                "deidentified", modality, (series or study)[-8:], suffix=".zip"
            )
        else:
            disposition = content_disposition(name, date, modality, suffix=".zip")
        return _download(chunks, disposition)

    async def images(
        request: Request, principal: Principal, study: str, series: str | None, format: str
    ) -> StreamingResponse:
        chunks = await run_in_threadpool(
            images_zip, context.archive, study, series, MEDIA_TYPES[format]
        )
        await audit(request, principal, format, study, series)
        name, date, modality = await run_in_threadpool(
            export_name_parts, context.archive, study, series
        )
        return _download(chunks, content_disposition(name, date, modality, format, suffix=".zip"))

    @router.get("/export/studies/{study_uid}.zip")
    async def study_dicom(
        request: Request, study_uid: str, principal: Reader, deidentify: Deidentify = "no"
    ) -> StreamingResponse:
        return await dicom(request, principal, study_uid, None, deidentify)

    @router.get("/export/studies/{study_uid}/series/{series_uid}.zip")
    async def series_dicom(
        request: Request,
        study_uid: str,
        series_uid: str,
        principal: Reader,
        deidentify: Deidentify = "no",
    ) -> StreamingResponse:
        return await dicom(request, principal, study_uid, series_uid, deidentify)

    @router.get("/export/studies/{study_uid}/images.zip")
    async def study_images(
        request: Request, study_uid: str, principal: Reader, format: Format = "jpeg"
    ) -> StreamingResponse:
        return await images(request, principal, study_uid, None, format)

    @router.get("/export/studies/{study_uid}/series/{series_uid}/images.zip")
    async def series_images(
        request: Request,
        study_uid: str,
        series_uid: str,
        principal: Reader,
        format: Format = "jpeg",
    ) -> StreamingResponse:
        return await images(request, principal, study_uid, series_uid, format)

    return router
