"""Domain errors to HTTP: the one place where they get status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from klinika.auth.errors import (
    CrossSiteRequest,
    Forbidden,
    InvalidAccount,
    LoginThrottled,
    PasswordChangeRequired,
    Unauthenticated,
    UserExists,
)
from klinika.errors import (
    Conflict,
    InvalidChange,
    InvalidInstance,
    InvalidQuery,
    KlinikaError,
    NotAcceptable,
    NotFound,
    RequestTooLarge,
    StorageFull,
    StorageUnavailable,
    UnsupportedMediaType,
)
from klinika.fhir import is_fhir_path, operation_outcome
from klinika.fhir.outcome import FHIR_JSON, ReadOnly

STATUS = {
    NotFound: 404,
    InvalidQuery: 400,
    InvalidInstance: 400,
    InvalidChange: 400,
    NotAcceptable: 406,
    UnsupportedMediaType: 415,
    StorageFull: 507,
    StorageUnavailable: 503,
    Unauthenticated: 401,
    Forbidden: 403,
    CrossSiteRequest: 403,
    PasswordChangeRequired: 403,
    RequestTooLarge: 413,
    LoginThrottled: 429,
    InvalidAccount: 400,
    UserExists: 409,
    Conflict: 409,
    ReadOnly: 405,
}


def error_response(exc: KlinikaError, path: str = "") -> JSONResponse:
    """The HTTP answer for a domain error: its status, ``{"error": message}`` (under
    ``/fhir``: an OperationOutcome), and the headers the status calls for
    (``WWW-Authenticate`` on 401, ``Retry-After`` on 429)."""
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="klinika"'
    if isinstance(exc, LoginThrottled):
        headers["Retry-After"] = str(max(exc.retry_after, 1))
    if is_fhir_path(path):
        return JSONResponse(
            operation_outcome(status, str(exc)),
            status_code=status,
            headers=headers,
            media_type=FHIR_JSON,
        )
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


#: Where a user whose password must change is sent when they navigate to a page.
PASSWORD_PAGE = "/account/password"
_MACHINE_PREFIXES = ("/api/", "/dicom-web", "/wado", "/fhir")


def _is_page(request: Request) -> bool:
    """A browser navigation to one of our pages (not an API or DICOMweb call)."""
    return (
        request.method in ("GET", "HEAD")
        and not request.url.path.startswith(_MACHINE_PREFIXES)
        and "text/html" in request.headers.get("accept", "")
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer domain errors with their status and ``{"error": message}``."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KlinikaError)
        if isinstance(exc, PasswordChangeRequired) and _is_page(request):
            return RedirectResponse(PASSWORD_PAGE, status_code=303)
        return error_response(exc, request.url.path)

    app.add_exception_handler(KlinikaError, handle)
