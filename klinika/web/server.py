"""Running the app under uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from klinika.config import Settings
from klinika.runtime import Runtime
from klinika.web.app import create_app

log = logging.getLogger("klinika")


def run_server(settings: Settings, runtime: Runtime, *, host: str, port: int) -> None:
    """Serve HTTP on host:port until interrupted (uvloop, httptools, no access log)."""
    app = create_app(settings, runtime)
    log.info("HTTP on http://%s:%d (data in %s)", host, port, settings.data_dir.resolve())
    uvicorn.run(
        app,
        host=host,
        port=port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        proxy_headers=True,
        server_header=False,
        log_level="warning",
    )
