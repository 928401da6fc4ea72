"""Running the app under uvicorn: one process, or several workers sharing the database.

Logging is ours (:func:`klinika.observability.configure_logging`, ``log_config=None`` keeps
uvicorn from installing its own), and so is the access log. uvicorn's own proxy-header
handling is off: ``create_app`` applies it for ``KLINIKA_TRUSTED_PROXIES`` only, and
:class:`~klinika.web.telemetry.TrustedRequestIds`, which sees the TCP peer first, keeps a
proxy's ``X-Request-ID`` from those addresses only.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from klinika.config import Settings, load_settings
from klinika.errors import KlinikaError
from klinika.observability import configure_logging
from klinika.runtime import Runtime, freeze_startup_heap
from klinika.web.app import create_app
from klinika.web.telemetry import TrustedRequestIds

log = logging.getLogger("klinika")
_UVICORN: dict[str, Any] = {
    "http": "httptools",
    "loop": "uvloop",
    "access_log": False,
    # X-Forwarded-* are read by the app (create_app) from KLINIKA_TRUSTED_PROXIES only
    "proxy_headers": False,
    "server_header": False,
    "log_level": "warning",
    "log_config": None,
}


class PortBusy(KlinikaError):
    """The HTTP port cannot be bound (another program listens there)."""


def ensure_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` as uvicorn will (``SO_REUSEADDR``) and let it go: a port another
    program holds is refused here, with a message saying what to do, before anything starts.

    Raises
    ------
    PortBusy
        The address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortBusy(
                f"cannot listen for HTTP on {host}:{port}: {exc.strerror or exc}. Another "
                "program (another klinika serve?) uses the port: stop it, or choose another "
                "port with --port or KLINIKA_HTTP_PORT"
            ) from exc


def served(app: ASGIApp, settings: Settings) -> ASGIApp:
    """``app`` as uvicorn runs it: request ids from trusted proxies kept, around it."""
    return TrustedRequestIds(app, settings.proxy_networks)


def run_server(settings: Settings, runtime: Runtime, *, host: str, port: int) -> None:
    """Serve HTTP on host:port in this process until interrupted."""
    app = create_app(settings, runtime)
    freeze_startup_heap()
    log.info("HTTP on http://%s:%d (data in %s)", host, port, settings.data_dir.resolve())
    uvicorn.run(served(app, settings), host=host, port=port, **_UVICORN)


def app_from_environment() -> ASGIApp:
    """The app of one worker process, from ``KLINIKA_*`` and ``KLINIKA_CONFIG`` (each worker
    builds its own runtime: engines and caches are per process; its logs and metrics join the
    others' through the log file slots and ``PROMETHEUS_MULTIPROC_DIR``)."""
    settings = load_settings()
    configure_logging(settings)
    app = served(create_app(settings), settings)
    freeze_startup_heap()
    return app


def run_workers(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """Serve HTTP with ``workers`` processes (production: PostgreSQL and a shared storage
    folder; SQLite works too, its writers queue on the database lock)."""
    os.environ["KLINIKA_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["KLINIKA_DATABASE_URL"] = settings.database_url
    log.info("HTTP on http://%s:%d with %d workers", host, port, workers)
    uvicorn.run(
        "klinika.web.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **_UVICORN,
    )
