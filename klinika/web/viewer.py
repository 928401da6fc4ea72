"""Serving the OHIF viewer: its files, index.html (with our script and its CSP) for its routes,
and the per-user ``app-config.js``. Registered last: it answers the paths nobody else does."""

import re
from mimetypes import guess_type
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from klinika.auth import AuthService
from klinika.auth.http import Guard
from klinika.auth.models import Principal
from klinika.auth.permissions import is_allowed
from klinika.config import Settings
from klinika.errors import NotFound
from klinika.i18n import N_, Translator, translator
from klinika.viewer.install import load_installed
from klinika.viewer.shell import ViewerShell, ViewerUser, app_config
from klinika.web.pages.context import (
    ROLE_LABELS,
    Pages,
    language_choice,
    language_options,
    request_language,
)

IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "no-cache"

#: Our additions to OHIF, in the viewer's language.
VIEWER_STRINGS = {
    "backToWorklist": N_("Back to worklist"),
    "report": N_("Report"),
    "logout": N_("Log out"),
    "language": N_("Language"),
    "password": N_("Change password"),
}
#: viewer-extras.js: the Key image button and the warning before a large volume in 3D;
#: ``{name}`` placeholders are filled in by the script.
VIEWER_EXTRA_STRINGS = {
    "keyImage": N_("Key image"),
    "keyImageTitle": N_("Add the image shown to the report's key images"),
    "keyImageAdded": N_("Key image added to the report: series %(series)s, image %(image)s"),
    "keyImageOpenEditor": N_("Key image added to the open report"),
    "keyImageNone": N_("No image is shown in the active viewport"),
    "keyImageFailed": N_("The key image was not added:"),
    "volumeWarningTitle": N_("Load this volume in 3D?"),
    "volumeWarning": N_(
        "This volume has %(voxels)s million voxels and this computer draws 3D in software "
        "(%(renderer)s). Loading it in 3D may take minutes and leave the page unresponsive."
    ),
    "volumeLoadAnyway": N_("Load in 3D anyway"),
    "cancel": N_("Cancel"),
}


def extra_string(speak: Translator, message: str) -> str:
    """A message whose ``%(name)s`` placeholders stay as ``{name}`` for the script."""
    names = re.findall(r"%\((\w+)\)s", message)
    return speak.gettext(message, **{name: "{" + name + "}" for name in names})


def create_viewer_router(
    settings: Settings, auth: AuthService, guard: Guard, pages: Pages
) -> APIRouter:
    """``/app-config.js`` and the catch-all for OHIF's files and routes (any logged-in user:
    the shell holds no patient data; DICOMweb checks ``dicom:read`` on every call)."""
    router = APIRouter(include_in_schema=False)
    Viewer = Annotated[Principal, Depends(guard("account:self"))]
    installed = load_installed(settings.cache_path)
    shell = ViewerShell(installed) if installed else None

    @router.get("/app-config.js")
    def app_config_js(request: Request, principal: Viewer) -> Response:
        language = request_language(request, principal)
        speak = translator(language)
        user = auth.get_user(principal.username)
        viewer_user = ViewerUser(
            username=principal.username,
            display_name=user.display_name or principal.username,
            role=principal.role,
            role_label=speak.gettext(ROLE_LABELS[principal.role]),
            language=language,
            can_store=is_allowed(principal.role, "dicom:store"),
            can_report=is_allowed(principal.role, "report:read"),
            can_write_report=is_allowed(principal.role, "report:write"),
            language_choice=language_choice(request, principal),
            language_options=tuple(language_options(speak)),
        )
        strings = {key: speak.gettext(text) for key, text in VIEWER_STRINGS.items()}
        strings |= {key: extra_string(speak, text) for key, text in VIEWER_EXTRA_STRINGS.items()}
        return Response(
            app_config(viewer_user, strings),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )

    def public_file(path: str) -> Response:
        found = shell.file(path) if shell else None
        if found is None:
            return Response(status_code=404)
        return FileResponse(found, headers={"Cache-Control": REVALIDATE})

    @router.get("/manifest.json")
    def manifest() -> Response:
        """OHIF's web-app manifest: public, browsers fetch it without cookies."""
        return public_file("manifest.json")

    @router.get("/favicon.ico")
    def favicon() -> Response:
        """Public, browsers fetch it without cookies."""
        return public_file("assets/favicon.ico")

    @router.get("/{path:path}")
    def viewer(path: str, request: Request, _: Viewer) -> Response:
        if shell is None:
            if ViewerShell.is_route(path):
                return pages.render(request, "viewer_missing.html", status_code=503)
            raise NotFound(f"no page {path}")
        found = shell.file(path)
        if found is not None and found.name != "index.html":
            headers = {
                "Cache-Control": IMMUTABLE if shell.is_immutable(path) else REVALIDATE,
                "Vary": "Accept-Encoding",
            }
            compressed = found.with_name(found.name + ".gz")
            if "gzip" in request.headers.get("accept-encoding", "") and compressed.is_file():
                media_type = guess_type(found.name)[0] or "application/octet-stream"
                headers["Content-Encoding"] = "gzip"
                return FileResponse(compressed, media_type=media_type, headers=headers)
            return FileResponse(found, headers=headers)
        if found is not None or shell.is_route(path):
            return HTMLResponse(
                shell.index_html,
                headers={"Cache-Control": REVALIDATE, "Content-Security-Policy": shell.csp},
            )
        raise NotFound(f"no page {path}")  # a browser gets our translated 404 page

    return router
