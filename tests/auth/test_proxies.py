"""Who the client is behind a reverse proxy (issue 14, findings 1 and 3): only the addresses
in ``KLINIKA_TRUSTED_PROXIES`` may set ``X-Forwarded-For`` / ``-Proto``.

The compose topology (nginx in its own container, never on loopback) is simulated on Linux
loopback: the server trusts 127.0.0.2 only; requests bound to 127.0.0.2 are "nginx", requests
from 127.0.0.1 are an attacker on the host or network talking to the app directly.
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from klinika.config import load_settings
from klinika.errors import ConfigError
from tests.conftest import TEST_PASSWORD, LiveServer, start_server

PROXY = "127.0.0.2"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("proxies") / "data",
        extra_env={"KLINIKA_TRUSTED_PROXIES": PROXY, "KLINIKA_LOGIN_MAX_FAILURES": "3"},
        users={"anna": "doctor", "boris": "doctor", "clara": "doctor"},
    )
    yield live
    live.stop()


def call(
    server: LiveServer,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    """One request from ``source`` (a loopback address): status, headers, body."""
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    try:
        payload = json.dumps(body).encode() if body is not None else None
        sent = {"Content-Type": "application/json", **(headers or {})}
        connection.request("POST" if body is not None else "GET", path, payload, sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def log_in(server: LiveServer, user: str, password: str, **options: Any) -> int:
    return call(server, "/api/auth/login", {"username": user, "password": password}, **options)[0]


def login_sources(server: LiveServer, user: str) -> list[str]:
    events = requests.get(
        server.url + "/api/audit",
        params={"action": "auth:login", "actor": user, "limit": 100},
        headers=server.headers,
        timeout=30,
    ).json()["events"]
    return [event["source"] for event in events]


def test_a_forged_forwarded_for_from_an_untrusted_client_is_ignored(server: LiveServer) -> None:
    for _ in range(3):
        assert (
            log_in(server, "anna", "wrong-password-1", headers={"X-Forwarded-For": "10.1.1.1"})
            == 401
        )
    # locked for 127.0.0.1; another forged address does not get the attacker a fresh count
    forged = {"X-Forwarded-For": "10.9.9.9"}
    assert log_in(server, "anna", TEST_PASSWORD, headers=forged) == 429
    sources = login_sources(server, "anna")
    assert sources and set(sources) == {"127.0.0.1"}, sources


def test_behind_the_trusted_proxy_each_client_has_its_own_lockout(server: LiveServer) -> None:
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(3):
        assert log_in(server, "boris", "wrong-password-1", source=PROXY, headers=attacker) == 401
    assert log_in(server, "boris", TEST_PASSWORD, source=PROXY, headers=attacker) == 429
    # the real user, another client behind the same nginx, is not locked out
    owner = {"X-Forwarded-For": "198.51.100.20"}
    assert log_in(server, "boris", TEST_PASSWORD, source=PROXY, headers=owner) == 200
    sources = login_sources(server, "boris")
    assert "203.0.113.7" in sources and "198.51.100.20" in sources
    assert PROXY not in sources


def test_the_proxy_header_never_puts_markup_into_the_audit_source(server: LiveServer) -> None:
    markup = {"X-Forwarded-For": "<img src=x onerror=alert(1)>"}
    before = Counter(login_sources(server, "clara"))  # other tests of the module log in too
    assert log_in(server, "clara", "wrong-password-1", source=PROXY, headers=markup) == 401
    added = Counter(login_sources(server, "clara")) - before
    assert added == Counter({"invalid": 1}), added


def test_secure_cookie_when_the_trusted_proxy_says_https(server: LiveServer) -> None:
    body = {"username": "clara", "password": TEST_PASSWORD}
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.30"}
    _, headers, _ = call(server, "/api/auth/login", body, source=PROXY, headers=https)
    assert "secure" in headers["set-cookie"].lower()
    # the same header from an untrusted client changes nothing
    _, headers, _ = call(server, "/api/auth/login", body, headers=https)
    assert "secure" not in headers["set-cookie"].lower()


def test_secure_cookie_whenever_the_public_url_is_https(install) -> None:  # type: ignore[no-untyped-def]
    site = install(public_base_url="https://pacs.example")
    answer = site.client.post(
        "/api/auth/login", json={"username": "doctor", "password": "doctor-password-1"}
    )
    assert answer.status_code == 200
    assert "secure" in answer.headers["set-cookie"].lower()


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path: Path) -> None:
    settings = load_settings(env={"KLINIKA_TRUSTED_PROXIES": "172.30.57.10, 10.0.0.0/8"})
    assert [str(n) for n in settings.proxy_networks] == ["172.30.57.10/32", "10.0.0.0/8"]
    with pytest.raises(ConfigError, match="nginx"):
        load_settings(env={"KLINIKA_TRUSTED_PROXIES": "nginx"})
    assert load_settings(env={}).proxy_networks == ()
