"""Running the app under uvicorn: one process, or several workers sharing the database."""

from __future__ import annotations

import logging
import os

import uvicorn
from fastapi import FastAPI

from klinika.config import Settings, load_settings
from klinika.runtime import Runtime
from klinika.web.app import create_app

log = logging.getLogger("klinika")
_UVICORN = {
    "http": "httptools",
    "loop": "uvloop",
    "access_log": False,
    # X-Forwarded-* are read by the app (create_app) from KLINIKA_TRUSTED_PROXIES only
    "proxy_headers": False,
    "server_header": False,
    "log_level": "warning",
}


def run_server(settings: Settings, runtime: Runtime, *, host: str, port: int) -> None:
    """Serve HTTP on host:port in this process until interrupted."""
    app = create_app(settings, runtime)
    log.info("HTTP on http://%s:%d (data in %s)", host, port, settings.data_dir.resolve())
    uvicorn.run(app, host=host, port=port, **_UVICORN)  # type: ignore[arg-type]


def app_from_environment() -> FastAPI:
    """The app of one worker process, from ``KLINIKA_*`` and ``KLINIKA_CONFIG`` (each worker
    builds its own runtime: engines and caches are per process)."""
    return create_app(load_settings())


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
    )  # type: ignore[arg-type]
