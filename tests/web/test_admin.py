"""The admin console over HTTP against a live server: who may open it, password resets and
session revocation that take effect at once, audit filters and CSV, the system page (the
browser flow of creating and disabling a user is in test_console.py)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import TEST_PASSWORD, LiveServer, login, start_server

PAGES = ("/admin/users", "/admin/audit", "/admin/system")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("admin") / "data",
        users={"irina": "doctor", "olga": "operator", "pavel": "doctor"},
    )
    yield live
    live.stop()


def me(server: LiveServer, headers: dict[str, str]) -> int:
    return requests.get(server.url + "/api/auth/me", headers=headers, timeout=30).status_code


def post(server: LiveServer, path: str, **data: str) -> requests.Response:
    return requests.post(server.url + path, data=data, headers=server.headers, timeout=30)


@pytest.mark.parametrize("user", ["irina", "olga"])
def test_only_admins_open_the_console(server: LiveServer, user: str) -> None:
    headers = login(server.url, user)
    for path in PAGES:
        assert requests.get(server.url + path, headers=headers).status_code == 403, path
    create = requests.post(
        server.url + "/admin/users", data={"username": "x", "role": "admin"}, headers=headers
    )
    assert create.status_code == 403
    worklist = requests.get(server.url + "/worklist", headers=headers).text
    assert 'href="/admin' not in worklist  # the menu shows only what the role may do
    for path in PAGES:
        assert requests.get(server.url + path, headers=server.headers).status_code == 200, path


def test_a_password_reset_ends_the_users_sessions_and_the_new_one_works(
    server: LiveServer,
) -> None:
    old = login(server.url, "pavel")
    assert me(server, old) == 200
    answer = post(server, "/admin/users/pavel/password")
    assert answer.status_code == 200
    password = re.search(r'data-testid="new-password">[^<]*<code>([^<]+)</code>', answer.text)
    assert password, answer.text
    assert me(server, old) == 401
    assert me(server, login(server.url, "pavel", password.group(1))) == 200
    with pytest.raises(requests.HTTPError):
        login(server.url, "pavel", TEST_PASSWORD)


def session_id(headers: dict[str, str]) -> str:
    """The session a token belongs to (its ``jti``)."""
    payload = headers["Authorization"].split(" ")[1].split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def test_an_admin_ends_one_session_of_a_user(server: LiveServer) -> None:
    first, second = login(server.url, "irina"), login(server.url, "irina")
    page = requests.get(server.url + "/admin/users", headers=server.headers).text
    listed = re.findall(
        r'<tr data-session-user="irina">.*?action="/admin/sessions/([^"]+)/revoke"', page, re.S
    )
    assert {session_id(first), session_id(second)} <= set(listed)
    assert post(server, f"/admin/sessions/{session_id(second)}/revoke").status_code == 200
    assert (me(server, first), me(server, second)) == (200, 401)  # that one, at once
    page = requests.get(server.url + "/admin/users", headers=server.headers).text
    assert session_id(second) not in page and session_id(first) in page
    assert f"/admin/sessions/{session_id(server.headers)}/revoke" not in page  # not our own


def test_bad_input_is_refused_with_a_message_not_a_crash(server: LiveServer) -> None:
    first = post(server, "/admin/users", username="dup1", role="doctor", language="fr")
    assert first.status_code == 200 and "dup1" in first.text
    again = post(server, "/admin/users", username="dup1", role="doctor")
    assert again.status_code == 400 and 'class="error"' in again.text
    wrong_role = post(server, "/admin/users", username="dup2", role="emperor")
    assert wrong_role.status_code == 400
    nobody = post(server, "/admin/users/nobody", role="doctor", language="en")
    assert nobody.status_code in (400, 404)
    bad_date = requests.get(
        server.url + "/admin/audit", params={"since": "yesterday"}, headers=server.headers
    )
    assert bad_date.status_code == 400
    assert 'role="alert"' in bad_date.text  # the page, with the reason, not a JSON error


def test_the_audit_page_filters_and_its_csv_matches(server: LiveServer) -> None:
    post(server, "/admin/users", username="audited", role="operator", language="en")
    page = requests.get(
        server.url + "/admin/audit",
        params={"actor": "tester", "action": "user:create", "verify": "true"},
        headers=server.headers,
    ).text
    assert "audited" in page and "intact" in page
    assert "user:update" not in page.split('<table class="audit">')[1]  # the action list has it
    link = re.search(r'href="(/api/audit/export\?[^"]+)"', page)
    assert link and "action=user%3Acreate" in link.group(1)
    exported = requests.get(
        server.url + link.group(1).replace("&amp;", "&"), headers=server.headers
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows and {row["action"] for row in rows} == {"user:create"}
    assert any("audited" in ",".join(row.values()) for row in rows)


def test_the_system_page_shows_counts_health_and_dimse(server: LiveServer) -> None:
    page = requests.get(server.url + "/admin/system", headers=server.headers).text
    assert re.search(r'data-testid="studies">0<', page)
    assert re.search(r'data-testid="health-database">ok<', page)
    assert re.search(r'data-testid="health-storage">ok<', page)
    assert "KLINIKA" in page and server.env["KLINIKA_DIMSE_PORT"] in page
