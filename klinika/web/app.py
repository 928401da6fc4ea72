"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from klinika import __version__
from klinika.auth.http import PUBLIC_PATHS, Guard, SessionGate
from klinika.config import Settings
from klinika.dicomweb import create_dicomweb_router, create_wado_uri_router
from klinika.fhir import FhirService, create_fhir_router
from klinika.runtime import Runtime
from klinika.web.audit import create_audit_router
from klinika.web.auth import create_auth_router
from klinika.web.edge import Edge
from klinika.web.errors import error_response, install_error_handlers
from klinika.web.health import create_health_router
from klinika.web.management import create_management_router
from klinika.web.pages import PageContext, Pages, create_pages_router
from klinika.web.pages.context import STATIC_DIR
from klinika.web.reports import create_reports_router
from klinika.web.telemetry import Telemetry, install_state_probes
from klinika.web.viewer import create_viewer_router
from klinika.web.workflow import create_workflow_router


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the ASGI app. A runtime given by the caller is not closed by the app."""
    owned = runtime is None
    runtime = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            runtime.close()

    app = FastAPI(
        title="Klinika PACS",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    renderer = Pages(settings)
    install_error_handlers(app, renderer)
    # Default deny: every path needs a session except PUBLIC_PATHS; each route then declares
    # its action with Depends(guard(...)), which also writes the access audit event.
    gate = SessionGate(
        auth=runtime.auth, audit=runtime.audit, on_error=error_response, public_paths=PUBLIC_PATHS
    )
    telemetry = Telemetry(metrics=runtime.metrics, audit=runtime.audit, settings=settings)
    # telemetry, security headers, NUL bytes, CSRF origin check, session gate: one middleware
    app.add_middleware(
        Edge, telemetry=telemetry, gate=gate, public_base_url=settings.public_base_url
    )
    if settings.proxy_networks:
        # outermost: who the client is (and the scheme) is settled before anything reads it
        app.add_middleware(
            ProxyHeadersMiddleware,
            trusted_hosts=[str(network) for network in settings.proxy_networks],
        )
    guard = Guard(runtime.auth, runtime.audit)
    install_state_probes(
        runtime.metrics,
        settings,
        database=runtime.database,
        blobs=runtime.blobs,
        archive=runtime.archive,
        audit=runtime.audit,
    )
    app.include_router(create_health_router(runtime.database, runtime.blobs, settings))
    app.include_router(create_auth_router(runtime.auth, guard))
    app.include_router(create_audit_router(runtime.audit, guard))
    app.include_router(
        create_dicomweb_router(runtime.archive, settings, guard, runtime.metrics),
        prefix="/dicom-web",
    )
    app.include_router(create_wado_uri_router(runtime.archive, guard))
    app.include_router(create_reports_router(runtime.reports, guard))
    fhir = FhirService(runtime.archive, runtime.reports, runtime.schedule)
    app.include_router(create_fhir_router(fhir, settings, guard), prefix="/fhir")
    app.include_router(create_management_router(runtime.management, guard))
    app.include_router(create_workflow_router(runtime.schedule, guard))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    pages = PageContext(
        settings=settings,
        pages=renderer,
        guard=guard,
        auth=runtime.auth,
        audit=runtime.audit,
        archive=runtime.archive,
        database=runtime.database,
        blobs=runtime.blobs,
        reports=runtime.reports,
        management=runtime.management,
        schedule=runtime.schedule,
        nodes=runtime.nodes,
        jobs=runtime.jobs,
    )
    app.include_router(create_pages_router(pages))
    # last: OHIF's files and client-side routes answer the paths nobody else does
    app.include_router(create_viewer_router(settings, runtime.auth, guard, renderer))
    return app
