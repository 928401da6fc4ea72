"""The HTTP side of auth: the session gate (default deny), the permission guard, the cookie.

Two layers, one question each:

* :class:`SessionGate` (asked by the HTTP edge, :class:`klinika.web.edge.Edge`) refuses every
  request without a valid session, except the paths in ``public_paths``. A route added
  tomorrow is closed until someone opens it.
* :class:`Guard` builds the per-route dependency ``Depends(guard("dicom:read"))``: it asks
  :meth:`AuthService.authorize` and writes the access event of audited actions, one per request,
  with the route's study/series/instance UIDs. The event's outcome comes from the HTTP status,
  which the gate sees when the response has been sent.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from anyio import to_thread
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from klinika.audit import Actor, AuditTrail, Outcome
from klinika.auth.errors import Forbidden, Unauthenticated
from klinika.auth.models import Principal
from klinika.auth.permissions import ACTIONS, is_allowed
from klinika.auth.service import AuthService
from klinika.errors import KlinikaError

COOKIE_NAME = "klinika_session"
#: Scope key set by the origin check when the public URL is https (cookies get ``Secure``).
SECURE_COOKIES = "klinika.secure_cookies"
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")

#: Reachable without a session (a session, when there is one, is still read). Everything else
#: needs one. (Browsers fetch the web-app manifest and the favicon without cookies.)
PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/health/ready",
        "/api/auth/login",
        "/login",
        "/language",
        "/manifest.json",
        "/favicon.ico",
        # FHIR's CapabilityStatement: how to authenticate, what is served; no patient data
        "/fhir/metadata",
    }
)
#: Path prefixes reachable without a session: our pages' CSS and JS (no patient data).
PUBLIC_PREFIXES = ("/static/",)
#: Where a browser without a session is sent when it navigates to a page.
LOGIN_PAGE = "/login"
#: Machine interfaces: they answer 401, never a redirect to the login page.
_API_PREFIXES = ("/api/", "/dicom-web", "/wado", "/fhir")

#: Actions whose every allowed request leaves an access event (denials are always recorded).
AUDITED_ACTIONS = frozenset(
    {"dicom:read", "dicom:store", "dicom:annotate", "dicom:delete", "audit:read"}
)

_PRINCIPAL = "klinika.principal"
_PENDING = "klinika.audit"

#: Route path parameter names, per resource column of the audit event.
_UID_PARAMS = {
    "study_uid": ("study_uid", "study"),
    "series_uid": ("series_uid", "series"),
    "sop_instance_uid": ("sop_instance_uid", "sop_uid", "instance_uid", "sop"),
    "patient_id": ("patient_id",),
}
_QUERY_UIDS = {
    "study_uid": ("StudyInstanceUID", "0020000D", "studyUID"),
    "series_uid": ("SeriesInstanceUID", "0020000E", "seriesUID"),
    "sop_instance_uid": ("SOPInstanceUID", "00080018", "objectUID"),
    "patient_id": ("PatientID", "00100020"),
}


def request_token(connection: HTTPConnection) -> str | None:
    """The token from ``Authorization: Bearer`` or, failing that, the session cookie."""
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return connection.cookies.get(COOKIE_NAME) or None


def scope_principal(connection: HTTPConnection) -> Principal | None:
    """The principal the gate authenticated for this request, if any."""
    return connection.scope.get(_PRINCIPAL)


def _wants_page(scope: Scope, path: str) -> bool:
    """A browser navigation (GET of HTML) outside the machine interfaces."""
    if scope["method"] not in ("GET", "HEAD") or path.startswith(_API_PREFIXES):
        return False
    return "text/html" in HTTPConnection(scope).headers.get("accept", "")


def _login_redirect(scope: Scope, path: str) -> Response:
    query = scope.get("query_string", b"").decode("latin-1")
    here = quote(path + (f"?{query}" if query else ""), safe="")
    return RedirectResponse(f"{LOGIN_PAGE}?next={here}", status_code=303)


def client_address(connection: HTTPConnection) -> str | None:
    """THE client address of a request: the TCP peer, or what a trusted proxy said it is
    (``X-Forwarded-For`` is read by uvicorn's ProxyHeadersMiddleware only from the addresses
    in ``KLINIKA_TRUSTED_PROXIES``). Anything that is not an IP address (a proxy passing a
    forged header through) nor a plain host name is recorded as ``invalid``, never as the
    text it carried."""
    if not connection.client:
        return None
    host = connection.client.host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host if _HOST_NAME.fullmatch(host) else "invalid"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or bool(request.scope.get(SECURE_COOKIES))


def set_session_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, Secure when the client reached us over TLS or the public
    URL is https."""
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=max(max_age, 0),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


@dataclass
class _Access:
    actor: Actor
    action: str
    resource: dict[str, str | None]
    details: dict[str, Any] = field(default_factory=dict)


def _access_context(request: Request) -> tuple[dict[str, str | None], dict[str, Any]]:
    """Resource UIDs (path parameters first, then query keys) and request details."""
    resource: dict[str, str | None] = {}
    for column, names in _UID_PARAMS.items():
        resource[column] = next(
            (request.path_params[n] for n in names if n in request.path_params), None
        )
    for column, keys in _QUERY_UIDS.items():
        if resource.get(column) is None:
            resource[column] = next(
                (request.query_params[k] for k in keys if request.query_params.get(k)), None
            )
    details: dict[str, Any] = {"method": request.method, "path": request.url.path}
    if request.url.query:
        details["query"] = request.url.query[:1000]
    return resource, details


def note_access(
    request: Request,
    *,
    study_uid: str | None = None,
    patient_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Tell this request's access events what the route found out (the study and patient a
    STOW or an upload stored): fills their empty columns and adds ``details``."""
    for access in request.scope.get(_PENDING) or ():
        for column, value in (("study_uid", study_uid), ("patient_id", patient_id)):
            if value and not access.resource.get(column):
                access.resource[column] = value
        access.details.update(details or {})


class ReadCoalescer:
    """Decides which study reads are worth an event of their own.

    A viewer opening a study sends hundreds of requests (metadata, one per frame, thumbnails).
    The trail keeps one ``dicom:read`` event per session and study every ``window`` seconds,
    with the first request's path; searches (no study in the request) are always recorded.
    """

    def __init__(self, window: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._seen: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def first(self, session_id: str, action: str, study_uid: str | None) -> bool:
        """True when this read should be recorded."""
        if action != "dicom:read" or not study_uid:
            return True
        key, now = (session_id, action, study_uid), self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen < self.window:
                return False
            if len(self._seen) > 100_000:
                self._seen.clear()
            self._seen[key] = now
        return True


class Guard:
    """``guard(action)`` returns the FastAPI dependency admitting principals allowed to do
    ``action``; the dependency returns the :class:`Principal`."""

    def __init__(
        self, auth: AuthService, audit: AuditTrail, coalescer: ReadCoalescer | None = None
    ) -> None:
        self.auth = auth
        self.audit = audit
        self.coalescer = coalescer or ReadCoalescer()

    def __call__(
        self, action: str, *, recorded_as: str | None = None, touches_data: bool = True
    ) -> Require:
        """The dependency admitting ``action``. With ``recorded_as``, principals who may also
        do that broader action have their access recorded under it (an operator's STOW is
        ``dicom:store``, a doctor's ``dicom:annotate``). ``touches_data=False`` for a route
        that only shows a page (the upload form): the check is the same, but an allowed
        request is no access event (what it stores later is)."""
        for name in (action, recorded_as):
            if name is not None and name not in ACTIONS:
                raise ValueError(f"unknown action {name!r}: add it to PERMISSIONS first")
        return Require(self, action, recorded_as, touches_data)

    def principal(self, request: Request) -> Principal:
        """The gate's principal for this request, or authenticate now (no gate in front)."""
        principal = request.scope.get(_PRINCIPAL)
        if principal is None:
            token = request_token(request)
            if not token:
                raise Unauthenticated("log in first")
            principal = self.auth.authenticate(token)
            request.scope[_PRINCIPAL] = principal
        return principal

    def check(
        self,
        request: Request,
        action: str,
        recorded_as: str | None = None,
        touches_data: bool = True,
    ) -> Principal:
        principal = self.principal(request)
        source = client_address(request)
        try:
            self.auth.authorize(principal, action)
        except Forbidden:
            resource, details = _access_context(request)
            self.audit.record(
                principal.actor, action, Outcome.DENIED, source=source, details=details, **resource
            )
            raise
        if recorded_as is not None and is_allowed(principal.role, recorded_as):
            action = recorded_as
        if action in AUDITED_ACTIONS and touches_data:
            resource, details = _access_context(request)
            if not self.coalescer.first(principal.session_id, action, resource["study_uid"]):
                return principal
            pending = request.scope.get(_PENDING)
            if pending is None:  # no gate to see the status: record the admission now
                self.audit.record(
                    principal.actor,
                    action,
                    Outcome.SUCCESS,
                    source=source,
                    details=details,
                    **resource,
                )
            else:
                pending.append(_Access(principal.actor, action, resource, details))
        return principal


class Require:
    """The dependency for one action. ``action`` is public: the route sweep test reads it."""

    def __init__(
        self,
        guard: Guard,
        action: str,
        recorded_as: str | None = None,
        touches_data: bool = True,
    ) -> None:
        self.guard = guard
        self.action = action
        self.recorded_as = recorded_as
        self.touches_data = touches_data

    async def __call__(self, request: Request) -> Principal:
        principal = request.scope.get(_PRINCIPAL)
        arguments = (request, self.action, self.recorded_as, self.touches_data)
        if principal is not None and is_allowed(principal.role, self.action):
            # Admitted by the gate's principal: no I/O here (the event is written by the gate).
            return self.guard.check(*arguments)
        return await to_thread.run_sync(self.guard.check, *arguments)

    def __repr__(self) -> str:
        return f"Require({self.action!r})"


class GuardedEndpoint:
    """A plain ASGI endpoint behind ``require``, the same check ``Depends(guard(action))``
    makes: for the hot paths (a viewer's frames) where FastAPI's dependency solving and
    request wrapping cost more than the work. ``require`` is public: the route sweep test reads
    its action. Errors the handler raises reach the app's error handlers as from any route."""

    def __init__(self, require: Require, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self.require = require
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await self.require(request)
        response = await self.handler(request)
        await response(scope, receive, send)

    def __repr__(self) -> str:
        return f"GuardedEndpoint({self.require!r}, {self.handler.__qualname__})"


class SessionGate:
    """Default deny for HTTP, and the place where access events are written with the status
    the client got (``success`` below 400, else ``failure``). The edge
    (:class:`klinika.web.edge.Edge`) asks :meth:`admit` before the app sees a request and
    calls :meth:`settle` once the response has been sent."""

    def __init__(
        self,
        *,
        auth: AuthService,
        audit: AuditTrail,
        on_error: Callable[[KlinikaError, str], Response],
        public_paths: frozenset[str] = PUBLIC_PATHS,
        public_prefixes: tuple[str, ...] = PUBLIC_PREFIXES,
    ) -> None:
        self.auth = auth
        self.audit = audit
        self.on_error = on_error
        self.public_paths = public_paths
        self.public_prefixes = public_prefixes

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """True when the request may go on (its principal, if any, in the scope); else the
        refusal (401, or the login page for a browser's navigation) is sent and False."""
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        token = request_token(HTTPConnection(scope))
        if path.startswith(self.public_prefixes):
            pass
        elif path in self.public_paths:
            if token:  # a page that is public still greets a logged-in user by name
                with suppress(Unauthenticated):
                    scope[_PRINCIPAL] = await self._authenticate(token)
        else:
            try:
                if not token:
                    raise Unauthenticated("log in first")
                scope[_PRINCIPAL] = await self._authenticate(token)
            except Unauthenticated as exc:
                if _wants_page(scope, path):
                    await _login_redirect(scope, path)(scope, receive, send)
                else:
                    await self.on_error(exc, path)(scope, receive, send)
                return False
        scope[_PENDING] = []
        return True

    def settle(self, scope: Scope, status: int) -> None:
        """Write the access events the route's guard left for this request, with the status
        it answered (queued: no I/O here)."""
        pending: list[_Access] | None = scope.get(_PENDING)
        if pending:
            source = client_address(HTTPConnection(scope))
            self._record(pending, status, source)

    async def _authenticate(self, token: str) -> Principal:
        """The token's principal: from the session cache on the event loop (a viewer's
        hundreds of requests per study), else checked against the index in a thread."""
        principal = self.auth.cached_principal(token)
        if principal is not None:
            return principal
        return await to_thread.run_sync(self.auth.authenticate, token)

    def _record(self, pending: list[_Access], status: int, source: str | None) -> None:
        outcome = Outcome.SUCCESS if status < 400 else Outcome.FAILURE
        for access in pending:
            self.audit.record_soon(
                access.actor,
                access.action,
                outcome,
                source=source,
                details={**access.details, "status": status},
                **access.resource,
            )
