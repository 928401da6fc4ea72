"""Cross-site request forgery (issue 14, finding 2): ``SameSite=Strict`` lets a page on the
same *site* (another port of 127.0.0.1, a sibling subdomain) send our cookie with its forms.
Every unsafe request the cookie authenticates must come from our own origin, and the
console's forms carry a token; bearer-token API calls are unaffected."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator

import pytest
import requests

from tests.browser import OpenPage, log_in
from tests.conftest import TEST_PASSWORD, LiveServer, free_port, login, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("csrf") / "data", users={"op": "operator", "boss": "admin"}
    )
    yield live
    live.stop()


def evil_page(target: str) -> str:
    return f"""<!doctype html><html><body>
<form id="f" method="post" action="{target}/admin/users/op">
  <input name="role" value="admin"><input name="language" value="en">
  <input name="display_name" value="owned"><input name="active" value="on">
</form>
<script>document.getElementById("f").submit();</script>
</body></html>"""


@pytest.fixture
def attacker_site(server: LiveServer) -> Iterator[str]:
    """A page on another port of 127.0.0.1: same site as the server, another origin."""
    html = evil_page(server.url).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *_: object) -> None:
            pass

    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/"
    httpd.shutdown()
    thread.join(timeout=10)


def role_of(server: LiveServer, username: str) -> str:
    users = requests.get(server.url + "/api/users", headers=server.headers, timeout=30).json()
    return next(u["role"] for u in users if u["username"] == username)


def test_a_same_site_page_cannot_make_an_operator_admin_in_chromium(
    server: LiveServer, open_page: OpenPage, attacker_site: str
) -> None:
    admin = open_page()
    log_in(admin, server.url, "boss", TEST_PASSWORD, "/admin/users")
    assert admin.page.url.endswith("/admin/users")
    with admin.page.expect_navigation(url=re.compile(r".*/admin/users/op$")) as navigation:
        admin.page.goto(attacker_site)
    response = navigation.value
    assert response is not None and response.status == 403
    assert "cross-origin" in admin.page.content()
    assert role_of(server, "op") == "operator"
    # the admin's own form, from our page, still works
    admin.page.goto(server.url + "/admin/users")
    row = admin.page.locator("tr[data-user=op]")
    row.locator("input[name=display_name]").fill("Olga")
    with admin.page.expect_navigation() as saved:
        row.locator("button", has_text="Save").click()
    assert saved.value is not None and saved.value.status == 200
    assert role_of(server, "op") == "operator"


def cookie_session(server: LiveServer, user: str = "boss") -> tuple[requests.Session, str]:
    """A browser-like client: session cookie and the console's CSRF token."""
    session = requests.Session()
    page = session.get(server.url + "/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    answer = session.post(
        server.url + "/login",
        data={"username": user, "password": TEST_PASSWORD, "csrf_token": token.group(1)},
        headers={"Origin": server.url},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303, answer.text
    return session, token.group(1)


def test_a_forged_origin_with_the_cookie_is_refused(server: LiveServer) -> None:
    session, token = cookie_session(server)
    form = {"username": "mallory", "role": "admin", "csrf_token": token}
    evil = session.post(
        server.url + "/admin/users", data=form, headers={"Origin": "http://evil.example"}
    )
    assert evil.status_code == 403
    assert "cross-origin" in evil.json()["error"]
    api = session.post(
        server.url + "/api/users",
        json={"username": "mallory", "role": "admin"},
        headers={"Origin": "http://evil.example"},
    )
    assert api.status_code == 403
    referer = session.post(
        server.url + "/admin/users", data=form, headers={"Referer": "http://evil.example/x"}
    )
    assert referer.status_code == 403
    cross_site = session.post(
        server.url + "/admin/users", data=form, headers={"Sec-Fetch-Site": "same-site"}
    )
    assert cross_site.status_code == 403
    silent = session.post(server.url + "/admin/users", data=form)  # no Origin, Referer, ...
    assert silent.status_code == 403
    assert "mallory" not in {
        u["username"]
        for u in requests.get(server.url + "/api/users", headers=server.headers, timeout=30).json()
    }


def test_our_own_origin_with_the_token_passes_and_without_the_token_does_not(
    server: LiveServer,
) -> None:
    session, token = cookie_session(server)
    ours = {"Origin": server.url}
    no_token = session.post(
        server.url + "/admin/users", data={"username": "eve", "role": "doctor"}, headers=ours
    )
    assert no_token.status_code == 403
    assert "security token" in no_token.json()["error"]
    wrong = session.post(
        server.url + "/admin/users",
        data={"username": "eve", "role": "doctor", "csrf_token": "x" * 43},
        headers=ours,
    )
    assert wrong.status_code == 403
    good = session.post(
        server.url + "/admin/users",
        data={"username": "eve", "role": "doctor", "csrf_token": token},
        headers=ours,
    )
    assert good.status_code == 200 and "eve" in good.text
    same_origin = session.post(
        server.url + "/logout",
        data={"csrf_token": token},
        headers={"Sec-Fetch-Site": "same-origin"},
        allow_redirects=False,
    )
    assert same_origin.status_code == 303


def test_login_and_logout_forms_from_another_origin_are_refused(server: LiveServer) -> None:
    session, token = cookie_session(server)
    evil = {"Origin": "http://127.0.0.1:1"}
    logout = session.post(server.url + "/logout", data={"csrf_token": token}, headers=evil)
    assert logout.status_code == 403
    login_csrf = requests.post(
        server.url + "/login",
        data={"username": "boss", "password": TEST_PASSWORD},
        headers=evil,
        allow_redirects=False,
        timeout=30,
    )
    assert login_csrf.status_code == 403
    language = session.post(
        server.url + "/language", data={"language": "ru", "csrf_token": token}, headers=evil
    )
    assert language.status_code == 403


def test_bearer_token_calls_are_unaffected(server: LiveServer) -> None:
    headers = {**login(server.url, "boss"), "Origin": "http://evil.example"}
    created = requests.post(
        server.url + "/api/users",
        json={"username": "api-made", "role": "doctor"},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201
    # API clients log in without any Origin or Referer (no ambient credential to abuse)
    assert login(server.url, "op")
