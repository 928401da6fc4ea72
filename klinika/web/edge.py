"""The HTTP edge: one ASGI middleware for what every request passes before and after a route.

In this order, as the five middlewares that did it before (outermost first):

1. telemetry (:class:`~klinika.web.telemetry.Telemetry`): ``/metrics`` for its token, the
   request id bound for the logs and echoed in ``X-Request-ID``, then the access line and the
   metrics once the response is sent;
2. security headers on every response (:func:`~klinika.web.security.add_security_headers`);
3. request sanity: no NUL byte in the path or query (:func:`~klinika.web.security.refuse_nul`);
4. the origin check against CSRF (:func:`~klinika.web.csrf.refuse_cross_site`), and the mark
   for ``Secure`` cookies when the public URL is https;
5. the session gate, default deny (:class:`~klinika.auth.http.SessionGate`), which writes the
   access events with the status the client got.

The logic stays in those modules; the edge only runs it, with one wrapper around ``send``
instead of five (a response start used to pass through five closures, each building its own
view of the headers). uvicorn's ``ProxyHeadersMiddleware`` stays outside it when configured.
"""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from klinika.auth.http import SECURE_COOKIES, SessionGate
from klinika.observability.logs import bind_request_id, reset_request_id
from klinika.web.csrf import refuse_cross_site
from klinika.web.security import add_security_headers, is_cacheable, refuse_nul
from klinika.web.telemetry import REQUEST_ID_HEADER, Telemetry


class Edge:
    """ASGI middleware: telemetry, security headers, request sanity, origin check and the
    session gate around the app (see the module's docstring for what each does)."""

    def __init__(
        self, app: ASGIApp, *, telemetry: Telemetry, gate: SessionGate, public_base_url: str = ""
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.gate = gate
        self.public_base_url = public_base_url
        self.secure = public_base_url.lower().startswith("https://")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind != "http":  # no route speaks WebSocket: refuse before the app sees it
            await send({"type": "websocket.close", "code": 1008})
            return
        if self.telemetry.serves_metrics(scope):
            await self.telemetry.serve_metrics(scope, send)
            return
        rid = self.telemetry.request_id(scope)
        token = bind_request_id(rid)
        started = time.perf_counter()
        cacheable = is_cacheable(scope["path"])
        status, sent = 500, 0

        async def send_edged(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                add_security_headers(headers, cacheable=cacheable)
                headers[REQUEST_ID_HEADER] = rid
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self._guarded(scope, receive, send_edged)
        finally:
            self.gate.settle(scope, status)
            self.telemetry.observe(scope, status, sent, time.perf_counter() - started)
            reset_request_id(token)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Steps 3 to 5, then the app."""
        refusal = refuse_nul(scope)
        if refusal is None:
            if self.secure:
                scope[SECURE_COOKIES] = True
            refusal = refuse_cross_site(scope, self.public_base_url)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if await self.gate.admit(scope, receive, send):
            await self.app(scope, receive, send)
