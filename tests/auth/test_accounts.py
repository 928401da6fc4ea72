"""Account management (admin) and one's own account, through the HTTP API and the CLI."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner
from fastapi.testclient import TestClient

from klinika.cli.auth_commands import register
from tests.auth.conftest import SECRET, Installation


def klinika_cli() -> click.Group:
    from klinika.cli.main import cli

    if "user" not in cli.commands:
        register(cli)
    return cli


def test_admin_creates_a_user_with_a_generated_password_shown_once(site: Installation) -> None:
    admin = site.headers("admin")
    created = site.client.post(
        "/api/users",
        json={"username": "Ivanova", "role": "doctor", "display_name": "Dr Ivanova"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["username"] == "ivanova" and answer["role"] == "doctor"
    login = TestClient(site.app).post(
        "/api/auth/login", json={"username": "ivanova", "password": answer["password"]}
    )
    assert login.status_code == 200
    listed = site.client.get("/api/users", headers=admin).json()
    assert "ivanova" in {u["username"] for u in listed}
    assert all("password" not in u and "password_hash" not in u for u in listed)


def test_account_rules_are_enforced(site: Installation) -> None:
    admin = site.headers("admin")
    cases = [
        ({"username": "x", "role": "superuser"}, 400),
        ({"username": "bad name", "role": "doctor"}, 400),
        ({"username": "short", "role": "doctor", "password": "123"}, 400),
        ({"username": "doctor", "role": "doctor"}, 409),
    ]
    for body, status in cases:
        assert site.client.post("/api/users", json=body, headers=admin).status_code == status


def test_admin_updates_role_language_and_state(site: Installation) -> None:
    admin = site.headers("admin")
    response = site.client.patch(
        "/api/users/operator",
        json={"language": "ru", "display_name": "Оператор", "role": "doctor"},
        headers=admin,
    )
    assert response.status_code == 200
    assert response.json() | {"language": "ru", "role": "doctor"} == response.json()
    assert site.client.patch("/api/users/ghost", json={}, headers=admin).status_code == 404


def test_me_and_my_language(site: Installation) -> None:
    headers = site.headers("operator")
    me = site.client.get("/api/auth/me", headers=headers).json()
    assert me["username"] == "operator" and me["role"] == "operator"
    changed = site.client.put("/api/auth/me/language", json={"language": "de"}, headers=headers)
    assert changed.json()["language"] == "de"
    bad = site.client.put("/api/auth/me/language", json={"language": "xx"}, headers=headers)
    assert bad.status_code == 400


def test_wrong_current_password_does_not_change_it(site: Installation) -> None:
    response = site.client.post(
        "/api/auth/password",
        json={"current_password": "not-it-at-all", "new_password": "another-password"},
        headers=site.headers("doctor"),
    )
    assert response.status_code == 400


def test_admin_lists_and_revokes_sessions(site: Installation) -> None:
    doctor_token = site.login("doctor")
    admin = site.headers("admin")
    live = site.client.get("/api/sessions", headers=admin).json()
    mine = [s for s in live if s["username"] == "doctor"]
    assert len(mine) == 1 and mine[0]["source"] == "testclient"
    revoked = site.client.delete(f"/api/sessions/{mine[0]['id']}", headers=admin)
    assert revoked.status_code == 200
    bearer = {"Authorization": f"Bearer {doctor_token}"}
    assert TestClient(site.app).get("/api/auth/me", headers=bearer).status_code == 401
    assert site.client.delete("/api/sessions/nope", headers=admin).status_code == 404


def test_cli_creates_the_first_admin_with_a_printed_password(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"KLINIKA_JWT_SECRET": SECRET, "KLINIKA_FSYNC": "false"}
    data = str(tmp_path / "data")
    added = runner.invoke(
        klinika_cli(), ["--data-dir", data, "user", "add", "chief", "--role", "admin"], env=env
    )
    assert added.exit_code == 0, added.output
    password = added.output.split("password: ")[1].strip()
    assert len(password) >= 12
    listed = runner.invoke(klinika_cli(), ["--data-dir", data, "user", "list"], env=env)
    assert "chief\tadmin\tactive" in listed.output
    disabled = runner.invoke(
        klinika_cli(), ["--data-dir", data, "user", "disable", "chief"], env=env
    )
    assert disabled.exit_code != 0 and "last active admin" in disabled.output
    changed = runner.invoke(
        klinika_cli(),
        ["--data-dir", data, "user", "passwd", "chief", "--password", "chosen-password-9"],
        env=env,
    )
    assert changed.exit_code == 0
    duplicate = runner.invoke(
        klinika_cli(), ["--data-dir", data, "user", "add", "chief", "--role", "doctor"], env=env
    )
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output


def test_the_first_admin_gets_a_random_password_only_when_there_are_no_users(
    tmp_path: Path,
) -> None:
    from klinika.runtime import Runtime
    from tests.auth.conftest import make_settings

    with Runtime(make_settings(tmp_path)) as runtime:
        first = runtime.auth.create_first_admin()
        again = runtime.auth.create_first_admin()
        assert first and len(first) >= 12 and again is None
        assert runtime.auth.login("admin", first).user.role == "admin"
