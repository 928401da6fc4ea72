"""DICOM nodes (admin), Send to…, Query/Retrieve and the jobs page.

The nodes page lists the configured nodes (read-only, "from configuration") and the console's
(add, edit, remove, Test = C-ECHO with its round trip), all through
:class:`klinika.auth.nodes.NodeRegistry`, the lookup the DIMSE admission and C-MOVE use too.
Send to… and Retrieve start background jobs (:class:`klinika.dimse.jobs.Jobs`); the jobs
page shows their progress and result and reloads itself while one runs.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydicom.datadict import keyword_for_tag
from starlette.concurrency import run_in_threadpool

from klinika.audit import Outcome
from klinika.auth.http import client_address
from klinika.auth.models import Principal
from klinika.auth.nodes import RETRIEVE_METHODS, checked_node
from klinika.config import DIMSE_SERVICES
from klinika.dicom.attributes import Level
from klinika.errors import KlinikaError
from klinika.i18n import N_
from klinika.index.query import Query as IndexQuery
from klinika.web.pages.context import PageContext

#: How each service is shown on the nodes page (what the node may use on us).
SERVICE_LABELS = {
    "echo": N_("Echo (C-ECHO)"),
    "store": N_("Store to us (C-STORE)"),
    "find": N_("Query us (C-FIND)"),
    "move": N_("Retrieve from us (C-MOVE)"),
    "get": N_("Retrieve from us (C-GET)"),
    "worklist": N_("Modality worklist (C-FIND)"),
    "mpps": N_("Performed procedure steps (MPPS)"),
    "commit": N_("Storage commitment"),
}
RETRIEVE_LABELS = {"move": N_("C-MOVE to us"), "get": N_("C-GET")}
#: The remote query form: field -> study-level key.
QUERY_FIELDS = {
    "name": "PatientName",
    "pid": "PatientID",
    "date": "StudyDate",
    "modality": "ModalitiesInStudy",
    "accession": "AccessionNumber",
}


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    registry, jobs, pages = context.nodes, context.jobs, context.pages
    Manager = Annotated[Principal, Depends(context.guard("node:manage"))]
    Sender = Annotated[Principal, Depends(context.guard("dicom:send"))]
    Retriever = Annotated[Principal, Depends(context.guard("dicom:retrieve"))]

    def nodes_page(request: Request, status_code: int = 200, **values: Any) -> Response:
        return pages.render(
            request,
            "nodes/nodes.html",
            status_code=status_code,
            active="admin",
            tab="nodes",
            nodes=registry.nodes(),
            services=[(s, SERVICE_LABELS[s]) for s in sorted(DIMSE_SERVICES)],
            retrieve_methods=[(m, RETRIEVE_LABELS[m]) for m in RETRIEVE_METHODS],
            retrieve_labels=RETRIEVE_LABELS,
            **values,
        )

    def form_node(form: dict[str, Any]) -> Any:
        return checked_node(
            str(form.get("title", "")),
            str(form.get("host", "")),
            str(form.get("port", "")),
            [s for s in DIMSE_SERVICES if form.get(f"service_{s}") == "on"],
            tls=form.get("tls") == "on",
            retrieve=str(form.get("retrieve", "move")),
            description=str(form.get("description", "")),
        )

    @router.get("/admin/nodes")
    def nodes(request: Request, _: Manager) -> Response:
        registry.forget()  # the admin sees the index as it is now
        return nodes_page(request)

    @router.post("/admin/nodes")
    async def add_node(request: Request, principal: Manager) -> Response:
        form = dict(await request.form())
        try:
            node = form_node(form)
            await run_in_threadpool(
                registry.add, node, actor=principal.actor, source=client_address(request)
            )
        except KlinikaError as exc:
            typed = {
                "title": form.get("title", ""),
                "host": form.get("host", ""),
                "port": form.get("port", ""),
                "tls": form.get("tls") == "on",
                "services": [x for x in DIMSE_SERVICES if form.get(f"service_{x}") == "on"],
                "retrieve": form.get("retrieve", "move"),
                "description": form.get("description", ""),
            }
            return nodes_page(request, status_code=400, error=str(exc), typed=typed)
        return RedirectResponse(f"/admin/nodes?saved={node.title}", status_code=303)

    @router.post("/admin/nodes/test")
    async def test_node(
        request: Request, principal: Manager, title: Annotated[str, Form(max_length=16)]
    ) -> Response:
        try:
            result = await run_in_threadpool(
                jobs.echo, title, actor=principal.actor, source=client_address(request)
            )
        except KlinikaError as exc:
            return nodes_page(request, status_code=400, error=str(exc))
        return nodes_page(request, echo=(title, result))

    @router.post("/admin/nodes/{node_id}")
    async def update_node(request: Request, node_id: int, principal: Manager) -> Response:
        form = dict(await request.form())
        try:
            node = form_node(form)
            await run_in_threadpool(
                registry.update,
                node_id,
                node,
                actor=principal.actor,
                source=client_address(request),
            )
        except KlinikaError as exc:
            return nodes_page(request, status_code=400, error=str(exc))
        return RedirectResponse(f"/admin/nodes?saved={node.title}", status_code=303)

    @router.post("/admin/nodes/{node_id}/delete")
    async def remove_node(request: Request, node_id: int, principal: Manager) -> Response:
        try:
            await run_in_threadpool(
                registry.remove, node_id, actor=principal.actor, source=client_address(request)
            )
        except KlinikaError as exc:
            return nodes_page(request, status_code=400, error=str(exc))
        return RedirectResponse("/admin/nodes?removed=1", status_code=303)

    # ------------------------------------------------------------ Send to…
    @router.get("/send/studies/{study_uid}")
    async def send_form(request: Request, study_uid: str, principal: Sender) -> Response:
        # the form shows the patient and the series: an access to the study, audited
        context.audit.record_soon(
            principal.actor,
            "dicom:read",
            Outcome.SUCCESS,
            study_uid=study_uid,
            source=client_address(request),
            details={"method": "GET", "path": request.url.path},
        )
        series = await run_in_threadpool(
            context.archive.search,
            IndexQuery(
                Level.SERIES,
                {"StudyInstanceUID": study_uid},
                include=frozenset(
                    (
                        "Modality",
                        "SeriesDescription",
                        "SeriesNumber",
                        "NumberOfSeriesRelatedInstances",
                    )
                ),
                strict=False,
            ),
        )
        study = await run_in_threadpool(
            context.archive.search,
            IndexQuery(
                Level.STUDY,
                {"StudyInstanceUID": study_uid},
                include=frozenset(("PatientName", "PatientID", "StudyDescription", "StudyDate")),
                strict=False,
            ),
        )
        return pages.render(
            request,
            "nodes/send.html",
            status_code=200 if study.matches else 404,
            active="jobs",
            study_uid=study_uid,
            study=_flat(study.matches[0]) if study.matches else None,
            series=[_flat(s) for s in series.matches],
            nodes=registry.nodes(),
        )

    @router.post("/send/studies/{study_uid}")
    async def send(request: Request, study_uid: str, principal: Sender) -> Response:
        form = await request.form()
        node = str(form.get("node", ""))
        series_uids = [str(v) for v in form.getlist("series")]
        try:
            job = await run_in_threadpool(
                lambda: jobs.send(
                    node,
                    study_uid,
                    series_uids,
                    actor=principal.actor,
                    source=client_address(request),
                )
            )
        except KlinikaError as exc:
            return pages.render(
                request, "nodes/jobs.html", status_code=400, active="jobs", jobs=[], error=str(exc)
            )
        return RedirectResponse(f"/jobs?started={job.job_id}", status_code=303)

    # ------------------------------------------------------------ the jobs
    @router.get("/jobs")
    async def jobs_page(request: Request, _: Sender) -> Response:
        listed = await run_in_threadpool(jobs.list)
        return pages.render(
            request,
            "nodes/jobs.html",
            active="jobs",
            jobs=listed,
            running=any(not job.finished for job in listed),
        )

    @router.get("/api/jobs", tags=["jobs"])
    async def jobs_api(_: Sender) -> JSONResponse:
        """The newest Send to… and retrieve jobs with their progress and result."""
        listed = await run_in_threadpool(jobs.list)
        return JSONResponse([job.as_dict() for job in listed])

    @router.get("/api/jobs/{job_id}", tags=["jobs"])
    async def job_api(job_id: int, _: Sender) -> JSONResponse:
        """One job: state (queued, running, done, failed, interrupted), n of m, result."""
        job = await run_in_threadpool(jobs.get, job_id)
        return JSONResponse(job.as_dict())

    # ------------------------------------------------------- Query/Retrieve
    @router.get("/retrieve")
    async def query_page(
        request: Request,
        principal: Retriever,
        node: Annotated[str, Query(max_length=16)] = "",
        name: Annotated[str, Query(max_length=64)] = "",
        pid: Annotated[str, Query(max_length=64)] = "",
        date: Annotated[str, Query(max_length=17)] = "",
        modality: Annotated[str, Query(max_length=16)] = "",
        accession: Annotated[str, Query(max_length=16)] = "",
    ) -> Response:
        typed = {
            "name": name,
            "pid": pid,
            "date": date,
            "modality": modality,
            "accession": accession,
        }
        found, error = None, None
        if node:
            keys = {QUERY_FIELDS[field]: value for field, value in typed.items()}
            try:
                found = await run_in_threadpool(
                    lambda: jobs.query(
                        node, keys, actor=principal.actor, source=client_address(request)
                    )
                )
            except KlinikaError as exc:
                error = str(exc)
        return pages.render(
            request,
            "nodes/retrieve.html",
            status_code=502 if error else 200,
            active="retrieve",
            nodes=registry.nodes(),
            node=node,
            typed=typed,
            found=found,
            error=error,
        )

    @router.post("/retrieve")
    async def retrieve(request: Request, principal: Retriever) -> Response:
        form = await request.form()
        node = str(form.get("node", ""))
        chosen = [str(v) for v in form.getlist("study")]
        patients = {uid: str(form.get(f"patient_{uid}", "")) for uid in chosen}
        try:
            started = await run_in_threadpool(
                lambda: jobs.retrieve(
                    node,
                    chosen,
                    patient_ids=patients,
                    actor=principal.actor,
                    source=client_address(request),
                )
            )
        except KlinikaError as exc:
            return pages.render(
                request, "nodes/jobs.html", status_code=400, active="jobs", jobs=[], error=str(exc)
            )
        first = started[0].job_id if started else ""
        return RedirectResponse(f"/jobs?started={first}", status_code=303)

    return router


def _flat(match: dict[str, Any]) -> dict[str, str]:
    """A DICOM JSON match as keyword -> first value as text (names: their alphabetic form)."""
    flat = {}
    for tag, element in match.items():
        keyword = keyword_for_tag(int(tag, 16)) or tag
        values = element.get("Value") or [""]
        value = values[0]
        if isinstance(value, dict):
            value = value.get("Alphabetic", "")
        flat[keyword] = str(value)
    return flat
