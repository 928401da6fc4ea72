"""The project's nginx configuration in front of a running Klinika (Debian's nginx 1.22)."""

from __future__ import annotations

import shutil
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.browser import OpenPage, log_in
from tests.conftest import (
    TEST_PASSWORD,
    LiveServer,
    start_server,
    wait_until,
)
from tests.deploy.nginx import ALLOWED_ORIGIN, start_nginx
from tests.dicomweb.conftest import multipart_body
from tests.factories import make_instance
from tests.viewer.conftest import ct_study_uid, drawn, load_demo

ALLOWED = ALLOWED_ORIGIN


@dataclass
class Proxy:
    server: LiveServer
    http: str
    https: str
    cert: Path
    https_port: int


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, ohif_cache: Path) -> Iterator[Proxy]:
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    root = tmp_path_factory.mktemp("nginx")
    server = start_server(
        root / "data",
        # nginx runs on this host's loopback here (its own container's address in compose)
        extra_env={"KLINIKA_CACHE_DIR": str(ohif_cache), "KLINIKA_TRUSTED_PROXIES": "127.0.0.1"},
        users={"irina": "doctor"},
    )
    nginx = start_nginx(root, [server.url.removeprefix("http://")])
    yield Proxy(
        server,
        f"http://127.0.0.1:{nginx.http_port}",
        f"https://localhost:{nginx.https_port}",
        nginx.cert,
        nginx.https_port,
    )
    nginx.stop()
    server.stop()


def test_http_redirects_to_https_with_301(proxy: Proxy) -> None:
    response = requests.get(proxy.http + "/dicom-web/studies", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://")
    assert requests.get(proxy.http + "/health", timeout=10).json()["status"] == "ok"


# the client must offer TLS 1.1 to show that nginx refuses it; Python warns that 1.1 is old
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
def test_tls_1_2_or_newer_only_and_security_headers_once(proxy: Proxy) -> None:
    context = ssl.create_default_context(cafile=str(proxy.cert))
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.minimum_version = ssl.TLSVersion.TLSv1
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", proxy.https_port), timeout=5) as raw,
    ):
        context.wrap_socket(raw, server_hostname="localhost")
    response = requests.get(
        proxy.https + "/dicom-web/studies",
        verify=str(proxy.cert),
        headers=proxy.server.headers,
        timeout=10,
    )
    assert response.status_code == 200
    for header in (
        "Strict-Transport-Security",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "Referrer-Policy",
    ):
        assert header in response.headers
        assert "," not in response.headers[header], f"{header} sent twice"
    assert (
        requests.get(
            proxy.https + "/dicom-web/studies", verify=str(proxy.cert), timeout=10
        ).status_code
        == 401
    )


def test_cors_preflight_passes_for_the_configured_origin_only(proxy: Proxy) -> None:
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = requests.options(
        proxy.https + "/dicom-web/studies",
        verify=str(proxy.cert),
        headers={"Origin": ALLOWED, **preflight},
        timeout=10,
    )
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    refused = requests.options(
        proxy.https + "/dicom-web/studies",
        verify=str(proxy.cert),
        headers={"Origin": "https://evil.test", **preflight},
        timeout=10,
    )
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_a_200_mb_stow_and_its_retrieve_pass_through(proxy: Proxy) -> None:
    study = "1.2.826.0.1.3680043.99.200"
    instances = [
        make_instance(
            study_uid=study,
            series_uid=study + ".1",
            sop_uid=f"{study}.1.{n}",
            rows=2048,
            columns=2048,
        )
        for n in range(25)
    ]
    body, content_type = multipart_body(instances)
    assert len(body) > 200_000_000
    stored = requests.post(
        proxy.https + "/dicom-web/studies",
        data=body,
        verify=str(proxy.cert),
        headers={"Content-Type": content_type, **proxy.server.headers},
        timeout=300,
    )
    assert stored.status_code == 200, stored.text[:500]
    assert len(stored.json()["00081199"]["Value"]) == 25
    retrieved = requests.get(
        f"{proxy.https}/dicom-web/studies/{study}",
        verify=str(proxy.cert),
        timeout=300,
        headers={
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
            **proxy.server.headers,
        },
    )
    assert retrieved.status_code == 200
    assert "Content-Encoding" not in retrieved.headers  # DICOM is never gzipped
    assert all(instance in retrieved.content for instance in instances[:3])
    assert len(retrieved.content) > 200_000_000


def test_ohif_loads_through_nginx_in_chromium(
    proxy: Proxy, open_page: OpenPage, tmp_path: Path
) -> None:
    load_demo(proxy.server, tmp_path / "demo", ct_slices=12)
    uid = ct_study_uid(proxy.server)
    browser_page = open_page(ignore_https_errors=True)
    page = browser_page.page
    log_in(browser_page, proxy.https, "irina", TEST_PASSWORD, f"/viewer?StudyInstanceUIDs={uid}")
    page.wait_for_selector("[data-cy=viewport-pane] canvas", timeout=90_000)
    pane = page.locator("[data-cy=viewport-pane]").first
    wait_until(lambda: drawn(pane.screenshot()), 90, message="no image drawn", interval=0.5)
    assert page.url.startswith(proxy.https + "/viewer")
    cookie = next(c for c in page.context.cookies() if c["name"] == "klinika_session")
    assert cookie["secure"] is True  # nginx says the client came over TLS
    bundle = page.request.get(proxy.https + "/app-config.js")
    assert bundle.headers["cache-control"] == "no-store"
    assert browser_page.csp_violations() == []
