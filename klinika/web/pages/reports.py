"""The report editor page, ``/reports/{study_uid}``: reached from OHIF's Report button and from
the worklist. The page is a shell (patient header, sections, buttons, in the reader's
language); ``static/reports.js`` loads, autosaves, signs and amends through the report API
(``klinika/web/reports.py``), so the page and the API enforce the same rules."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from klinika.archive import InstanceRecord
from klinika.auth.models import Principal
from klinika.errors import NotFound
from klinika.i18n import translator
from klinika.reports.labels import SECTION_LABELS, SECTIONS, STATUS_LABELS
from klinika.reports.templates import TEMPLATE_NAMES, template_key
from klinika.web.pages.context import PageContext, request_language

#: How many images the key image picker offers at most.
MAX_KEY_IMAGE_CHOICES = 48


def key_image_choices(
    images: list[InstanceRecord], limit: int = MAX_KEY_IMAGE_CHOICES
) -> list[InstanceRecord]:
    """Images to offer, evenly spread over each series (a 300-slice CT offers slices from
    head to feet, not its first 48), series in order."""
    by_series: dict[str, list[InstanceRecord]] = {}
    for record in images:
        by_series.setdefault(record.series_uid, []).append(record)
    if not by_series:
        return []
    share = max(1, limit // len(by_series))
    chosen: list[InstanceRecord] = []
    for records in by_series.values():
        step = max(1, -(-len(records) // share))  # ceiling division
        chosen.extend(records[step // 2 :: step][:share] if step > 1 else records[:share])
    return chosen[:limit]


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
        choices = key_image_choices(
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
            key_image_choices=choices,
        )

    return router
