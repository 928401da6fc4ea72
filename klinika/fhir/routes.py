"""The ``/fhir`` routes: parse, call one :class:`FhirService` method, answer FHIR JSON.

Access: ``/fhir/metadata`` is public (a client reads it to learn how to authenticate; it
holds no patient data, R4 http.html §3.1.0.11); everything else needs a session and
``dicom:read`` (Patient, ImagingStudy, Endpoint), ``report:read`` (DiagnosticReport) or
``workflow:read`` (ServiceRequest) from the one permission check, which records the access
event; each route adds the patient and study it read to that event (reports and steps are
recorded by their own services as ``report:view`` and ``workflow:read``).
"""

import datetime as dt
import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from klinika.auth.http import Guard, client_address, note_access
from klinika.auth.models import Principal
from klinika.config import Settings
from klinika.dicomweb.common import dicomweb_base
from klinika.errors import InvalidQuery, NotFound, UnsupportedMediaType
from klinika.fhir import resources
from klinika.fhir.capability import capability_statement
from klinika.fhir.outcome import FHIR_JSON, ReadOnly, fhir_bytes, negotiate
from klinika.fhir.params import parse_search
from klinika.fhir.service import (
    DIAGNOSTIC_REPORT_PARAMS,
    IMAGING_STUDY_PARAMS,
    PATIENT_PARAMS,
    SERVICE_REQUEST_PARAMS,
    FhirService,
    Page,
)

_MEDIA_TYPE = f"{FHIR_JSON}; charset=utf-8"


def _is_fhir_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type in (FHIR_JSON, "application/json")


def fhir_response(resource: dict[str, Any], status_code: int = 200) -> Response:
    return Response(fhir_bytes(resource), status_code=status_code, media_type=_MEDIA_TYPE)


def create_fhir_router(service: FhirService, settings: Settings, guard: Guard) -> APIRouter:
    """The FHIR R4 read API, to be included under ``/fhir``."""
    router = APIRouter(tags=["fhir"])
    Reader = Annotated[Principal, Depends(guard("dicom:read"))]
    ReportReader = Annotated[Principal, Depends(guard("report:read"))]
    StepReader = Annotated[Principal, Depends(guard("workflow:read"))]
    StepScheduler = Annotated[Principal, Depends(guard("workflow:schedule"))]

    def origin(request: Request) -> str:
        return dicomweb_base(request, settings.public_base_url).removesuffix("/dicom-web")

    def answer_page(
        request: Request, resource_type: str, page: Page, count: int, offset: int
    ) -> Response:
        base = origin(request) + "/fhir"
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "_offset"]

        def link(at: int | None) -> str:
            query = params if at is None else [*params, ("_offset", str(at))]
            return f"{base}/{resource_type}" + (f"?{urlencode(query)}" if query else "")

        links = {"self": link(offset or None)}
        if count and offset + count < page.total:
            links["next"] = link(offset + count)
        if offset > 0:
            links["previous"] = link(max(offset - count, 0))
        patients = sorted({p for p in page.patient_ids if p})
        note_access(
            request,
            patient_id=patients[0] if len(patients) == 1 else None,
            details={"fhir": resource_type, "matches": page.total, "patients": patients[:100]},
        )
        return fhir_response(resources.searchset(page.resources, page.total, base, links))

    def search(request: Request, supported: tuple[str, ...], what: str) -> Any:
        negotiate(request.headers.get("accept"), request.query_params.get("_format"))
        return parse_search(request.query_params.multi_items(), supported, what)

    @router.get("/metadata", summary="The CapabilityStatement (public)")
    def metadata(request: Request) -> Response:
        negotiate(request.headers.get("accept"), request.query_params.get("_format"))
        published = dt.datetime.now(dt.UTC).date().isoformat()
        return fhir_response(capability_statement(origin(request) + "/fhir", published))

    @router.get("/Patient", summary="Search patients")
    def search_patients(request: Request, _principal: Reader) -> Response:
        found = search(request, PATIENT_PARAMS, "Patient")
        return answer_page(request, "Patient", service.patients(found), found.count, found.offset)

    @router.get("/Patient/{resource_id}", summary="Read a patient")
    def read_patient(request: Request, resource_id: str, _principal: Reader) -> Response:
        negotiate(request.headers.get("accept"), request.query_params.get("_format"))
        resource = service.patient(resource_id)
        patient_id = resource["identifier"][0]["value"]
        note_access(request, patient_id=patient_id, details={"fhir": "Patient"})
        return fhir_response(resource)

    @router.get("/ImagingStudy", summary="Search imaging studies")
    def search_studies(request: Request, _principal: Reader) -> Response:
        found = search(request, IMAGING_STUDY_PARAMS, "ImagingStudy")
        page = service.imaging_studies(found)
        return answer_page(request, "ImagingStudy", page, found.count, found.offset)

    @router.get("/ImagingStudy/{resource_id}", summary="Read an imaging study")
    def read_study(request: Request, resource_id: str, _principal: Reader) -> Response:
        negotiate(request.headers.get("accept"), request.query_params.get("_format"))
        resource = service.imaging_study(resource_id)
        note_access(request, study_uid=resource["id"], details={"fhir": "ImagingStudy"})
        return fhir_response(resource)

    @router.get("/Endpoint", summary="The DICOMweb endpoint")
    def search_endpoints(request: Request, _principal: Reader) -> Response:
        found = search(request, (), "Endpoint")
        endpoint = resources.endpoint(origin(request) + "/dicom-web")
        page = Page([endpoint][found.offset : found.offset + found.count], 1)
        return answer_page(request, "Endpoint", page, found.count, found.offset)

    @router.get("/Endpoint/{resource_id}", summary="Read the DICOMweb endpoint")
    def read_endpoint(request: Request, resource_id: str, _principal: Reader) -> Response:
        negotiate(request.headers.get("accept"), request.query_params.get("_format"))
        if resource_id != resources.ENDPOINT_ID:
            raise NotFound(f"Endpoint/{resource_id[:80]} is not known")
        return fhir_response(resources.endpoint(origin(request) + "/dicom-web"))

    @router.get("/DiagnosticReport", summary="Search signed reports")
    def search_reports(request: Request, principal: ReportReader) -> Response:
        found = search(request, DIAGNOSTIC_REPORT_PARAMS, "DiagnosticReport")
        page = service.diagnostic_reports(
            found, principal.actor, source=client_address(request), origin=origin(request)
        )
        return answer_page(request, "DiagnosticReport", page, found.count, found.offset)

    @router.get("/DiagnosticReport/{resource_id}", summary="Read a signed report")
    def read_report(request: Request, resource_id: str, principal: ReportReader) -> Response:
        negotiate(request.headers.get("accept"), request.query_params.get("_format"))
        resource = service.diagnostic_report(
            resource_id, principal.actor, source=client_address(request), origin=origin(request)
        )
        return fhir_response(resource)

    @router.get("/ServiceRequest", summary="Search scheduled procedure steps (orders)")
    def search_requests(request: Request, principal: StepReader) -> Response:
        found = search(request, SERVICE_REQUEST_PARAMS, "ServiceRequest")
        page = service.service_requests(found, principal.actor, source=client_address(request))
        return answer_page(request, "ServiceRequest", page, found.count, found.offset)

    @router.post(
        "/ServiceRequest",
        status_code=201,
        summary="Order a procedure: schedule the step a ServiceRequest asks for",
    )
    async def create_request(request: Request, principal: StepScheduler) -> Response:
        negotiate(request.headers.get("accept"), request.query_params.get("_format"))
        if not _is_fhir_json(request.headers.get("content-type")):
            raise UnsupportedMediaType("send the ServiceRequest as application/fhir+json")
        try:
            resource = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidQuery(f"the body is not JSON: {exc}") from exc
        created = await run_in_threadpool(
            service.create_service_request,
            resource,
            principal.actor,
            source=client_address(request),
        )
        answer = fhir_response(created, status_code=201)
        answer.headers["Location"] = f"{origin(request)}/fhir/ServiceRequest/{created['id']}"
        return answer

    @router.get("/ServiceRequest/{resource_id}", summary="Read a scheduled procedure step")
    def read_request(request: Request, resource_id: str, principal: StepReader) -> Response:
        negotiate(request.headers.get("accept"), request.query_params.get("_format"))
        resource = service.service_request(
            resource_id, principal.actor, source=client_address(request)
        )
        return fhir_response(resource)

    @router.api_route("", methods=["GET", "POST"], include_in_schema=False)
    def root(request: Request, _principal: Reader) -> Response:
        if request.method != "GET":
            raise ReadOnly("batch and transaction Bundles are not supported: read-only API")
        raise NotFound("search across all resource types is not supported (see /fhir/metadata)")

    @router.api_route(
        "/{rest:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        summary="Anything else: 404 (unknown resource type) or 405 (writes)",
        include_in_schema=False,
    )
    def unknown(request: Request, rest: str, _principal: Reader) -> Response:
        if request.method != "GET":
            raise ReadOnly(f"{request.method} is not supported: this FHIR API is read-only")
        kind = rest.split("/")[0][:60] or "(none)"
        raise NotFound(f"resource type {kind} is not served (see /fhir/metadata)")

    return router
