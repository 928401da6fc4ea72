"""Fixtures of the auth tests: a fresh installation, its app, users of every role, a live
uvicorn server. Shared with ``tests/audit``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from klinika.config import Settings, load_settings
from klinika.runtime import Runtime
from klinika.web import create_app
from tests.conftest import free_port, wait_until

SECRET = "test-secret-that-is-long-enough-0123456789"
PASSWORDS = {
    "admin": "admin-password-1",
    "doctor": "doctor-password-1",
    "operator": "operator-password-1",
}


@dataclass
class Installation:
    """One Klinika installation: settings, runtime, app and a client, with a user per role
    (username = role name)."""

    settings: Settings
    runtime: Runtime
    app: FastAPI
    client: TestClient

    def login(self, role: str, client: TestClient | None = None) -> str:
        response = (client or self.client).post(
            "/api/auth/login", json={"username": role, "password": PASSWORDS[role]}
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.login(role)}"}


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings of a test installation: no fsync, cheap password hashes."""
    values: dict[str, object] = {
        "jwt_secret": SECRET,
        "fsync": False,
        "password_hash_profile": "test",
    }
    values.update(overrides)
    return load_settings(env={}, data_dir=tmp_path / "data", **values)


@pytest.fixture
def install(tmp_path: Path, database_url: str) -> Callable[..., Installation]:
    """Build an installation with the given setting overrides (closed after the test);
    ``clock`` is the time its services read (a :class:`tests.conftest.Clock` to move it)."""
    runtimes: list[Runtime] = []
    clients: list[TestClient] = []

    def build(clock: Callable[[], float] = time.time, **overrides: object) -> Installation:
        settings = make_settings(tmp_path, **{"database_url": database_url, **overrides})
        runtime = Runtime(settings, clock=clock)
        runtimes.append(runtime)
        for role, password in PASSWORDS.items():
            runtime.auth.create_user(role, role, password, display_name=role.title())
        app = create_app(settings, runtime)
        client = TestClient(app)
        clients.append(client)
        return Installation(settings, runtime, app, client)

    yield build
    for client in clients:
        client.close()
    for runtime in runtimes:
        runtime.close()


@pytest.fixture
def site(install: Callable[..., Installation]) -> Installation:
    """An installation with default settings."""
    return install()


@pytest.fixture
def live_url(site: Installation) -> Iterator[str]:
    """The site's app under a real uvicorn server on a free port of 127.0.0.1."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(site.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 20, message="uvicorn did not start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)
