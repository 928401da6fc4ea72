"""Throttling of failed logins: a lock for a while, never for good."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.auth.conftest import PASSWORDS, Installation
from tests.conftest import Clock

LOCK_SECONDS = 300


def attempt(client: TestClient, username: str, password: str) -> int:
    body = {"username": username, "password": password}
    return client.post("/api/auth/login", json=body).status_code


def locked_site(install: Callable[..., Installation], clock: Clock | None = None) -> Installation:
    site = install(clock=clock or Clock(), login_max_failures=3, login_lockout_seconds=LOCK_SECONDS)
    for _ in range(3):
        assert attempt(site.client, "admin", "wrong-password") == 401
    return site


def test_repeated_failures_lock_the_account_for_a_while(
    install: Callable[..., Installation],
) -> None:
    clock = Clock()
    site = locked_site(install, clock)
    clock.advance(LOCK_SECONDS - 1)
    response = site.client.post(
        "/api/auth/login", json={"username": "admin", "password": PASSWORDS["admin"]}
    )
    assert response.status_code == 429
    assert "too many failed logins" in response.json()["error"]
    assert int(response.headers["retry-after"]) == 1
    clock.advance(1)
    assert attempt(site.client, "admin", PASSWORDS["admin"]) == 200


def test_attempts_during_the_lock_do_not_extend_it(install: Callable[..., Installation]) -> None:
    clock = Clock()
    site = locked_site(install, clock)
    for _ in range(5):
        clock.advance(LOCK_SECONDS / 10)
        assert attempt(site.client, "admin", "wrong-password") == 429
    clock.advance(LOCK_SECONDS / 2)  # the lock's end, had none of the attempts extended it
    assert attempt(site.client, "admin", PASSWORDS["admin"]) == 200


def test_a_lock_from_one_address_does_not_lock_the_admin_out_elsewhere(
    install: Callable[..., Installation],
) -> None:
    site = locked_site(install)
    assert attempt(site.client, "admin", PASSWORDS["admin"]) == 429
    elsewhere = TestClient(site.app, client=("10.1.2.3", 40000))
    assert attempt(elsewhere, "admin", PASSWORDS["admin"]) == 200


def test_a_password_reset_lifts_the_lock(install: Callable[..., Installation]) -> None:
    site = locked_site(install)
    site.runtime.auth.set_password("admin", "reset-by-the-cli-1")
    assert attempt(site.client, "admin", "reset-by-the-cli-1") == 200


def test_unknown_users_fail_like_wrong_passwords(install: Callable[..., Installation]) -> None:
    site = install(login_max_failures=3, login_lockout_seconds=LOCK_SECONDS)
    statuses = [attempt(site.client, "ghost", "whatever-password") for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_the_last_active_admin_cannot_be_disabled_or_demoted(site: Installation) -> None:
    admin = site.headers("admin")
    for change in ({"active": False}, {"role": "doctor"}):
        response = site.client.patch("/api/users/admin", json=change, headers=admin)
        assert response.status_code == 400
        assert "last active admin" in response.json()["error"]
