"""Domain errors to HTTP: the one place where they get status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from klinika.errors import (
    InvalidInstance,
    InvalidQuery,
    KlinikaError,
    NotAcceptable,
    NotFound,
    StorageFull,
    UnsupportedMediaType,
)

STATUS = {
    NotFound: 404,
    InvalidQuery: 400,
    InvalidInstance: 400,
    NotAcceptable: 406,
    UnsupportedMediaType: 415,
    StorageFull: 507,
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer domain errors with their status and ``{"error": message}``."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
        return JSONResponse({"error": str(exc)}, status_code=status)

    app.add_exception_handler(KlinikaError, handle)
