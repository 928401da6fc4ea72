"""HTTP resources of reports under ``/api/studies/{study_uid}/report``: read, save a draft,
sign, amend, versions, PDF and templates. Each route parses, calls one
:class:`~klinika.reports.ReportService` method, and answers; the service writes the audit
events (``report:view``, ``report:save``, ``report:sign``, ``report:amend``, ``report:pdf``)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from klinika.auth.http import Guard, client_address
from klinika.auth.models import Principal
from klinika.auth.permissions import is_allowed
from klinika.i18n import LANGUAGES
from klinika.reports import Draft, KeyImage, ReportService
from klinika.web.downloads import content_disposition


class KeyImageBody(BaseModel):
    series_uid: str = Field(max_length=64)
    sop_instance_uid: str = Field(max_length=64)
    frame: int = Field(1, ge=1, description="1-based, as in WADO-RS")
    caption: str = Field("", max_length=200)


class DraftBody(BaseModel):
    revision: int | None = Field(
        None, description="the report revision this edit is based on; null creates the report"
    )
    language: str = "en"
    template: str | None = None
    sections: dict[str, str] = Field(default_factory=dict)
    key_images: list[KeyImageBody] = Field(default_factory=list)


class RevisionBody(BaseModel):
    revision: int = Field(description="the report revision the change is based on")


class AmendBody(RevisionBody):
    reason: str = Field("", max_length=2000)


def _drafts(principal: Principal) -> bool:
    """Operators read final reports only (the permission matrix's ``report:read_draft``)."""
    return is_allowed(principal.role, "report:read_draft")


def create_reports_router(reports: ReportService, guard: Guard) -> APIRouter:
    router = APIRouter(prefix="/api/studies/{study_uid}/report", tags=["reports"])
    Reader = Annotated[Principal, Depends(guard("report:read"))]
    Writer = Annotated[Principal, Depends(guard("report:write"))]
    Signer = Annotated[Principal, Depends(guard("report:sign"))]

    @router.get("", summary="The report (operators: the newest signed version)")
    def get_report(request: Request, study_uid: str, principal: Reader) -> dict[str, Any]:
        view = reports.current(
            study_uid, principal.actor, drafts=_drafts(principal), source=client_address(request)
        )
        return view.as_dict()

    @router.put("", summary="Save the draft (409 when the revision is stale)")
    def save_draft(
        request: Request, study_uid: str, body: DraftBody, principal: Writer
    ) -> dict[str, Any]:
        draft = Draft(
            language=body.language,
            template=body.template,
            sections=body.sections,
            key_images=tuple(
                KeyImage(i.series_uid, i.sop_instance_uid, i.frame, i.caption)
                for i in body.key_images
            ),
        )
        view = reports.save_draft(
            study_uid,
            draft,
            principal.actor,
            expected_revision=body.revision,
            source=client_address(request),
        )
        return view.as_dict()

    @router.post("/sign", summary="Sign the draft: final, PDF stored into the study")
    def sign(
        request: Request, study_uid: str, body: RevisionBody, principal: Signer
    ) -> dict[str, Any]:
        view = reports.sign(
            study_uid,
            principal.actor,
            signer_name=principal.display_name or principal.username,
            expected_revision=body.revision,
            source=client_address(request),
        )
        return view.as_dict()

    @router.post("/amend", summary="Start an amendment (a new draft version)")
    def amend(
        request: Request, study_uid: str, body: AmendBody, principal: Signer
    ) -> dict[str, Any]:
        view = reports.amend(
            study_uid,
            principal.actor,
            expected_revision=body.revision,
            reason=body.reason,
            source=client_address(request),
        )
        return view.as_dict()

    @router.get("/versions", summary="The versions (operators: signed ones)")
    def versions(request: Request, study_uid: str, principal: Reader) -> list[dict[str, Any]]:
        found = reports.versions(
            study_uid, principal.actor, drafts=_drafts(principal), source=client_address(request)
        )
        return [version.summary() for version in found]

    @router.get("/versions/{number}", summary="One version")
    def version(request: Request, study_uid: str, number: int, principal: Reader) -> dict[str, Any]:
        found = reports.version(
            study_uid,
            number,
            principal.actor,
            drafts=_drafts(principal),
            source=client_address(request),
        )
        return found.as_dict()

    @router.get(
        "/pdf",
        summary="The PDF (a signed version's is the one stored in the study; operators: "
        "signed versions only)",
    )
    def pdf(
        request: Request,
        study_uid: str,
        principal: Reader,
        version: Annotated[int | None, Query(ge=1)] = None,
        inline: bool = False,
    ) -> Response:
        data, found = reports.pdf(
            study_uid,
            principal.actor,
            number=version,
            drafts=_drafts(principal),
            source=client_address(request),
        )
        header = reports.header(study_uid)
        disposition = content_disposition(
            "report",
            header.patient_name,
            header.study_date,
            f"v{found.number}" + ("" if found.signed else "-draft"),
            suffix=".pdf",
            inline=inline,
            separator="-",  # report-<patient>-<date>-v<n>.pdf
        )
        return Response(
            data,
            media_type="application/pdf",
            headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
        )

    @router.get("/templates", summary="Templates per modality, in a language")
    def templates(
        study_uid: str,
        principal: Writer,
        language: Annotated[str, Query(max_length=8)] = "en",
    ) -> dict[str, Any]:
        modality = reports.header(study_uid).modality
        return reports.templates(language if language in LANGUAGES else "en", modality)

    return router
