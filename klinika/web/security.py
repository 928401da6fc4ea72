"""Security headers, set here once for every response (nginx adds only HSTS).

Our own pages get a strict Content-Security-Policy (no inline script or style); a response that
sets its own policy (the OHIF viewer's index.html, with the hashes of its inline scripts) keeps it.
Every response that does not say how it may be cached gets ``Cache-Control: no-store``: search
results, metadata, reports, users and the audit trail hold patient or account data (ASVS 8.2.1).
Responses that may be kept say so themselves (frames and rendered images ``private, max-age``;
the viewer's hashed files ``immutable``), as do our static files (no patient data).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response and :data:`PAGE_CSP`
    to HTML responses that have no policy of their own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        cacheable = scope["path"].startswith(CACHEABLE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not cacheable:
                    headers.setdefault("Cache-Control", "no-store")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", PAGE_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestSanity:
    """ASGI middleware refusing (400) a path or query with a NUL byte: no route can use one,
    and file paths, PostgreSQL strings and C libraries choke on it (a 500 before)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").lower()
            if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
                response = JSONResponse(
                    {"error": "the request's path or query contains a NUL byte"}, status_code=400
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
