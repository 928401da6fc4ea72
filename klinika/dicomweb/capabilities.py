"""The capabilities resource: what this DICOMweb service offers (PS3.18 §8.9).

``OPTIONS`` on the service root (or ``GET`` of it) answers a WADL document (the default) or a
JSON summary (``Accept: application/json``) listing every resource and its methods, read from
the routes themselves so it cannot drift from what is served; ``OPTIONS`` on any resource
answers ``Allow`` with the methods that resource takes.

References
----------
PS3.18 §8.9 (Capabilities), Annex H (WADL), §8.1.4 (OPTIONS).
"""

from __future__ import annotations

import json
import re
from xml.sax.saxutils import quoteattr

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Route

from klinika.dicomweb.common import Guard, dicomweb_base

ROOT = "/dicom-web"
WADL = "application/vnd.sun.wadl+xml"
_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH"}


def _resources(request: Request) -> dict[str, list[str]]:
    """Each DICOMweb resource template (below the root) and its methods, from the app's own
    OpenAPI description (built once and cached by FastAPI) and its plain ASGI routes (frames),
    so the list cannot drift."""
    found: dict[str, set[str]] = {}
    for path, operations in request.app.openapi()["paths"].items():
        found.setdefault(path, set()).update(m.upper() for m in operations)
    for route in iter_route_contexts(request.app.routes):
        if (
            route.path
            and isinstance(route.original_route, Route)
            and not isinstance(route.original_route, APIRoute)
        ):
            found.setdefault(route.path, set()).update(route.methods or ())
    return {
        path[len(ROOT) :]: sorted((methods & _METHODS) | {"OPTIONS"})
        for path, methods in sorted(found.items())
        if path.startswith(ROOT + "/")
    }


def _allowed(request: Request, path: str) -> list[str]:
    """The methods of the resources whose template matches ``path`` (below the root)."""
    methods: set[str] = set()
    for template, listed in _resources(request).items():
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods.update(listed)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _wadl(base: str, resources: dict[str, list[str]]) -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<application xmlns="http://wadl.dev.java.net/2009/02">',
        f"  <resources base={quoteattr(base)}>",
    ]
    for path, methods in resources.items():
        lines.append(f"    <resource path={quoteattr(path.lstrip('/'))}>")
        lines.extend(f'      <method name="{m}"/>' for m in methods)
        lines.append("    </resource>")
    lines += ["  </resources>", "</application>"]
    return "\n".join(lines) + "\n"


def add_capabilities(router: APIRouter, guard: Guard, public_base_url: str = "") -> None:
    """Add ``OPTIONS``/``GET`` of the root and ``OPTIONS`` of every resource below it to the
    DICOMweb router (the root's path is empty, so it cannot be a router of its own)."""
    reader = [Depends(guard("dicom:read"))]

    def capabilities(request: Request) -> Response:
        resources = _resources(request)
        base = dicomweb_base(request, public_base_url)
        headers = {"Allow": "GET, HEAD, OPTIONS", "Cache-Control": "no-cache"}
        if "application/json" in request.headers.get("accept", ""):
            listed = [{"path": path, "methods": methods} for path, methods in resources.items()]
            body = json.dumps({"base": base, "resources": listed})
            return Response(body, media_type="application/json", headers=headers)
        return Response(_wadl(base, resources), media_type=WADL, headers=headers)

    for method in ("GET", "OPTIONS"):
        router.add_api_route(
            "",
            capabilities,
            methods=[method],
            dependencies=reader,
            summary="Capabilities",
            operation_id=f"dicomweb_capabilities_{method.lower()}",
        )

    @router.options(
        "/{path:path}",
        dependencies=reader,
        summary="Methods of a resource",
        include_in_schema=False,
    )
    def resource_options(request: Request, path: str) -> Response:
        methods = _allowed(request, "/" + path)
        if not methods:
            return Response(status_code=404)
        return Response(status_code=204, headers={"Allow": ", ".join(methods)})
