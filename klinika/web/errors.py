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
from klinika.auth.nodes import InvalidNode
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
    InvalidNode: 400,
    UserExists: 409,
    Conflict: 409,
}


def status_of(exc: KlinikaError) -> int:
    """The status of the most specific class of ``exc`` that :data:`STATUS` names (its own
    class first, then its bases in method resolution order); 500 when none is named."""
    return next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), 500)


def error_response(exc: KlinikaError) -> JSONResponse:
    """The HTTP answer for a domain error: its status, ``{"error": message}``, and the
    headers the status calls for (``WWW-Authenticate`` on 401, ``Retry-After`` on 429)."""
    status = status_of(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="klinika"'
    if isinstance(exc, LoginThrottled):
        headers["Retry-After"] = str(max(exc.retry_after, 1))
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


#: Where a user whose password must change is sent when they navigate to a page.
PASSWORD_PAGE = "/account/password"
_MACHINE_PREFIXES = ("/api/", "/dicom-web", "/wado")


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
        return error_response(exc)

    app.add_exception_handler(KlinikaError, handle)
