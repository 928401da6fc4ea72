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
from klinika.auth.http import scope_principal
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
from klinika.fhir import is_fhir_path, operation_outcome
from klinika.fhir.outcome import FHIR_JSON, ReadOnly
from klinika.i18n import N_, translator
from klinika.web.pages.context import ROLE_LABELS, Pages, request_language
from klinika.web.pages.labels import ACTION_LABELS

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
    ReadOnly: 405,
}


def status_of(exc: KlinikaError) -> int:
    """The status of the most specific class of ``exc`` that :data:`STATUS` names (its own
    class first, then its bases in method resolution order); 500 when none is named."""
    return next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), 500)


def error_response(exc: KlinikaError, path: str = "") -> JSONResponse:
    """The HTTP answer for a domain error: its status, ``{"error": message}`` (under
    ``/fhir``: an OperationOutcome), and the headers the status calls for
    (``WWW-Authenticate`` on 401, ``Retry-After`` on 429)."""
    status = status_of(exc)
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


FORBIDDEN_TITLE = N_("Not for your role")
FORBIDDEN_TEXT = N_("Your role (%(role)s) may not open this page: %(action)s.")
MISSING_TITLE = N_("Page not found")
MISSING_TEXT = N_("There is no page at this address.")


def page_error(pages: Pages, request: Request, exc: KlinikaError) -> Response | None:
    """The HTML page a browser gets for a refusal or a missing page (in the user's language,
    with a way back); None for other errors. API and DICOMweb clients keep JSON."""
    if not _is_page(request) or not isinstance(exc, Forbidden | NotFound):
        return None
    principal = scope_principal(request)
    speak = translator(request_language(request, principal))
    if isinstance(exc, Forbidden):
        status, title = 403, speak.gettext(FORBIDDEN_TITLE)
        message = speak.gettext(
            FORBIDDEN_TEXT,
            role=speak.gettext(ROLE_LABELS[principal.role]) if principal else "",
            action=speak.gettext(ACTION_LABELS.get(exc.action, exc.action)),
        )
    else:
        status, title, message = 404, speak.gettext(MISSING_TITLE), speak.gettext(MISSING_TEXT)
    return pages.render(
        request, "error.html", status_code=status, status=status, title=title, message=message
    )


def install_error_handlers(app: FastAPI, pages: Pages | None = None) -> None:
    """Answer domain errors with their status and ``{"error": message}``; with ``pages``, a
    browser navigating to a page it may not open (or that is not there) gets an HTML page."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KlinikaError)
        if isinstance(exc, PasswordChangeRequired) and _is_page(request):
            return RedirectResponse(PASSWORD_PAGE, status_code=303)
        if pages is not None:
            page = page_error(pages, request, exc)
            if page is not None:
                return page
        return error_response(exc, request.url.path)

    app.add_exception_handler(KlinikaError, handle)
