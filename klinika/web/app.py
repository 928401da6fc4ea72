"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from klinika import __version__
from klinika.config import Settings
from klinika.dicomweb import create_dicomweb_router, create_wado_uri_router
from klinika.runtime import Runtime
from klinika.web.errors import install_error_handlers
from klinika.web.health import create_health_router


def _no_guard(_action: str) -> Callable[[], None]:
    """Placeholder until the auth room provides the permission check."""

    def allow() -> None:
        return None

    return allow


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
    app.state.runtime = runtime
    install_error_handlers(app)
    guard: Any = _no_guard
    app.include_router(create_health_router(runtime.database, runtime.blobs))
    app.include_router(
        create_dicomweb_router(runtime.archive, settings, guard), prefix="/dicom-web"
    )
    app.include_router(create_wado_uri_router(runtime.archive, guard))
    return app
