"""Every registered route, read from the app's routing table: closed without a session except
the declared public ones, and for each role open exactly where the matrix says."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from klinika.auth import ACTIONS, USER_ROLES, is_allowed
from klinika.auth.http import PUBLIC_PATHS, PUBLIC_PREFIXES, GuardedEndpoint, Require
from tests.auth.conftest import Installation

DUMMY = {"frames": "1", "username": "nobody", "session_id": "0" * 32}
#: Routes that end the caller's session: each role gets a fresh token for them.
SESSION_ENDING = {
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/password"),
    ("POST", "/logout"),
}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: DUMMY.get(m.group(1), "1.2.3.4"), path)


def endpoints(site: Installation) -> Iterator[tuple[str, str, RouteContext]]:
    """(method, path template, route) of every HTTP endpoint the app serves, included
    routers flattened the way FastAPI's own OpenAPI generator does it."""
    for route in iter_route_contexts(site.app.routes):
        if isinstance(route.original_route, Mount) and route.path + "/" in PUBLIC_PREFIXES:
            continue  # static files without patient data (tested below)
        if not isinstance(route.original_route, APIRoute | Route):
            raise AssertionError(f"the sweep does not know how to call {route!r}")
        assert route.path, route
        for method in sorted(route.methods or {"GET"}):
            if method not in {"HEAD", "OPTIONS"}:
                yield method, route.path, route


def declared_actions(route: RouteContext) -> set[str]:
    """Actions of the Require dependencies anywhere in the route's dependency tree, or of the
    guard of a plain ASGI endpoint (frames)."""
    if not isinstance(route.original_route, APIRoute):
        endpoint = getattr(route.original_route, "endpoint", None)
        return {endpoint.require.action} if isinstance(endpoint, GuardedEndpoint) else set()
    found: set[str] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, Require):
            found.add(dependant.call.action)
        stack.extend(dependant.dependencies)
    return found


def test_the_sweep_sees_the_routes_of_every_room(site: Installation) -> None:
    paths = {path for _, path, _ in endpoints(site)}
    for expected in ("/dicom-web/studies", "/wado", "/api/users", "/api/audit", "/health"):
        assert expected in paths


def test_without_credentials_every_route_but_the_public_ones_answers_401(
    site: Installation,
) -> None:
    anonymous = TestClient(site.app)
    for method, path, _route in endpoints(site):
        response = anonymous.request(method, concrete(path))
        if path in PUBLIC_PATHS:
            assert response.status_code != 401, (method, path)
        else:
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_path_is_closed_too(site: Installation) -> None:
    assert TestClient(site.app).get("/no/such/page").status_code == 401


def test_public_routes_answer_without_credentials(site: Installation) -> None:
    anonymous = TestClient(site.app)
    assert anonymous.get("/health").status_code == 200
    assert anonymous.get("/health/ready").status_code == 200
    assert anonymous.post("/api/auth/login", json={}).status_code == 422
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/static/klinika.css").status_code == 200


def test_a_browser_without_a_session_is_sent_to_the_login_page(site: Installation) -> None:
    anonymous = TestClient(site.app, follow_redirects=False)
    html = {"Accept": "text/html,application/xhtml+xml"}
    response = anonymous.get("/worklist?page=2", headers=html)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fworklist%3Fpage%3D2"
    # machine interfaces answer 401 whatever the Accept header says
    assert anonymous.get("/dicom-web/studies", headers=html).status_code == 401
    assert anonymous.get("/api/auth/me", headers=html).status_code == 401


def test_every_api_route_declares_one_known_action(site: Installation) -> None:
    for method, path, route in endpoints(site):
        if path in PUBLIC_PATHS:
            continue
        if not isinstance(route.original_route, APIRoute) and not path.startswith("/dicom-web"):
            continue  # FastAPI's own documentation pages
        actions = declared_actions(route)
        assert len(actions) == 1, (method, path, actions)
        assert actions <= ACTIONS


@pytest.mark.parametrize("role", [str(r) for r in USER_ROLES])
def test_each_role_gets_exactly_what_the_matrix_allows(site: Installation, role: str) -> None:
    token = site.login(role)
    for method, path, route in endpoints(site):
        if path in PUBLIC_PATHS:
            continue
        bearer = site.login(role) if (method, path) in SESSION_ENDING else token
        response = site.client.request(
            method, concrete(path), headers={"Authorization": f"Bearer {bearer}"}
        )
        actions = declared_actions(route)
        allowed = all(is_allowed(role, action) for action in actions)
        if allowed:
            assert response.status_code not in (401, 403), (role, method, path, response.text)
        else:
            assert response.status_code == 403, (role, method, path, response.status_code)
