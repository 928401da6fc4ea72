"""The report editor page, ``/reports/{study_uid}``: reached from OHIF's Report button and from
the worklist. The page is a shell (patient header, sections, buttons, in the reader's
language); ``static/reports.js`` loads, autosaves, signs and amends through the report API
(``klinika/web/reports.py``), so the page and the API enforce the same rules."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from klinika.archive import InstanceRecord
from klinika.auth.models import Principal
from klinika.errors import NotFound
from klinika.i18n import translator
from klinika.reports.labels import SECTION_LABELS, SECTIONS, STATUS_LABELS
from klinika.reports.templates import TEMPLATE_NAMES, template_key
from klinika.web.pages.context import PageContext, request_language


def _first(metadata: dict[str, Any], tag: str) -> Any:
    values = metadata.get(tag, {}).get("Value") or [None]
    return values[0]


def key_image_series(images: list[InstanceRecord]) -> list[dict[str, Any]]:
    """Every image of the study for the key image picker, per series in order: each slice
    (each frame of a multi-frame image) with its position and the image's Instance Number,
    so the lesion's slice can be picked, not only a sample (issue 16, point 8)."""
    by_series: dict[str, dict[str, Any]] = {}
    for record in images:
        metadata = json.loads(record.metadata_json)
        series = by_series.get(record.series_uid)
        if series is None:
            series = by_series[record.series_uid] = {
                "series_uid": record.series_uid,
                "number": _first(metadata, "00200011"),
                "description": _first(metadata, "0008103E") or "",
                "modality": _first(metadata, "00080060") or "",
                "slices": [],
            }
        number = _first(metadata, "00200013")
        for frame in range(1, record.number_of_frames + 1):
            series["slices"].append([record.sop_instance_uid, frame, number])
    return list(by_series.values())


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    pages, reports, archive = context.pages, context.reports, context.archive

    @router.get("/reports/{study_uid}")
    def editor(
        request: Request,
        study_uid: str,
        principal: Annotated[Principal, Depends(context.guard("report:read"))],
    ) -> Response:
        try:
            header = reports.header(study_uid)
        except NotFound:
            return pages.render(request, "reports/missing.html", status_code=404, active="worklist")
        speak = translator(request_language(request, principal))
        images = key_image_series(
            [
                record
                for record in archive.instances(study_uid)
                if record.pixel_location is not None or record.number_of_frames > 1
            ]
        )
        return pages.render(
            request,
            "reports/editor.html",
            active="worklist",
            study_uid=study_uid,
            header=header,
            header_rows=header.rows(speak),
            sections=[(key, speak.gettext(SECTION_LABELS[key])) for key in SECTIONS],
            templates=[(key, speak.gettext(name)) for key, name in TEMPLATE_NAMES.items()],
            suggested_template=template_key(header.modality) or "",
            statuses={key: speak.gettext(label) for key, label in STATUS_LABELS.items()},
            key_image_series=images,
        )

    return router
