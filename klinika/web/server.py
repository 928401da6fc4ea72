"""Running the app under uvicorn, next to the DIMSE listener."""

from __future__ import annotations

import logging

import uvicorn

from klinika.config import Settings
from klinika.runtime import Runtime
from klinika.web.app import create_app

log = logging.getLogger("klinika")


def run_server(settings: Settings, *, host: str, port: int) -> None:
    """Serve HTTP on host:port until interrupted."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    try:
        log.info("Klinika on http://%s:%d (data in %s)", host, port, settings.data_dir.resolve())
        uvicorn.run(
            app,
            host=host,
            port=port,
            http="httptools",
            loop="uvloop",
            access_log=False,
            proxy_headers=True,
            server_header=False,
        )
    finally:
        runtime.close()
