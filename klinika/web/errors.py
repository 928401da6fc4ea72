"""Domain errors to HTTP: the one place where they get status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from klinika.auth.errors import (
    Forbidden,
    InvalidAccount,
    LoginThrottled,
    Unauthenticated,
    UserExists,
)
from klinika.errors import (
    Conflict,
    InvalidInstance,
    InvalidQuery,
    KlinikaError,
    NotAcceptable,
    NotFound,
    StorageFull,
    StorageUnavailable,
    UnsupportedMediaType,
)

STATUS = {
    NotFound: 404,
    InvalidQuery: 400,
    InvalidInstance: 400,
    NotAcceptable: 406,
    UnsupportedMediaType: 415,
    StorageFull: 507,
    StorageUnavailable: 503,
    Unauthenticated: 401,
    Forbidden: 403,
    LoginThrottled: 429,
    InvalidAccount: 400,
    UserExists: 409,
    Conflict: 409,
}


def error_response(exc: KlinikaError) -> JSONResponse:
    """The HTTP answer for a domain error: its status, ``{"error": message}``, and the
    headers the status calls for (``WWW-Authenticate`` on 401, ``Retry-After`` on 429)."""
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="klinika"'
    if isinstance(exc, LoginThrottled):
        headers["Retry-After"] = str(max(exc.retry_after, 1))
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer domain errors with their status and ``{"error": message}``."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KlinikaError)
        return error_response(exc)

    app.add_exception_handler(KlinikaError, handle)
