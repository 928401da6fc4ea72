"""The login page in a real browser: redirect, wrong password, login and back, language."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.browser import OpenPage, log_in
from tests.conftest import TEST_PASSWORD, LiveServer, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("pages") / "data", users={"irina": "doctor"})
    yield live
    live.stop()


def test_login_redirects_back_with_a_strict_session_cookie(
    server: LiveServer, open_page: OpenPage
) -> None:
    browser_page = open_page()
    page = browser_page.page
    page.goto(server.url + "/api/auth/me")  # an API: 401, no redirect
    assert "log in first" in page.content()
    page.goto(server.url + "/login?next=%2Fapi%2Fauth%2Fme")
    page.fill("input[name=username]", "irina")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Wrong user name or password."
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    assert page.url == server.url + "/api/auth/me"
    assert '"role":"doctor"' in page.content()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["klinika_session"]["httpOnly"] is True
    assert cookies["klinika_session"]["sameSite"] == "Strict"
    assert browser_page.csp_violations() == []


def test_the_login_page_speaks_the_browser_language_and_switches(
    server: LiveServer, open_page
) -> None:  # type: ignore[no-untyped-def]
    browser_page = open_page(locale="ru-RU")
    page = browser_page.page
    page.goto(server.url + "/login")
    assert page.locator("h1").inner_text() == "Войти"
    with page.expect_navigation():
        page.select_option("#language-select", "de")
    assert page.locator("h1").inner_text() == "Anmelden"
    assert page.locator("html").get_attribute("lang") == "de"
    log_in(browser_page, server.url, "irina", TEST_PASSWORD, path="/api/auth/me")
    # the cookie choice is not the stored preference, which stays "automatic"
    assert '"language":"auto"' in page.content()
    response = page.request.get(server.url + "/static/klinika.css")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert browser_page.errors == []
    assert browser_page.csp_violations() == []


def test_without_the_viewer_installed_its_routes_say_how_to_install_it(
    server: LiveServer,
) -> None:
    page = requests.get(server.url + "/viewer?StudyInstanceUIDs=1.2.3", headers=server.headers)
    assert page.status_code == 503
    assert "klinika viewer install" in page.text
    assert requests.get(server.url + "/app.bundle.js", headers=server.headers).status_code == 404


def test_login_never_sends_the_browser_to_another_site() -> None:
    from klinika.web.pages.context import safe_next

    for target in ("//evil.example", "/\t/evil.example", "/\\evil.example", "https://evil", ""):
        assert safe_next(target, "/worklist") == "/worklist", target
    assert (
        safe_next("/viewer?StudyInstanceUIDs=1.2", "/worklist") == "/viewer?StudyInstanceUIDs=1.2"
    )
