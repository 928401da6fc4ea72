"""The password policy (ASVS 2.1: length 12, no common password) and the forced change of a
generated first password (issue 14, finding 9)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from klinika.auth import InvalidAccount
from klinika.auth.passwords import check_policy
from tests.auth.conftest import Installation
from tests.auth.test_accounts import klinika_cli


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("aaaaaaaaaa", "12 characters"),
        ("short-pw-11", "12 characters"),
        ("aaaaaaaaaaaaaaaa", "different characters"),
        ("abababababab", "different characters"),
        ("qwerty123456", "commonly used"),
        ("1qaz2wsx3edc", "commonly used"),
        ("LeaveMeAlone", "commonly used"),
    ],
)
def test_weak_passwords_are_refused_with_the_rule(password: str, rule: str) -> None:
    with pytest.raises(InvalidAccount, match=rule):
        check_policy(password)


def test_good_passwords_pass() -> None:
    for password in ("correct-horse-battery-staple", "Kardiologie 2026!", "zx8#Lq0-vv1u"):
        check_policy(password)


def test_the_api_refuses_a_weak_password_and_says_why(site: Installation) -> None:
    admin = site.headers("admin")
    weak = site.client.post(
        "/api/users",
        json={"username": "weak", "role": "doctor", "password": "aaaaaaaaaa"},
        headers=admin,
    )
    assert weak.status_code == 400 and "12 characters" in weak.json()["error"]
    common = site.client.post(
        "/api/users/doctor/password", json={"password": "qwerty123456"}, headers=admin
    )
    assert common.status_code == 400 and "commonly used" in common.json()["error"]


def test_the_generated_first_admin_password_must_be_changed_first(
    install: Callable[..., Installation],
) -> None:
    site = install()
    client = TestClient(site.app)
    assert site.runtime.auth.create_first_admin() is None  # users exist: nothing is created
    created = site.runtime.auth.create_user(
        "chief", "admin", "generated-Pw-0001", must_change_password=True
    )
    assert created.must_change_password
    login = client.post(
        "/api/auth/login", json={"username": "chief", "password": "generated-Pw-0001"}
    )
    assert login.status_code == 200 and login.json()["user"]["must_change_password"] is True
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    me = client.get("/api/auth/me", headers=bearer)
    assert me.status_code == 200 and me.json()["must_change_password"] is True
    for path in ("/api/users", "/dicom-web/studies", "/api/audit"):
        refused = client.get(path, headers=bearer)
        assert refused.status_code == 403, path
        assert "change it first" in refused.json()["error"]
    page = client.get(
        "/worklist", headers={**bearer, "Accept": "text/html"}, follow_redirects=False
    )
    assert page.status_code == 303 and page.headers["location"] == "/account/password"
    same = client.post(
        "/api/auth/password",
        json={"current_password": "generated-Pw-0001", "new_password": "generated-Pw-0001"},
        headers=bearer,
    )
    assert same.status_code in (200, 400)
    changed = client.post(
        "/api/auth/password",
        json={"current_password": "generated-Pw-0001", "new_password": "my-own-choice-42"},
        headers=bearer,
    )
    if same.status_code == 200:  # changing to the same one also clears the flag; redo
        changed = client.post(
            "/api/auth/password",
            json={"current_password": "generated-Pw-0001", "new_password": "my-own-choice-42"},
            headers={"Authorization": f"Bearer {same.json()['access_token']}"},
        )
    assert changed.status_code == 200, changed.text
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert client.get("/api/users", headers=fresh).status_code == 200
    assert client.get("/api/auth/me", headers=fresh).json()["must_change_password"] is False


def test_the_console_asks_for_a_new_password_after_a_generated_one(
    install: Callable[..., Installation],
) -> None:
    site = install()
    site.runtime.auth.create_user("chief", "admin", "generated-Pw-0002", must_change_password=True)
    client = TestClient(site.app, headers={"Origin": "http://testserver"})
    form = client.get("/login")
    token = form.cookies.get("klinika_csrf") or client.cookies.get("klinika_csrf")
    assert token
    landed = client.post(
        "/login",
        data={"username": "chief", "password": "generated-Pw-0002", "csrf_token": token},
        follow_redirects=False,
    )
    assert landed.status_code == 303 and landed.headers["location"] == "/account/password"
    page = client.get("/account/password")
    assert page.status_code == 200 and 'data-testid="must-change"' in page.text
    differ = client.post(
        "/account/password",
        data={
            "current_password": "generated-Pw-0002",
            "new_password": "my-own-choice-43",
            "confirm_password": "my-own-choice-44",
            "csrf_token": token,
        },
    )
    assert differ.status_code == 400
    done = client.post(
        "/account/password",
        data={
            "current_password": "generated-Pw-0002",
            "new_password": "my-own-choice-43",
            "confirm_password": "my-own-choice-43",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/worklist"
    assert client.get("/worklist").status_code == 200


def test_cli_generated_passwords_must_be_changed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from klinika.config import load_settings
    from klinika.runtime import Runtime
    from tests.auth.conftest import SECRET

    env = {"KLINIKA_JWT_SECRET": SECRET, "KLINIKA_FSYNC": "false"}
    data = str(tmp_path / "data")
    runner = CliRunner()
    added = runner.invoke(
        klinika_cli(), ["--data-dir", data, "user", "add", "chief", "--role", "admin"], env=env
    )
    chosen = runner.invoke(
        klinika_cli(),
        [
            "--data-dir",
            data,
            "user",
            "add",
            "own",
            "--role",
            "doctor",
            "--password",
            "my-own-choice-45",
        ],
        env=env,
    )
    assert added.exit_code == 0 and chosen.exit_code == 0
    with Runtime(load_settings(env=env, data_dir=tmp_path / "data")) as runtime:
        assert runtime.auth.get_user("chief").must_change_password
        assert not runtime.auth.get_user("own").must_change_password


def test_the_first_admin_of_an_empty_installation_must_change_the_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from klinika.config import load_settings
    from klinika.runtime import Runtime
    from tests.auth.conftest import SECRET

    settings = load_settings(env={}, data_dir=tmp_path / "data", jwt_secret=SECRET, fsync=False)
    with Runtime(settings) as runtime:
        password = runtime.auth.create_first_admin()
        assert password and runtime.auth.get_user("admin").must_change_password
        result = runtime.auth.login("admin", password, source="127.0.0.1")
        assert result.user.must_change_password
