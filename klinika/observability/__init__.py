"""Observability: the one logging setup of every process, and the Prometheus instruments.

Owns :func:`configure_logging` (text or JSON lines, request and association ids, rotation),
the access loggers (``klinika.access.http`` / ``klinika.access.dimse``), :class:`Metrics`
(the instruments every room records into) and their exposition (multi-process aware).
May import: config (and third-party logging/prometheus_client only). The edges that feed it
(the HTTP middleware in ``web.telemetry``, the pynetdicom event handlers in
``dimse.telemetry``) live in their own rooms, so this one knows no wire.
"""

from klinika.observability.logs import (
    DIMSE_ACCESS,
    HTTP_ACCESS,
    association_id,
    configure_logging,
    new_request_id,
    request_id,
)
from klinika.observability.metrics import (
    Metrics,
    StateProbe,
    metrics_registry,
    render_metrics,
    start_metrics_server,
    use_multiprocess,
)

__all__ = [
    "DIMSE_ACCESS",
    "HTTP_ACCESS",
    "Metrics",
    "StateProbe",
    "association_id",
    "configure_logging",
    "metrics_registry",
    "new_request_id",
    "render_metrics",
    "request_id",
    "start_metrics_server",
    "use_multiprocess",
]
