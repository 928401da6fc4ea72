"""Cross-site request forgery defence: the origin check (every unsafe request a browser's
cookie could authenticate) and the form token of the console's pages.

The edge (:mod:`klinika.web.edge`) asks :func:`refuse_cross_site` of every request, and marks
the scope for ``Secure`` cookies when the public URL is https.

``SameSite=Strict`` alone is not enough: a page on the same *site* (another port of the same
host, a sibling subdomain) is not cross-site, so the browser sends our cookie with its forms.
The origin check compares ``Origin`` (else ``Referer``, else ``Sec-Fetch-Site``) with our own
origin, as OWASP's CSRF cheat sheet and Django do; the token (double-submit cookie, checked
by :func:`require_form_token`) is the second line for the console's HTML forms.
Bearer-token requests are not affected: no browser attaches an ``Authorization`` header to a
request another site makes.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from klinika.auth.errors import CrossSiteRequest
from klinika.auth.http import COOKIE_NAME, SECURE_COOKIES

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The double-submit cookie (readable by our scripts, which echo it in ``X-CSRF-Token``).
CSRF_COOKIE = "klinika_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_NEW_TOKEN = "klinika.csrf_new"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
#: Not authenticated by the cookie (they open a session): refused only when the request says
#: it comes from another origin (login CSRF), not for a client that says nothing.
_LOGIN_PATHS = frozenset({"/login", "/api/auth/login"})


def _origin(scheme: str, netloc: str) -> str:
    """``scheme://host[:port]`` lower-cased, the default port left out."""
    scheme, netloc = scheme.lower(), netloc.lower()
    host, colon, port = netloc.rpartition(":")
    if colon and "]" not in port and port == _DEFAULT_PORTS.get(scheme):
        netloc = host
    return f"{scheme}://{netloc}"


def own_origins(scope: Scope, public_base_url: str) -> set[str]:
    """Our origin as this request reached us (scheme after the trusted proxy, Host header),
    and the configured public URL's."""
    origins = set()
    host = Headers(scope=scope).get("host")
    if host:
        origins.add(_origin(scope.get("scheme", "http"), host))
    if public_base_url:
        parts = urlsplit(public_base_url)
        origins.add(_origin(parts.scheme, parts.netloc))
    return origins


def same_origin(scope: Scope, public_base_url: str) -> bool | None:
    """True / False when the request says where it comes from, None when it says nothing
    (a client that is not a browser)."""
    headers = Headers(scope=scope)
    ours = own_origins(scope, public_base_url)
    origin = headers.get("origin")
    if origin is not None:
        if origin.strip().lower() == "null":
            return False
        parts = urlsplit(origin.strip())
        return _origin(parts.scheme, parts.netloc) in ours
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer.strip())
        return _origin(parts.scheme, parts.netloc) in ours
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site.strip().lower() in ("same-origin", "none")
    return None


def _bearer(headers: Headers) -> bool:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(value.strip())


def refuse_cross_site(scope: Scope, public_base_url: str) -> Response | None:
    """The 403 for an unsafe request that a browser may have been tricked into sending, else
    None: one carrying our session cookie must prove it comes from our origin; one without
    (the login form) must not say it comes from elsewhere. Bearer-token requests pass."""
    if scope["method"] not in UNSAFE_METHODS:
        return None
    headers = Headers(scope=scope)
    if _bearer(headers):
        return None
    verdict = same_origin(scope, public_base_url)
    has_cookie = COOKIE_NAME in HTTPConnection(scope).cookies and scope["path"] not in _LOGIN_PATHS
    if verdict is False or (verdict is None and has_cookie):
        return JSONResponse(
            {
                "error": "cross-origin request refused: a request with the session "
                "cookie must come from this site's own pages (Origin, Referer or "
                "Sec-Fetch-Site); API clients send Authorization: Bearer"
            },
            status_code=403,
        )
    return None


def form_token(request: Request) -> str:
    """The request's CSRF token (the cookie's), or a new one that :func:`keep_form_token`
    sets on the response."""
    token = request.cookies.get(CSRF_COOKIE) or request.scope.get(_NEW_TOKEN)
    if not token or len(token) > 128:
        token = secrets.token_urlsafe(32)
        request.scope[_NEW_TOKEN] = token
    return token


def keep_form_token(request: Request, response: Response) -> None:
    """Set the cookie when :func:`form_token` made a new token for this request."""
    token = request.scope.get(_NEW_TOKEN)
    if token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path="/",
            samesite="strict",
            secure=request.url.scheme == "https" or bool(request.scope.get(SECURE_COOKIES)),
        )


async def require_form_token(request: Request) -> None:
    """The console's unsafe requests carry the token: form field ``csrf_token`` or header
    ``X-CSRF-Token`` equal to the ``klinika_csrf`` cookie (OWASP double-submit cookie).
    Requests with ``Authorization: Bearer`` carry no ambient credential and are not checked.

    Raises
    ------
    CrossSiteRequest
        The token is missing or differs.
    """
    if request.method not in UNSAFE_METHODS or _bearer(request.headers):
        return
    expected = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(expected, sent):
        raise CrossSiteRequest(
            "the form's security token is missing or stale: reload the page and try again"
        )
