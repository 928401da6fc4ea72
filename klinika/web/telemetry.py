"""The HTTP side of observability: request ids, the access log, HTTP metrics, ``/metrics``.

* :class:`TrustedRequestIds` (outermost, put around the app by :mod:`klinika.web.server`)
  keeps a client's ``X-Request-ID`` only when the TCP peer is a trusted proxy
  (``KLINIKA_TRUSTED_PROXIES``, the list that also decides who may set ``X-Forwarded-For``);
  anyone else's is replaced by a fresh id.
* :class:`Telemetry` (asked by the app's edge, :class:`klinika.web.edge.Edge`, first and
  last around each request) binds the id for the request's log
  records, echoes it in the response, writes one access line (method, route template, path
  without the query string, status, duration, user, client) and records the request in the
  metrics. It also answers ``GET /metrics`` when ``metrics_token`` is set, to a bearer of that
  token only; without a token the path falls through to the session gate, so the main port
  never serves metrics to an anonymous client.
* :func:`install_state_probes` adds the installation's states to the metrics (storage, index
  size, backups, checks).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.requests import HTTPConnection
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from klinika.archive import Archive
from klinika.audit import AuditTrail
from klinika.auth.http import scope_principal
from klinika.backup.schedule import (
    CHAIN_ACTION,
    DRILL_ACTION,
    VERIFY_ACTION,
    backup_status,
    last_check,
)
from klinika.config import Settings
from klinika.db import Database
from klinika.observability import HTTP_ACCESS, Metrics, metrics_registry, render_metrics
from klinika.observability.logs import new_request_id
from klinika.storage import BlobStore

access_log = logging.getLogger(HTTP_ACCESS)

REQUEST_ID_HEADER = "X-Request-ID"
_SCOPE_KEY = "klinika.request_id"
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Login routes: a 401 or 429 there is a failed login, not a missing session.
LOGIN_ROUTES = frozenset({("POST", "/api/auth/login"), ("POST", "/login")})
_LOGIN_FAILURES = {401: "rejected", 429: "throttled"}


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedRequestIds:
    """ASGI wrapper outside everything (so it sees the TCP peer): marks the request's own
    ``X-Request-ID`` as trusted when the peer is a trusted proxy (``trusted_proxies``, the
    one list that also decides who may set ``X-Forwarded-For``; see :func:`create_app`)."""

    def __init__(self, app: ASGIApp, trusted: Iterable[IPNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.trusted:
            peer = scope.get("client")
            if peer and self._is_trusted(peer[0]):
                given = HTTPConnection(scope).headers.get(REQUEST_ID_HEADER.lower(), "")
                if _VALID_ID.fullmatch(given):
                    scope[_SCOPE_KEY] = given
        await self.app(scope, receive, send)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (``/dicom-web/studies/{study_uid}``), never the raw
    path: a label per study would be a time series per study."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return "unmatched"
    if isinstance(route, Mount):  # static files: one series for the whole mount
        return template + "/{path}"
    if ":path}" in template:  # a catch-all: its segments are not countable
        return template
    # An included router's route knows its path without the router's prefix: the prefix is
    # what the request path has before the template's segments.
    raw = scope["path"].rstrip("/").split("/")
    depth = len(template.rstrip("/").split("/")) - 1
    prefix = "/".join(raw[: len(raw) - depth]) if depth else scope["path"].rstrip("/")
    return prefix + template if prefix and not template.startswith(prefix + "/") else template


class Telemetry:
    """Request ids, the access log, HTTP metrics, and the token-guarded ``/metrics``: what
    the edge (:class:`klinika.web.edge.Edge`) does for observability around each request."""

    def __init__(self, *, metrics: Metrics, audit: AuditTrail, settings: Settings) -> None:
        self.metrics = metrics
        self.audit = audit
        self.token = settings.metrics_token
        self.registry = metrics_registry(metrics)

    def serves_metrics(self, scope: Scope) -> bool:
        """True for ``GET /metrics`` when a metrics token is set (:meth:`serve_metrics`)."""
        return bool(self.token) and scope["path"] == "/metrics" and scope["method"] == "GET"

    @staticmethod
    def request_id(scope: Scope) -> str:
        """The id of this request: a trusted proxy's (:class:`TrustedRequestIds`), or new."""
        given = scope.get(_SCOPE_KEY)
        return given if isinstance(given, str) else new_request_id()

    def observe(self, scope: Scope, status: int, sent: int, seconds: float) -> None:
        """Count the request in the metrics and write its access line."""
        method, route = scope["method"], _route_template(scope)
        self.metrics.http_requests.labels(method, route, str(status)).inc()
        self.metrics.http_duration.labels(method, route).observe(seconds)
        if (method, route) in LOGIN_ROUTES and status in _LOGIN_FAILURES:
            self.metrics.login_failures.labels(_LOGIN_FAILURES[status]).inc()
        self.metrics.audit_queue.set(self.audit.queued())
        principal = scope_principal(HTTPConnection(scope))
        client = scope.get("client")
        access_log.info(
            "%s %s %d %.1f ms",
            method,
            scope["path"],
            status,
            seconds * 1000,
            extra={
                "method": method,
                "route": route,
                "path": scope["path"],  # never the query string: QIDO queries name patients
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "bytes": sent,
                "user": principal.username if principal else None,
                "client": client[0] if client else None,
            },
        )

    async def serve_metrics(self, scope: Scope, send: Send) -> None:
        """Answer ``/metrics`` to a bearer of the metrics token, 401 to anyone else."""
        header = HTTPConnection(scope).headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        allowed = scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        )
        if allowed:
            body, content_type = render_metrics(self.registry)
            status = 200
        else:
            body, content_type, status = b"a metrics token is required\n", "text/plain", 401
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def index_size(database: Database) -> int:
    """Bytes the index takes: the SQLite file and its WAL, or PostgreSQL's database size."""
    if database.dialect == "sqlite":
        name = sa.engine.make_url(database.url).database or ""
        return sum(
            Path(name + suffix).stat().st_size
            for suffix in ("", "-wal")
            if name and Path(name + suffix).exists()
        )
    with database.reader.connect() as connection:
        size = connection.execute(sa.text("SELECT pg_database_size(current_database())"))
        return int(size.scalar_one())


def install_state_probes(
    metrics: Metrics,
    settings: Settings,
    *,
    database: Database,
    blobs: BlobStore,
    archive: Archive,
    audit: AuditTrail,
) -> None:
    """Read at each scrape: storage (filesystem and archive), index size, the backup promise
    (age against the RPO, last verification, last drill) and the audit chain's last check."""

    def storage() -> Iterable[Metric]:
        usage = blobs.usage()  # object storage has no size to tell: those gauges are left out
        if usage.total_bytes is not None and usage.free_bytes is not None:
            total, free = usage.total_bytes, usage.free_bytes
            yield _gauge("klinika_storage_total_bytes", "Size of the blob filesystem", total)
            yield _gauge("klinika_storage_free_bytes", "Free space on the blob filesystem", free)
            yield _gauge(
                "klinika_storage_used_bytes", "Used space on the blob filesystem", total - free
            )
        yield _gauge(
            "klinika_archive_stored_bytes",
            "Bytes of every stored instance as received (from the index)",
            archive.stored_bytes(),
        )
        yield _gauge("klinika_index_size_bytes", "Size of the index database", index_size(database))

    def backups() -> Iterable[Metric]:
        status = backup_status(settings)
        yield _gauge(
            "klinika_backup_configured", "1 when a backup destination is set", status.configured
        )
        yield _gauge(
            "klinika_backup_rpo_seconds", "The recovery point objective", status.rpo_seconds
        )
        if not status.configured:
            return
        if status.last is not None:
            yield _gauge(
                "klinika_backup_last_success_timestamp_seconds",
                "When the newest complete backup was taken (Unix time)",
                status.last.timestamp(),
            )
        age = status.age_seconds
        yield _gauge(
            "klinika_backup_age_seconds",
            "Age of the newest complete backup (+Inf when there is none)",
            float("inf") if age is None else age,
        )
        yield _gauge(
            "klinika_backup_stale", "1 when the newest backup is older than the RPO", status.stale
        )

    def checks() -> Iterable[Metric]:
        for action, name, what in (
            (VERIFY_ACTION, "klinika_backup_verify", "verification of the newest backup"),
            (CHAIN_ACTION, "klinika_audit_chain", "audit chain check"),
        ):
            last = last_check(audit, action)
            if last is not None:
                yield _gauge(f"{name}_ok", f"1 when the last {what} passed", last[1])
                yield _gauge(
                    f"{name}_timestamp_seconds", f"When the last {what} ran", last[0].timestamp()
                )
        drill = last_check(audit, DRILL_ACTION)
        if drill is not None:
            seconds = drill[2].get("seconds")
            if isinstance(seconds, int | float):
                yield _gauge(
                    "klinika_backup_drill_seconds",
                    "Restore plus checks of the last restore drill (its measured RTO)",
                    seconds,
                )
            yield _gauge(
                "klinika_backup_drill_ok", "1 when the last restore drill passed", drill[1]
            )

    metrics.set_probe("storage", storage)
    metrics.set_probe("backups", backups)
    metrics.set_probe("checks", checks)
