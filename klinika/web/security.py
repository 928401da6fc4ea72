"""Security headers, set once for every response by the edge (:mod:`klinika.web.edge`;
nginx adds only HSTS), and the refusal of NUL bytes in a request's path or query.

Our own pages get a strict Content-Security-Policy (no inline script or style); a response that
sets its own policy (the OHIF viewer's index.html, with the hashes of its inline scripts) keeps it.
Every response that does not say how it may be cached gets ``Cache-Control: no-store``: search
results, metadata, reports, users and the audit trail hold patient or account data (ASVS 8.2.1).
Responses that may be kept say so themselves (frames and rendered images ``private, max-age``;
the viewer's hashed files ``immutable``), as do our static files (no patient data).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

PAGE_CSP = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "style-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


#: Paths whose responses hold no patient data and may be cached by the browser's rules.
CACHEABLE_PREFIXES = ("/static/",)


def is_cacheable(path: str) -> bool:
    """Whether responses to ``path`` may be cached by the browser's rules (no patient data)."""
    return path.startswith(CACHEABLE_PREFIXES)


def add_security_headers(headers: MutableHeaders, *, cacheable: bool) -> None:
    """:data:`SECURITY_HEADERS` on a response's headers, ``Cache-Control: no-store`` unless
    ``cacheable`` or the response says otherwise, and :data:`PAGE_CSP` on HTML that has no
    policy of its own (the edge calls this on every response start)."""
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if not cacheable:
        headers.setdefault("Cache-Control", "no-store")
    if headers.get("content-type", "").startswith("text/html"):
        headers.setdefault("Content-Security-Policy", PAGE_CSP)


def refuse_nul(scope: Scope) -> Response | None:
    """The 400 for a path or query with a NUL byte, else None: no route can use one, and file
    paths, PostgreSQL strings and C libraries choke on it (a 500 before)."""
    query = scope.get("query_string", b"").lower()
    if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
        return JSONResponse(
            {"error": "the request's path or query contains a NUL byte"}, status_code=400
        )
    return None
