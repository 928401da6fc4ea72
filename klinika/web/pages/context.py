"""What every page needs: the collaborators, the Jinja2 environment, and the request's
language and principal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from klinika import __version__
from klinika.archive import Archive
from klinika.archive.management import StudyManagement
from klinika.audit import AuditTrail
from klinika.auth import AuthService
from klinika.auth.http import Guard, scope_principal
from klinika.auth.models import Principal
from klinika.auth.nodes import NodeRegistry
from klinika.auth.permissions import Role, is_allowed
from klinika.config import Settings
from klinika.db import Database
from klinika.dimse.jobs import Jobs
from klinika.i18n import (
    AUTO_LANGUAGE,
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    Translator,
    negotiate,
    translator,
)
from klinika.reports import ReportService
from klinika.storage import BlobStore
from klinika.web.csrf import form_token, keep_form_token
from klinika.workflow import Schedule

STATIC_DIR = Path(__file__).parent / "static"
#: The cookie that remembers an explicit language choice (readable by our scripts).
LANGUAGE_COOKIE = "klinika_lang"
#: The cookie OHIF's i18next reads; set together with ours so the viewer follows.
OHIF_LANGUAGE_COOKIE = "i18next"
#: The cookie holding the console's theme (``dark``, the default, or ``light``).
THEME_COOKIE = "klinika_theme"
THEMES = ("dark", "light")

#: The language switch's first choice: no explicit language, follow the browser.
AUTO = AUTO_LANGUAGE
AUTO_LABEL = N_("Automatic (browser)")

#: What the pages call each role a person or a DICOM peer can have (HL7 senders never see a page).
ROLE_LABELS: dict[Role, str] = {
    Role.ADMIN: N_("Administrator"),
    Role.DOCTOR: N_("Doctor"),
    Role.OPERATOR: N_("Operator"),
    Role.MODALITY: N_("Modality"),
}


def language_options(speak: Translator) -> list[tuple[str, str]]:
    """The language switch's choices, ``(code, name)``: "automatic" first, then every language
    of :data:`klinika.i18n.LANGUAGES` by its own name. The viewer's switch gets the same list."""
    return [(AUTO, speak.gettext(AUTO_LABEL))] + [
        (code, LANGUAGE_NAMES[code]) for code in LANGUAGES
    ]


def request_language(request: Request, principal: Principal | None = None) -> str:
    """Explicit choice (``?lang=``, then the language cookie) > the user's preference >
    Accept-Language > English."""
    explicit = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    preference = principal.language if principal else None
    return negotiate(explicit, preference, request.headers.get("accept-language"))


def request_theme(request: Request) -> str:
    """The console's theme for this browser (OHIF stays dark)."""
    chosen = request.cookies.get(THEME_COOKIE, "")
    return chosen if chosen in THEMES else THEMES[0]


def language_choice(request: Request, principal: Principal | None = None) -> str:
    """What the language switch shows as chosen: an explicit choice (cookie), else the
    user's preference, else ``auto`` (the browser's language)."""
    explicit = request.cookies.get(LANGUAGE_COOKIE)
    if explicit in LANGUAGES:
        return explicit
    if principal is not None and principal.language in LANGUAGES:
        return principal.language
    return AUTO


def safe_next(target: str | None, default: str = "/") -> str:
    """A same-site path to go back to after login (never another origin: no ``//host``, no
    backslash, no control characters, which browsers strip before resolving)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return default
    return target


class Pages:
    """Renders templates with the request's language, principal and permissions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.environment = Environment(
            loader=PackageLoader("klinika.web.pages", "templates"),
            autoescape=select_autoescape(default=True),
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        principal: Principal | None = None,
        **values: Any,
    ) -> HTMLResponse:
        """Render ``template``; ``principal`` defaults to the session's."""
        principal = principal or scope_principal(request)
        language = request_language(request, principal)
        speak = translator(language)
        context = {
            "request": request,
            "principal": principal,
            "lang": language,
            "theme": request_theme(request),
            "languages": language_options(speak),
            "language_choice": language_choice(request, principal),
            "role_label": speak.gettext(ROLE_LABELS[principal.role]) if principal else "",
            "can": lambda action: principal is not None and is_allowed(principal.role, action),
            "_": speak.gettext,
            "gettext": speak.gettext,
            "ngettext": speak.ngettext,
            "t": speak,
            "version": __version__,
            "clinic_name": self.settings.clinic_name,
            "csrf_token": form_token(request),
            **values,
        }
        html = self.environment.get_template(template).render(context)
        response = HTMLResponse(html, status_code=status_code)
        response.headers["Cache-Control"] = "no-store"
        keep_form_token(request, response)
        chosen = request.query_params.get("lang")
        if chosen in LANGUAGES or chosen == AUTO:
            remember_language(response, chosen)
        return response


def remember_language(response: Any, language: str) -> None:
    """Keep an explicit language choice for our pages and OHIF (one year); ``auto`` forgets
    it (the browser's language again)."""
    for name in (LANGUAGE_COOKIE, OHIF_LANGUAGE_COOKIE):
        if language in LANGUAGES:
            response.set_cookie(name, language, max_age=365 * 86400, path="/", samesite="strict")
        else:
            response.delete_cookie(name, path="/", samesite="strict")


@dataclass
class PageContext:
    """The collaborators page modules may use (handed out by the app factory)."""

    settings: Settings
    pages: Pages
    guard: Guard
    auth: AuthService
    audit: AuditTrail
    archive: Archive
    database: Database
    blobs: BlobStore
    reports: ReportService
    management: StudyManagement
    schedule: Schedule
    nodes: NodeRegistry
    jobs: Jobs
