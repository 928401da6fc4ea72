"""Token attacks and session lifecycle: everything that is not a live session of an active user
is refused with 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from klinika.auth import load_jwt_secret
from klinika.auth.http import COOKIE_NAME
from klinika.config import load_settings
from klinika.errors import ConfigError
from tests.auth.conftest import PASSWORDS, SECRET, Installation

ME = "/api/auth/me"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


def status_with(site: Installation, token: str) -> int:
    anonymous = TestClient(site.app)
    return anonymous.get(ME, headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_fresh_token_works_as_bearer_and_as_cookie(site: Installation) -> None:
    token = site.login("doctor")
    assert status_with(site, token) == 200
    anonymous = TestClient(site.app)
    anonymous.cookies.set(COOKIE_NAME, token)
    assert anonymous.get(ME).json()["username"] == "doctor"


def test_tampered_payload_is_refused(site: Installation) -> None:
    token = site.login("operator")
    header, payload, signature = parts(token)
    payload["role"] = "admin"
    payload["sub"] = "admin"
    forged = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{signature}"
    assert status_with(site, forged) == 401


def test_token_signed_with_another_key_is_refused(site: Installation) -> None:
    _, payload, _ = parts(site.login("admin"))
    assert status_with(site, jwt.encode(payload, "x" * 48, algorithm="HS256")) == 401


def test_alg_none_is_refused(site: Installation) -> None:
    _, payload, _ = parts(site.login("admin"))
    header = {"alg": "none", "typ": "JWT"}
    unsigned = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."
    assert status_with(site, unsigned) == 401


def test_rs256_and_public_key_as_hmac_secret_are_refused(site: Installation) -> None:
    _, payload, _ = parts(site.login("admin"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert status_with(site, jwt.encode(payload, key, algorithm="RS256")) == 401
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert status_with(site, f"{signing_input}.{b64(signature)}") == 401


def test_expired_token_is_refused(site: Installation) -> None:
    _, payload, _ = parts(site.login("doctor"))
    payload["iat"] = int(time.time()) - 7200
    payload["exp"] = int(time.time()) - 60
    assert status_with(site, jwt.encode(payload, SECRET, algorithm="HS256")) == 401


def test_garbage_and_empty_tokens_are_refused(site: Installation) -> None:
    for token in ("garbage", "a.b.c", ""):
        assert status_with(site, token) == 401


def test_token_is_refused_after_logout(site: Installation) -> None:
    token = site.login("doctor")
    bearer = {"Authorization": f"Bearer {token}"}
    assert site.client.post("/api/auth/logout", headers=bearer).status_code == 200
    assert status_with(site, token) == 401


def test_tokens_are_refused_once_the_user_is_disabled(site: Installation) -> None:
    token = site.login("operator")
    admin = site.headers("admin")
    changed = site.client.patch("/api/users/operator", json={"active": False}, headers=admin)
    assert changed.status_code == 200
    assert status_with(site, token) == 401
    refused = TestClient(site.app).post(
        "/api/auth/login", json={"username": "operator", "password": PASSWORDS["operator"]}
    )
    assert refused.status_code == 401


def test_old_tokens_are_refused_after_a_password_change(site: Installation) -> None:
    old = site.login("doctor")
    other = site.login("doctor")
    response = TestClient(site.app).post(
        "/api/auth/password",
        json={"current_password": PASSWORDS["doctor"], "new_password": "a-brand-new-password"},
        headers={"Authorization": f"Bearer {old}"},
    )
    assert response.status_code == 200, response.text
    assert status_with(site, old) == 401
    assert status_with(site, other) == 401
    assert status_with(site, response.json()["access_token"]) == 200


def test_tokens_are_refused_after_an_admin_password_reset(site: Installation) -> None:
    token = site.login("doctor")
    reset = site.client.post("/api/users/doctor/password", headers=site.headers("admin"))
    assert reset.status_code == 200
    assert status_with(site, token) == 401
    login = TestClient(site.app).post(
        "/api/auth/login", json={"username": "doctor", "password": reset.json()["password"]}
    )
    assert login.status_code == 200


def test_a_role_change_applies_at_once_to_live_tokens(site: Installation) -> None:
    token = site.login("doctor")
    bearer = {"Authorization": f"Bearer {token}"}
    assert site.client.get("/api/users", headers=bearer).status_code == 403
    site.client.patch("/api/users/doctor", json={"role": "admin"}, headers=site.headers("admin"))
    assert site.client.get("/api/users", headers=bearer).status_code == 200


def test_login_cookie_is_httponly_strict_and_secure_over_https(site: Installation) -> None:
    body = {"username": "doctor", "password": PASSWORDS["doctor"]}
    plain = TestClient(site.app).post("/api/auth/login", json=body)
    cookie = plain.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    tls = TestClient(site.app, base_url="https://testserver").post("/api/auth/login", json=body)
    assert "; secure" in tls.headers["set-cookie"].lower()


def test_token_lifetime_is_24_hours_for_admins_and_8_for_others(site: Installation) -> None:
    for role, hours in (("admin", 24), ("doctor", 8), ("operator", 8)):
        _, payload, _ = parts(site.login(role))
        assert payload["exp"] - payload["iat"] == hours * 3600
        assert {"jti", "role", "sub"} <= set(payload)


def test_the_secret_file_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path)
    first = load_jwt_secret(settings)
    assert len(first) >= 32
    files = list((tmp_path / "secrets").iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert load_jwt_secret(settings) == first


def test_a_short_secret_is_refused_and_never_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(env={"KLINIKA_JWT_SECRET": "short"}, data_dir=tmp_path)
    settings = load_settings(env={"KLINIKA_JWT_SECRET": SECRET}, data_dir=tmp_path)
    assert SECRET not in repr(settings)
    (tmp_path / "weak.key").write_text("too-short")
    with pytest.raises(ConfigError):
        load_jwt_secret(
            load_settings(env={}, data_dir=tmp_path, jwt_secret_file=str(tmp_path / "weak.key"))
        )
