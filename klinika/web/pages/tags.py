"""The tag browser, ``/studies/{study_uid}/tags``: every attribute of one instance of a study
(sequences nested, private elements named after their creator, bulk data as a link with its
size), from the DICOM JSON stored at ingest, the same the viewers get. Any role that may read
images may open it (``dicom:read``); each instance shown is an audit event (``dicom:tags``)."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from klinika.archive import InstanceRecord
from klinika.audit import Outcome
from klinika.auth.http import client_address
from klinika.auth.models import Principal
from klinika.dicom.frames import PixelLocation
from klinika.dicom.tag_tree import tag_rows
from klinika.errors import NotFound
from klinika.web.pages.context import PageContext


def _first(metadata: dict[str, Any], tag: str) -> Any:
    values = metadata.get(tag, {}).get("Value") or [None]
    return values[0]


def pixel_data_size(location: PixelLocation | None) -> int | None:
    """The pixel data's length in bytes: its value, or its frames' fragments."""
    if location is None:
        return None
    if location.value_length is not None:
        return location.value_length
    if location.frames:
        return sum(length for frame in location.frames for _, length in frame)
    return None


def series_choices(records: list[InstanceRecord]) -> list[dict[str, Any]]:
    """The study's series with their instances (numbers and UIDs), for the pickers."""
    series: dict[str, dict[str, Any]] = {}
    for record in records:
        metadata = json.loads(record.metadata_json)
        entry = series.setdefault(
            record.series_uid,
            {
                "uid": record.series_uid,
                "number": _first(metadata, "00200011"),
                "modality": _first(metadata, "00080060") or "",
                "description": _first(metadata, "0008103E") or "",
                "instances": [],
            },
        )
        entry["instances"].append(
            {"uid": record.sop_instance_uid, "number": _first(metadata, "00200013")}
        )
    return list(series.values())


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    Reader = Annotated[Principal, Depends(context.guard("dicom:read"))]

    @router.get("/studies/{study_uid}/tags")
    async def tags(
        request: Request,
        study_uid: str,
        principal: Reader,
        series: Annotated[str, Query(alias="SeriesInstanceUID", max_length=64)] = "",
        instance: Annotated[str, Query(alias="SOPInstanceUID", max_length=64)] = "",
    ) -> Response:
        try:
            records = await run_in_threadpool(context.archive.instances, study_uid)
        except NotFound:
            return context.pages.render(
                request, "tags/missing.html", status_code=404, active="worklist"
            )
        choices = series_choices(records)
        in_series = [r for r in records if r.series_uid == series] or [
            r for r in records if r.series_uid == records[0].series_uid
        ]
        shown = next((r for r in in_series if r.sop_instance_uid == instance), in_series[0])
        elements = json.loads(shown.metadata_json)
        rows = list(
            tag_rows(
                elements,
                base_url=str(request.base_url).rstrip("/") + "/dicom-web",
                pixel_data_size=pixel_data_size(shown.pixel_location),
            )
        )
        await run_in_threadpool(
            context.audit.record,
            principal.actor,
            "dicom:tags",
            Outcome.SUCCESS,
            study_uid=study_uid,
            series_uid=shown.series_uid,
            sop_instance_uid=shown.sop_instance_uid,
            patient_id=_first(elements, "00100020"),
            source=client_address(request),
            details={"path": request.url.path},
        )
        return context.pages.render(
            request,
            "tags/instance.html",
            active="worklist",
            study_uid=study_uid,
            series_choices=choices,
            shown=shown,
            shown_series=next(s for s in choices if s["uid"] == shown.series_uid),
            patient=_first(elements, "00100010") or {},
            rows=rows,
            private_count=sum(1 for row in rows if row.private and row.tag),
        )

    return router
