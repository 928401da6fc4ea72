"""The project's nginx configuration (deploy/nginx) run by the tests: a trial certificate, the
site template filled in, and Debian's nginx started on loopback ports of its own."""

from __future__ import annotations

import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port, port_open, wait_until

DEPLOY = Path(__file__).parents[2] / "deploy" / "nginx"
ALLOWED_ORIGIN = "https://viewer.clinic.test"


@dataclass
class Nginx:
    root: Path
    process: subprocess.Popen[bytes]
    http_port: int
    https_port: int
    cert: Path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        if self.process.stdout:
            self.process.stdout.close()


def trial_certificate(root: Path) -> tuple[Path, Path]:
    """The documented trial certificate (docs/deployment.md) for localhost and 127.0.0.1."""
    cert, key = root / "tls.crt", root / "tls.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start_nginx(root: Path, upstreams: list[str]) -> Nginx:
    """nginx with the project's site in front of ``upstreams`` (``host:port`` each: one
    ``server`` line per node in the upstream block, as docs/deployment.md says)."""
    cert, key = trial_certificate(root)
    http_port, https_port = free_port(), free_port()
    site = string.Template((DEPLOY / "templates" / "klinika.conf.template").read_text())
    (root / "klinika.conf").write_text(
        site.safe_substitute(
            KLINIKA_UPSTREAM=";\n    server ".join(upstreams),
            HTTP_LISTEN=f"127.0.0.1:{http_port}",
            HTTPS_LISTEN=f"127.0.0.1:{https_port}",
            HTTPS_PORT=str(https_port),
            SERVER_NAME="localhost",
            TLS_CERT=str(cert),
            TLS_KEY=str(key),
            CORS_ORIGIN=ALLOWED_ORIGIN,
        )
    )
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / folder).mkdir()
    (root / "nginx.conf").write_text(f"""
        daemon off; worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log;
        events {{ worker_connections 256; }}
        http {{
            include /etc/nginx/mime.types; default_type application/octet-stream;
            access_log off; sendfile on; tcp_nodelay on; server_tokens off;
            client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
            fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi;
            scgi_temp_path {root}/scgi;
            include {root}/klinika.conf;
        }}
    """)
    process = subprocess.Popen(
        ["nginx", "-p", str(root), "-c", str(root / "nginx.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def listening() -> bool:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        return port_open(https_port)

    wait_until(listening, 30, message="nginx did not start")
    return Nginx(root, process, http_port, https_port, cert)
