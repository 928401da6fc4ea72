"""The viewer as we serve it: OHIF's files, its index.html with our script, its app-config
generated from our settings, its Content-Security-Policy, and which files may be cached."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klinika.viewer.install import InstalledViewer

#: First path segments that are OHIF routes (its modes' ``routeName`` and its own pages):
#: these paths get index.html and the single-page app routes them.
OHIF_ROUTES = frozenset(
    {
        "viewer",
        "basic",
        "segmentation",
        "tmtv",
        "microscopy",
        "dynamic-volume",
        "usAnnotation",
        "localbasic",
        "datasources",
    }
)
#: OHIF's own "not found" routes, answered by our pages (translated, back to our worklist).
OUR_NOT_FOUND_ROUTES = ("/notfoundstudy", "/notfoundserver")
#: Our additions, loaded by index.html before OHIF's bundles run.
INJECTED = (
    '<link rel="stylesheet" href="/static/viewer.css">'
    '<link rel="stylesheet" href="/static/viewer-extras.css">'
    '<script src="/static/viewer-extras.js" defer></script>'
    '<script src="/static/viewer.js" defer></script>'
)
_HASHED_NAME = re.compile(r"(^|/)[^/]*[.-][0-9a-f]{16,}\.(js|wasm|css)$|^[0-9a-f]{16}\.wasm$")


def viewer_csp(inline_script_hashes: tuple[str, ...]) -> str:
    """What OHIF needs and nothing more: its own inline scripts by hash, WebAssembly codecs
    (``'wasm-unsafe-eval'``), web workers from blobs, React's inline styles, PDFs from blobs."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval' " + " ".join(inline_script_hashes),
            "worker-src 'self' blob:",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self' data: blob:",
            "media-src 'self' blob:",
            "manifest-src 'self'",
            # OHIF's PDF viewport (DICOM Encapsulated PDF, e.g. our signed reports) shows the
            # document in an <object> whose data is a blob: URL (which Chromium frames)
            "object-src 'self' blob:",
            "frame-src 'self' blob:",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@dataclass(frozen=True)
class ViewerUser:
    """Who is looking, for the app-config and our script."""

    username: str
    display_name: str
    role: str
    role_label: str
    language: str
    can_store: bool
    can_report: bool
    can_write_report: bool = False
    #: what the language switch shows as chosen ("auto": the browser's language)
    language_choice: str = "auto"
    #: what the language switch offers, ``(code, name)`` (from :mod:`klinika.i18n`, "auto" first)
    language_options: tuple[tuple[str, str], ...] = ()


class ViewerShell:
    """OHIF's installed files, as served by Klinika."""

    def __init__(self, installed: InstalledViewer) -> None:
        self.installed = installed
        self.root = installed.root.resolve()
        self.csp = viewer_csp(installed.inline_script_hashes)
        html = installed.index_html.read_text(encoding="utf-8")
        # index.html loads /app-config.js, which we generate per user (see app_config).
        self.index_html = html.replace("</head>", INJECTED + "</head>", 1).encode("utf-8")

    def file(self, path: str) -> Path | None:
        """The installed file for a URL path, never outside the viewer's folder."""
        candidate = (self.root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    @staticmethod
    def is_route(path: str) -> bool:
        """True for OHIF's client-side routes (answered with index.html)."""
        return path.strip("/").split("/", 1)[0] in OHIF_ROUTES

    @staticmethod
    def is_immutable(path: str) -> bool:
        """Content-hashed bundles and codecs, which never change under the same name."""
        return bool(_HASHED_NAME.search(path.lstrip("/")))


def app_config(user: ViewerUser, strings: dict[str, str]) -> str:
    """The ``app-config.js`` for one user: OHIF's ``window.config`` pointing at our DICOMweb on
    the page's own origin, and ``window.klinika`` for our script (user, strings)."""
    data_source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "dicomweb",
        "configuration": {
            "friendlyName": "Klinika PACS",
            "name": "klinika",
            # made absolute on the page's origin below
            "wadoUriRoot": "/wado",
            "qidoRoot": "/dicom-web",
            "wadoRoot": "/dicom-web",
            "qidoSupportsIncludeField": True,
            "supportsReject": False,
            "imageRendering": "wadors",
            "thumbnailRendering": "thumbnail",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "staticWado": False,
            "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
            "omitQuotationForMultipartRequest": True,
            "dicomUploadEnabled": user.can_store,
        },
    }
    config: dict[str, Any] = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        # our worklist is the one study list: OHIF shows no back arrow to its own
        "showStudyList": False,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "customizationService": {"ohif.tours": {"$set": []}},
        "defaultDataSourceName": "dicomweb",
        "dataSources": [data_source],
        "maxNumRequests": {"interaction": 100, "thumbnail": 6, "prefetch": 12},
    }
    klinika = {
        "user": {
            "username": user.username,
            "displayName": user.display_name,
            "role": user.role,
            "roleLabel": user.role_label,
            "canReport": user.can_report,
            "canWriteReport": user.can_write_report,
        },
        "language": user.language,
        "languageChoice": user.language_choice,
        "languages": [list(option) for option in user.language_options],
        "strings": strings,
    }
    return (
        "// Generated by Klinika for this user; not cached.\n"
        f"window.config = {json.dumps(config, ensure_ascii=False)};\n"
        "(function (origin) {\n"
        "  window.config.dataSources.forEach(function (source) {\n"
        "    ['wadoUriRoot', 'qidoRoot', 'wadoRoot'].forEach(function (key) {\n"
        "      source.configuration[key] = origin + source.configuration[key];\n"
        "    });\n"
        "  });\n"
        "})(window.location.origin);\n"
        f"window.klinika = {json.dumps(klinika, ensure_ascii=False)};\n"
    )
